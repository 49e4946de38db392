"""``report.html``: one page with the metrics table (best per column marked), the side-by-side video and the figures.

The page is static HTML with inline CSS and no scripts; figures and the video are linked by relative paths
(``figures/*.png``, ``compare.mp4``), so the report folder can be moved or zipped as a whole and opened from disk.
Every text that comes from the user (names, paths) is escaped.
"""

from __future__ import annotations

import datetime as _dt
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from talkfreq.report.scoring import ARROWS, COLUMNS, UNAVAILABLE

if TYPE_CHECKING:
    from talkfreq.report.evaluate import EvalConfig, EvalResult

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 24px; color: #222;
       max-width: 1500px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.meta { color: #555; font-size: 13px; }
table.metrics { border-collapse: collapse; font-size: 13px; margin-top: 8px; }
table.metrics th, table.metrics td { border: 1px solid #ccc; padding: 4px 7px; text-align: right; white-space: nowrap; }
table.metrics th { background: #f2f2f2; vertical-align: bottom; }
table.metrics td.name, table.metrics th.name { text-align: left; font-weight: 600; }
tr.reference td { background: #f7f7f7; color: #555; font-style: italic; }
td.best { background: #d9f2d9; font-weight: 700; }
td.best::after { content: " \\2605"; color: #2a7a2a; font-size: 11px; }
td.unavailable { color: #999; font-style: italic; }
.legend, .notes { font-size: 13px; color: #444; }
.unreliable { font-size: 13px; color: #8a4b00; background: #fff4e0; padding: 4px 8px; }
dl.columns { font-size: 12px; color: #444; display: grid; grid-template-columns: max-content auto; gap: 2px 14px; }
dl.columns dt { font-weight: 600; } dl.columns dd { margin: 0; }
figure { margin: 14px 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 12px; color: #555; margin-top: 4px; }
video { max-width: 100%; border: 1px solid #ddd; background: #000; }
pre { background: #f6f6f6; padding: 8px; font-size: 12px; overflow-x: auto; }
"""

_CAPTIONS = {
    "spectra": "Averaged log-amplitude spectra of the face crops (FREAK's figure 1), face and mouth region, all on "
               "the real video's colour scale; bottom row: face spectrum minus the real one (blue = energy lost, "
               "red = energy added).",
    "radial": "Radially averaged power spectra (face, mouth); the dotted line is the high-frequency radius of the "
              "HF ratio. A curve that drops below the real one at high frequency has lost detail.",
    "per_frame": "Per-frame curves over time: PSNR and mouth PSNR against the real frame, and sharpness.",
    "closeups": "Mouth and hair close-ups of the same frames across videos (enlarged by pixel repetition: these are "
                "the videos' own pixels).",
    "nroub": "Refiner NRoUB diagnostic on real face crops: code-flip rate and the fraction of latent positions "
             "inside the bound, per degradation.",
}


def _metrics_table(result: EvalResult) -> str:
    head = ['<th class="name">video</th>']
    for c in result.columns():
        head.append(f'<th title="{escape(c.help)}">{escape(c.label)} {ARROWS[c.direction]}</th>')
    body = []
    for r in result.rows:
        ref = r.role == "reference"
        name = f"{escape(r.name)} (reference)" if ref else escape(r.name)
        cells = [f'<td class="name" title="{escape(r.path)}">{name}</td>']
        for c in COLUMNS:
            text = r.formatted(c.key)
            cls = "best" if r.name in result.best.get(c.key, ()) else ("unavailable" if text == UNAVAILABLE else "")
            cells.append(f'<td class="{cls}" data-col="{c.key}">{escape(text)}</td>' if cls
                         else f'<td data-col="{c.key}">{escape(text)}</td>')
        body.append(f'<tr class="{r.role}">' + "".join(cells) + "</tr>")
    return ('<table class="metrics" id="metrics"><thead><tr>' + "".join(head) + "</tr></thead><tbody>"
            + "\n".join(body) + "</tbody></table>")


def _nroub_table(nroub: dict) -> str:
    keys = ("strength", "flip_rate", "inside_bound_fraction", "margin_mean", "shift_mean", "flips_inside_bound")
    rows = []
    for kind, d in nroub["degradations"].items():
        cells = "".join(f"<td>{escape(_num(d.get(k)))}</td>" for k in keys)
        rows.append(f'<tr><td class="name">{escape(kind)}</td>{cells}</tr>')
    head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in keys)
    return (f'<p class="meta">{nroub["frames"]} consecutive real face crops at {nroub["image_size"]} px; clean '
            f'temporal code-flip rate {_num(nroub["temporal_flip_rate"])}.</p>'
            f'<table class="metrics"><thead><tr><th class="name">degradation</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "n/a" if v is None else str(v)


def write_html(path: Path, result: EvalResult, *, cfg: EvalConfig, files: dict[str, Path], stage: Path) -> Path:
    """Write the report page to ``path``; ``files`` are the staged outputs it links (relative to ``stage``)."""
    from talkfreq.config import to_yaml

    def rel(p: Path) -> str:
        return escape(p.relative_to(stage).as_posix(), quote=True)

    cands = [r for r in result.rows if r.role != "reference"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>talkfreq evaluation - {escape(result.reference.name)}</title>", f"<style>{_CSS}</style></head><body>",
        "<h1>talkfreq evaluation</h1>",
        f'<p class="meta">Reference (real): <code>{escape(str(result.reference))}</code><br>'
        f"Candidates: {', '.join(f'<b>{escape(r.name)}</b> <code>{escape(r.path)}</code>' for r in cands)}<br>"
        f"{result.scored} frames scored of {result.frames} compared, at {result.fps:g} fps; face crops "
        f"{cfg.face.crop_size} px cut with the reference's face boxes; written "
        f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}.</p>",
    ]
    if result.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in result.notes) + "</ul>")
    parts += [
        "<h2>Metrics</h2>", _metrics_table(result),
        '<p class="legend">\u2191 higher is better, \u2193 lower is better, \u2248 closest to the real video\'s value '
        "is better (sharpness, high-frequency energy and flicker can be pushed above real by noise or "
        "over-sharpening). <b>Best</b> candidate per column is highlighted (\u2605); the real video is the target "
        "and is scored by the same tool, but never marked best. \u201cunavailable\u201d: the metric needs a "
        "network that was not supplied.</p>",
    ]
    if result.unreliable:
        labels = {c.key: c.label for c in COLUMNS}
        for why in dict.fromkeys(result.unreliable.values()):
            cols = [labels.get(k, k) for k, w in result.unreliable.items() if w == why]
            parts.append(f'<p class="unreliable" id="unreliable">\u26a0 <b>{escape(", ".join(cols))} unreliable:</b> '
                         f"{escape(why)}</p>")
    if result.unavailable:
        labels = {c.key: c.label for c in COLUMNS}
        by_reason: dict[str, list[str]] = {}
        for key, why in result.unavailable.items():
            by_reason.setdefault(why, []).append(labels.get(key, key))
        parts.append('<ul class="notes">' + "".join(
            f"<li><b>{escape(', '.join(cols))}</b> unavailable: {escape(why)}</li>" for why, cols in by_reason.items())
            + "</ul>")
    parts.append('<dl class="columns">' + "".join(
        f"<dt>{escape(c.label)}</dt><dd>{escape(c.help)}</dd>" for c in result.columns()) + "</dl>")
    if "video" in files:
        parts += ["<h2>Side by side</h2>",
                  f'<video controls preload="metadata" src="{rel(files["video"])}"></video>',
                  f'<p class="meta"><a href="{rel(files["video"])}">{rel(files["video"])}</a> - real | '
                  f"{' | '.join(escape(r.name) for r in cands)}, with zoomed mouth and hair insets.</p>"]
    parts.append("<h2>Figures</h2>")
    for key in ("spectra", "radial", "per_frame", "closeups"):
        if key in files:
            parts.append(f'<figure><img src="{rel(files[key])}" alt="{key}"><figcaption>{escape(_CAPTIONS[key])}'
                         f"</figcaption></figure>")
    if result.nroub:
        parts += ["<h2>Refiner robustness (NRoUB)</h2>", _nroub_table(result.nroub)]
        if "nroub" in files:
            parts.append(f'<figure><img src="{rel(files["nroub"])}" alt="nroub"><figcaption>'
                         f"{escape(_CAPTIONS['nroub'])}</figcaption></figure>")
    links = " | ".join(f'<a href="{rel(files[k])}">{rel(files[k])}</a>' for k in ("csv", "json") if k in files)
    parts += [f"<h2>Data</h2><p>{links}</p>",
              f"<details><summary>config</summary><pre>{escape(to_yaml(cfg))}</pre></details>",
              "</body></html>"]
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
