"""The Python side of ``benchmarks/gpu_check.sh``: what runs where (``info``), the end-to-end clip (``video``) and
the one summary table and JSON (``summary``). The shell script owns the order of the parts and their time caps.

    python benchmarks/gpu_check.py info INFO.json
    python benchmarks/gpu_check.py video DEST.mp4 [--seconds S] [--size PX] [--wheels DIR]
    python benchmarks/gpu_check.py summary WORK OUT
    python benchmarks/gpu_check.py sizes FOLDER    # what a device call would carry, against its limit
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# the packages that decide whether the check means anything: what the machine has, or what the wheels brought
PACKAGES = ["torch", "lightning", "torchmetrics", "numpy", "cv2", "av", "omegaconf", "vector_quantize_pytorch",
            "einx", "einops", "transformers", "typer", "scipy"]
# what the parts import: an import error here is cheaper to read than one inside every part
MODULES = ["talkfreq.cli", "talkfreq.bench", "talkfreq.pipeline.infer", "talkfreq.training.syncnet",
           "talkfreq.training.stage1", "talkfreq.training.refiner"]
CLIP = "bench.mp4"  # the name under the wheels folder that `make gpu-wheels` gives the sample clip
# the sample clip of a checkout with the shared media beside it (talkfreq bench itself takes --video)
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "media" / "video" / "sadtalker_WDA_KatieHill_000.mp4"
TREE_LIMIT_MIB = 64  # what one device call may carry: the tree git sees plus the carried folders


def info(path: Path) -> int:
    """GPU, driver, torch/CUDA and package versions (where each package comes from); 1 if a talkfreq module does
    not import."""
    import platform

    import torch

    out: dict = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                 "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out |= {"gpu": props.name, "gpus": torch.cuda.device_count(), "capability": f"{props.major}.{props.minor}",
                "gpu_memory_gb": round(props.total_memory / 2**30, 1), "sms": props.multi_processor_count,
                "cudnn": torch.backends.cudnn.version(), "bf16": torch.cuda.is_bf16_supported()}
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        out["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    versions = {}
    for name in PACKAGES:
        try:
            mod = importlib.import_module(name)
            versions[name] = f"{getattr(mod, '__version__', '?')} ({Path(mod.__file__).parent.parent})"
        except Exception as exc:  # noqa: BLE001 - reported, not fatal: a part that needs it will say so
            versions[name] = f"missing: {type(exc).__name__}: {exc}"
    out["packages"] = versions
    failed = {}
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001
            failed[name] = f"{type(exc).__name__}: {exc}"
    out["import_errors"] = failed
    for k, v in out.items():
        if k != "packages":
            print(f"{k:>15}: {v}")
    for k, v in versions.items():
        print(f"{k:>25} {v}")
    path.write_text(json.dumps(out, indent=2) + "\n")
    return 1 if failed else 0


def video(dest: Path, *, seconds: float, size: int, wheels: Path) -> int:
    """The end-to-end clip at ``dest``: the sample clip carried with the wheels, else :data:`SAMPLE`, else a
    synthetic talking face (``size`` px, ``seconds`` long) so that a bare machine still runs end to end."""
    for source in (wheels / CLIP, SAMPLE):
        if source.is_file():
            shutil.copyfile(source, dest)
            print(f"end-to-end clip: {source}")
            return 0
    from talkfreq.data.synth import SynthConfig, synthesize

    synthesize(cfg=SynthConfig(identities=1, clips_per_identity=1, seconds=seconds, frame_size=size),
               out=dest.parent / "synth")
    shutil.copyfile(dest.parent / "synth" / "id00" / "id00_c00.mp4", dest)
    print(f"end-to-end clip: synthetic, {size} px, {seconds:g} s (no sample clip here)")
    return 0


def sizes(folder: Path, repo: Path) -> int:
    """Each file of ``folder``, its total, and with the files git would send (tracked and untracked-not-ignored) of
    ``repo``; 1 when that is over :data:`TREE_LIMIT_MIB`."""
    mib = 2**20
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for p in files:
        print(f"{p.stat().st_size / mib:9.2f} MiB  {p.name}")
    carried = sum(p.stat().st_size for p in files)
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, capture_output=True,
                            check=True).stdout.decode().split("\0")
    tree = sum((repo / f).stat().st_size for f in listed if f and (repo / f).is_file())
    total = (carried + tree) / mib
    print(f"{carried / mib:9.2f} MiB  {folder} in all\n{tree / mib:9.2f} MiB  the repository's tree\n"
          f"{total:9.2f} MiB  one device call (limit {TREE_LIMIT_MIB} MiB): "
          f"{'fits' if total <= TREE_LIMIT_MIB else 'TOO BIG'}")
    return 0 if total <= TREE_LIMIT_MIB else 1


# ------------------------------------------------------------------------------------------------- summary


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tests(xml: Path) -> dict:
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError):
        return {}
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failed = []
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
            failed.append(case.get("name"))
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts | {"failed_tests": failed}


def _bench_rows(label: str, data: dict) -> list[tuple[str, str, str]]:
    rows = []
    models = data["models"]
    for p in data["pipelines"]:
        best = str(p["best_batch"])
        for stage in ("stage1", "refiner"):
            m = models[p[stage]]
            r = m["speed"].get(best) or {}
            one = m["speed"].get(min(m["speed"], key=int)) or {}
            peak = data["header"].get("peak_flops")
            pct = 100 * m["gflops_per_frame"] * 1e9 * r["fps"] / peak if peak and r.get("fps") else None
            value = (f"{1000 / r['fps']:.2f} ms/frame at batch {best}" if r.get("fps") else "not measured")
            value += f", latency {one['latency_ms']:.1f} ms at batch {min(m['speed'], key=int)}" \
                if one.get("latency_ms") else ""
            value += f", {pct:.1f} % of peak" if pct is not None else ""
            value += f", {r['gpu_peak_mb']:.0f} MB GPU" if r.get("gpu_peak_mb") else ""
            rows.append((label, f"{p[stage]} ({stage})", value))
        for b, r in p["e2e"].items():
            value = f"{r['fps']:.1f} frames/s" if r.get("fps") else f"failed: {r.get('error', '?')}"
            if r.get("gpu_peak_mb"):
                value += f", {r['gpu_peak_mb']:.0f} MB GPU, {r['peak_rss_mb']:.0f} MB RSS"
            rows.append((label, f"end to end, batch {b}", value))
    for t in data["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "not measured"}[t["passed"]]
        rows.append((label, f"target {t['target']}", f"{t['text']} (need {t['need']}) {verdict}"))
    return rows


def summary(work: Path, out: Path) -> int:
    """One table: every part's status and time, then its numbers; everything also in ``out``/summary.json."""
    parts = []
    for line in (work / "parts.tsv").read_text().splitlines():
        name, rc, start, end, cap = line.split("\t")
        rc = int(rc)
        status = "ok" if rc == 0 else ("TIMEOUT" if rc in (124, 137) else f"FAILED (exit {rc})")
        parts.append({"part": name, "status": status, "rc": rc, "seconds": float(end) - float(start),
                      "cap_s": int(cap)})
    result = {"dry_run": (work / "dry_run").exists(), "parts": parts, "info": _load(work / "info.json"),
              "tests": _tests(out / "pytest.xml"), "bench": {}, "train": _load(out / "train.json")}
    rows: list[tuple[str, str, str]] = []
    inf = result["info"] or {}
    rows.append(("info", "device", f"{inf.get('gpu', 'no CUDA')}; {inf.get('nvidia_smi', 'no nvidia-smi')}"))
    rows.append(("info", "software", f"python {inf.get('python')}, torch {inf.get('torch')}, CUDA {inf.get('cuda')}"))
    t = result["tests"]
    if t:
        rows.append(("tests", "-m gpu", f"{t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped"
                     + (f": {', '.join(t['failed_tests'])}" if t["failed_tests"] else "")))
    for f in sorted(out.glob("bench_*.json")):
        data = _load(f)
        if data:
            label = "bench " + f.stem.split("_", 1)[1]
            result["bench"][label] = data
            rows += _bench_rows(label, data)
    for r in result["train"] or []:
        rows.append(("train", f"{r['model']} ({r['device']}, {r['precision']})",
                     f"{r['images_per_second']:.1f} images/s at batch {r['batch']}, {r['size']} px"))
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")

    total = sum(p["seconds"] for p in parts)
    print(f"\ngpu check{' (dry run, CPU, tiny sizes)' if result['dry_run'] else ''}: {total:.0f} s in all; "
          f"files in {out}")
    w = min(max(len(r[1]) for r in [*rows, ('', 'status / measure')]), 44)  # longer: pushes its own value along
    print(f"{'part':<10} {'status / measure':<{w}}  value\n" + "-" * (w + 60))
    for p in parts:
        print(f"{p['part']:<10} {p['status']:<{w}}  {p['seconds']:.0f} s (cap {p['cap_s']} s)")
    for part, what, value in rows:
        print(f"{part:<10} {what:<{w}}  {value}")
    return 0 if all(p["rc"] == 0 for p in parts) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info").add_argument("path", type=Path)
    v = sub.add_parser("video")
    v.add_argument("dest", type=Path)
    v.add_argument("--seconds", type=float, default=8.0)
    v.add_argument("--size", type=int, default=512)
    v.add_argument("--wheels", type=Path, default=Path(".whl"))
    s = sub.add_parser("summary")
    s.add_argument("work", type=Path)
    s.add_argument("out", type=Path)
    sub.add_parser("sizes").add_argument("folder", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "info":
        return info(args.path)
    if args.cmd == "sizes":
        return sizes(args.folder, Path(__file__).resolve().parents[1])
    if args.cmd == "video":
        return video(args.dest, seconds=args.seconds, size=args.size, wheels=args.wheels)
    return summary(args.work, args.out)


if __name__ == "__main__":
    sys.exit(main())
