"""Rendering of the procedural talking face used by :mod:`talkfreq.data.synth` (our own design, no paper behind it).

An :class:`Identity` is drawn once, in a *canonical* frame (face upright and centred), into a premultiplied RGBA
layer: skin with shading, eyes, brows, nose, hair and shoulders, plus the high-frequency detail a refiner has to
restore (hair strands, pores, wrinkles, moles, eyelashes, brow strands). Per frame only the mouth (a known function
of the audio) and the eyelids (blinks) are drawn onto a copy of that layer, which is then warped by the head motion
(one ``cv2.warpAffine``) and laid over a fixed background. Nothing else is random per frame, so the detail is the
same texture in every frame of an identity and can be learnt.

Every high-frequency element is scaled by ``detail`` in [0, 1]; ``detail=0`` renders the same face with the same
low-frequency shading and no texture (the "blurry generator output" counterpart of the same face).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

VOWELS = "aeiou"
_TEETH_H = 0.3  # visible height of the upper teeth, in units of gap_max
_AA = cv2.LINE_AA
_SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel motion of the lips instead of 1-px jumps
_ONE = 1 << _SHIFT

_SKIN = np.array([[245, 205, 180], [234, 186, 150], [214, 160, 120], [190, 135, 95], [150, 100, 70],
                  [112, 74, 52]], np.float32)
_HAIR = np.array([[25, 20, 18], [60, 40, 28], [105, 70, 40], [150, 80, 40], [205, 170, 110], [150, 145, 140]],
                 np.float32)
_IRIS = np.array([[85, 55, 30], [60, 100, 150], [75, 110, 70], [120, 90, 50]], np.float32)


@dataclass(frozen=True)
class FaceGeometry:
    """Canonical positions in pixels: face ellipse centre (cx, cy) and half-axes (a, b), features relative to it."""

    cx: float
    cy: float
    a: float
    b: float
    eye_dx: float
    eye_y: float
    eye_hw: float
    eye_hh: float
    brow_y: float
    nose_y: float
    mouth_y: float
    mouth_hw: float
    lip_up: float
    lip_lo: float
    gap_max: float


@dataclass
class Identity:
    """One procedural person. ``face``: (S, S, 4) uint8 premultiplied RGBA canonical layer with the eyes open and
    skin where the lips go; ``background``: (S, S, 3) uint8; ``lids``: per eye (x0, y0, patch (h, w, 4) uint8 of
    the closed lid, top (w,), bottom (w,) lid curves in patch rows)."""

    index: int
    name: str
    size: int
    detail: float
    geom: FaceGeometry
    face: np.ndarray
    background: np.ndarray
    lids: list
    colors: dict
    creases: tuple[np.ndarray, np.ndarray]
    f0: float
    formant_scale: float


def _mask(size: int, draw) -> np.ndarray:
    """Coverage in [0, 1] of what ``draw(canvas)`` paints with 255 on an (S, S) uint8 canvas (anti-aliased)."""
    m = np.zeros((size, size), np.uint8)
    draw(m)
    return m.astype(np.float32) * (1.0 / 255.0)


def _fix(pts) -> np.ndarray:
    return np.round(np.asarray(pts, np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _gauss(xx, yy, x, y, sx, sy):
    return np.exp(-0.5 * (((xx - x) / sx) ** 2 + ((yy - y) / sy) ** 2))


def _over(img, al, cov, col):
    """Premultiplied 'over' of an opaque colour (tuple or (S, S, 3) map) with coverage ``cov`` (S, S)."""
    c = cov[..., None]
    img *= 1.0 - c
    img += c * np.asarray(col, np.float32)
    al += (1.0 - al) * cov


def _strands(rng, n, starts_fn, field_fn, length, steps=8, curl=0.15):
    """Trace ``n`` hair strands along an orientation field: list of (steps+1, 2) float polylines."""
    p = starts_fn(n)
    lens = length * rng.uniform(0.5, 1.3, n)
    bend = rng.normal(0.0, curl, n)
    pts = [p]
    ang0 = rng.normal(0.0, 0.12, n)
    for k in range(steps):
        d = field_fn(p)
        ang = ang0 + bend * k
        c, s = np.cos(ang), np.sin(ang)
        d = np.stack([d[:, 0] * c - d[:, 1] * s, d[:, 0] * s + d[:, 1] * c], 1)
        p = p + d * (lens / steps)[:, None]
        pts.append(p)
    return np.stack(pts, 1)


def _shades(rng, n, spread):
    """Per-strand brightness offsets in [-spread, spread], drawn in random order so no shade ends on top."""
    return rng.uniform(-spread, spread, n)


def _draw_strands(rng, shape, lines, base, spread=0.45):
    """Draw polylines in shades around ``base``; returns premultiplied colour (S, S, 3) and coverage (S, S)."""
    col = np.zeros(shape + (3,), np.uint8)
    cov = np.zeros(shape, np.uint8)
    for line, f in zip(lines, _shades(rng, len(lines), spread)):
        c = tuple(float(v) for v in np.clip(np.asarray(base) * (1 + f) + 12.0 * f, 0, 255))
        cv2.polylines(col, [_fix(line)], False, c, 1, _AA, _SHIFT)
        cv2.polylines(cov, [_fix(line)], False, 255, 1, _AA, _SHIFT)
    return col.astype(np.float32), cov.astype(np.float32) / 255.0


def _modulation(rng, shape, lines, depth=0.45):
    """Brightness offset map (S, S) from anti-aliased strands of random shade in [-depth, depth] (zero mean), so
    the strands add texture without changing the hair's local mean colour (the detail=0 face is its low-pass)."""
    canvas = np.full(shape, 128, np.uint8)  # AA blending on a 128 base turns into coverage * offset
    for line, f in zip(lines, _shades(rng, len(lines), 1.0)):
        cv2.polylines(canvas, [_fix(line)], False, 128 + 120 * f, 1, _AA, _SHIFT)
    return (canvas.astype(np.float32) - 128.0) * (depth / 120.0)


def _geometry(rng, s: float) -> FaceGeometry:
    a = s * 0.215 * rng.uniform(0.95, 1.05)
    b = s * 0.285 * rng.uniform(0.96, 1.04)
    cy = s * 0.47
    return FaceGeometry(cx=s * 0.5, cy=cy, a=a, b=b, eye_dx=a * 0.42, eye_y=cy - s * 0.03, eye_hw=a * 0.2,
                        eye_hh=s * 0.016, brow_y=cy - s * 0.083, nose_y=cy + s * 0.085, mouth_y=cy + s * 0.158,
                        mouth_hw=a * 0.36 * rng.uniform(0.92, 1.08), lip_up=s * 0.017, lip_lo=s * 0.023,
                        gap_max=s * 0.06)


def _eye_curves(g: FaceGeometry, side: int, xs: np.ndarray):
    """Upper and lower lid curves y(x) of one eye (almond: two sine arcs, outer corner slightly raised)."""
    ex = g.cx + side * g.eye_dx
    t = np.clip((xs - ex) / g.eye_hw, -1.0, 1.0)
    arc = np.maximum(np.cos(t * math.pi / 2), 0.0)
    tilt = -side * t * g.eye_hh * 0.15
    return g.eye_y + tilt - g.eye_hh * 1.15 * arc ** 0.8, g.eye_y + tilt + g.eye_hh * 0.85 * arc ** 0.9


def _skin_detail(rng, g: FaceGeometry, S: int) -> tuple[np.ndarray, np.ndarray]:
    """High-pass skin darkening (S, S, 1) from fine grain, pore spots and wrinkles, and mole coverage (S, S) uint8."""
    s = float(S)
    grain = cv2.GaussianBlur(rng.standard_normal((S, S)).astype(np.float32), (0, 0), 0.6) * 0.06
    spots = np.zeros((S, S), np.float32)
    n_sp = int(S * S / 70)
    spots[rng.integers(0, S, n_sp), rng.integers(0, S, n_sp)] = rng.uniform(1.5, 3.5, n_sp)
    spots = cv2.GaussianBlur(spots, (0, 0), 0.7)
    wr = np.zeros((S, S), np.uint8)
    for k in range(rng.integers(2, 5)):
        y0 = g.brow_y - 0.02 * s - k * rng.uniform(0.012, 0.016) * s
        xs = np.linspace(g.cx - rng.uniform(0.4, 0.6) * g.a, g.cx + rng.uniform(0.4, 0.6) * g.a, 24)
        wave = 0.004 * s * np.sin(xs / s * rng.uniform(15, 30) + rng.uniform(0, 6))
        ys = y0 + wave + 0.05 * s * ((xs - g.cx) / g.a) ** 2
        cv2.polylines(wr, [_fix(np.stack([xs, ys], 1))], False, 255, 1, _AA, _SHIFT)
    for side in (-1, 1):
        ox = g.cx + side * (g.eye_dx + g.eye_hw * 1.15)
        for ang in np.radians([-25, 0, 22]) + rng.normal(0, 0.08, 3):
            p0 = (ox, g.eye_y)
            p1 = (ox + side * 0.035 * s * math.cos(ang), g.eye_y + 0.035 * s * math.sin(ang))
            cv2.polylines(wr, [_fix([p0, p1])], False, 255, 1, _AA, _SHIFT)
        xs = np.linspace(-0.8, 0.8, 12) * g.eye_hw + g.cx + side * g.eye_dx
        cv2.polylines(wr, [_fix(np.stack([xs, g.eye_y + g.eye_hh * 1.9 + 0.006 * s * (xs - xs.mean()) ** 2
                                          / g.eye_hw ** 2], 1))], False, 180, 1, _AA, _SHIFT)
        ys = np.linspace(g.nose_y - 0.005 * s, g.mouth_y + 0.01 * s, 12)
        xs = g.cx + side * (0.05 * s + 0.2 * (ys - g.nose_y) + 4.0 * (ys - g.nose_y) ** 2 / s)  # nasolabial fold
        cv2.polylines(wr, [_fix(np.stack([xs, ys], 1))], False, 110, 1, _AA, _SHIFT)
    moles = np.zeros((S, S), np.uint8)
    for _ in range(rng.integers(1, 3)):
        mx = g.cx + rng.choice([-1, 1]) * rng.uniform(0.45, 0.7) * g.a
        my = rng.uniform(g.nose_y - 0.03 * s, g.mouth_y + 0.02 * s)
        cv2.circle(moles, (int(mx * _ONE), int(my * _ONE)), int(rng.uniform(1.1, 1.9) * s / 256 * _ONE), 255, -1, _AA,
                   _SHIFT)
    tex = np.clip(0.32 * wr / 255.0 + 0.12 * np.clip(spots, 0, 1) - grain, -0.3, 0.8)
    # high-pass: texture moves no local mean, so the detail=0 face is the low-pass of the detailed one
    tex = (tex - cv2.GaussianBlur(tex, (0, 0), 4.0 * s / 256))[..., None]
    return tex, moles


def _draw_eyes(rng, img, al, g: FaceGeometry, S: int, d: float, *, hair, skin, iris, bare) -> list:
    """Sclera, iris, pupil, lid line (low frequency), crease and lashes (detail) on ``img``/``al`` in place.

    ``bare``: the face before the eyes, the skin of the closed lids. Returns the lid data of :class:`Identity`.
    """
    s = float(S)
    yy = np.mgrid[0:S, 0:S][0].astype(np.float32)
    ell = lambda cx, cy, r: lambda m: cv2.ellipse(  # noqa: E731
        m, (int(cx * _ONE), int(cy * _ONE)), (int(r * _ONE), int(r * _ONE)), 0, 0, 360, 255, -1, _AA, _SHIFT)
    lids = []
    for side in (-1, 1):
        ex = g.cx + side * g.eye_dx
        xs = np.linspace(ex - g.eye_hw, ex + g.eye_hw, 24)
        up, lo = _eye_curves(g, side, xs)
        almond = np.concatenate([np.stack([xs, up], 1), np.stack([xs, lo], 1)[::-1]])
        sclera = _mask(S, lambda m: cv2.fillPoly(m, [_fix(almond)], 255, _AA, _SHIFT))
        _over(img, al, sclera, np.array([225, 220, 215], np.float32) * (0.85 + 0.15 * (yy > g.eye_y)[..., None]))
        iris_m = _mask(S, ell(ex, g.eye_y, g.eye_hh * 1.05)) * sclera
        _over(img, al, iris_m, iris * (0.75 + 0.4 * np.clip((yy - g.eye_y) / g.eye_hh, 0, 1))[..., None])
        _over(img, al, _mask(S, ell(ex, g.eye_y, g.eye_hh * 0.45)) * sclera, (10, 8, 8))
        glint = ell(ex + 0.35 * g.eye_hh, g.eye_y - 0.35 * g.eye_hh, 0.14 * g.eye_hh + 0.5)
        _over(img, al, _mask(S, glint), (250, 250, 250))
        lw = max(1, round(s / 160))
        _over(img, al, _mask(S, lambda m: cv2.polylines(m, [_fix(np.stack([xs, up], 1))], False, 255, lw, _AA, _SHIFT)),
              hair * 0.25)
        lm = _mask(S, lambda m: cv2.polylines(m, [_fix(np.stack([xs, lo], 1))], False, 255, 1, _AA, _SHIFT))
        _over(img, al, lm * 0.5, skin * 0.45)
        crease = _mask(S, lambda m: cv2.polylines(m, [_fix(np.stack([xs[3:-3], up[3:-3] - g.eye_hh * 0.7], 1))],
                                                  False, 255, 1, _AA, _SHIFT))
        _over(img, al, crease * 0.6 * d, skin * 0.55)
        k = np.linspace(2, 21, 16).astype(int)
        base = np.stack([xs[k], up[k]], 1)
        tip = base + np.stack([side * (k - 11) / 11 * 0.006 * s + side * 0.003 * s, -0.012 * s * np.ones(16)], 1)
        mid = (base + tip) / 2 + [[side * 0.002 * s, 0.0]]
        col, cov = _draw_strands(rng, (S, S), np.stack([base, mid, tip], 1), hair * 0.3 + 5, spread=0.2)
        img[:] = img * (1 - d * cov[..., None]) + d * col
        # the closed lid for blinks: skin as it was before the eye was drawn, with a lash line at its lower edge
        x0, x1 = int(ex - g.eye_hw) - 2, int(ex + g.eye_hw) + 3
        y0, y1 = int(up.min()) - 2, int(lo.max()) + 3
        px = np.arange(x0, x1, dtype=np.float32)
        pu, pl = _eye_curves(g, side, px)
        patch = np.concatenate([bare[y0:y1, x0:x1] * 0.93, np.full((y1 - y0, x1 - x0, 1), 255.0)], 2)
        lids.append((x0, y0, np.clip(patch + 0.5, 0, 255).astype(np.uint8), pu - y0 - 1.0, pl - y0 + 0.5))

    return lids


def make_identity(*, index: int, size: int = 256, seed: int = 0, detail: float = 1.0) -> Identity:
    """Draw identity ``index`` of dataset ``seed`` at ``size`` px (the same person for every config with that seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919, int(index)]))
    S = int(size)
    s = float(S)
    d = float(detail)
    g = _geometry(rng, s)
    skin = np.clip(_SKIN[rng.integers(0, len(_SKIN))] * rng.uniform(0.95, 1.05, 3), 0, 255)
    hair = np.clip(_HAIR[rng.integers(0, len(_HAIR))] * rng.uniform(0.9, 1.1, 3), 0, 255)
    iris = _IRIS[rng.integers(0, len(_IRIS))]
    cloth = rng.uniform(30, 200, 3).astype(np.float32)
    long_hair = rng.random() < 0.4
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    img = np.zeros((S, S, 3), np.float32)
    al = np.zeros((S, S), np.float32)
    ell = lambda cx, cy, ax, ay, ang=0.0: lambda m: cv2.ellipse(  # noqa: E731
        m, (int(cx * _ONE), int(cy * _ONE)), (int(ax * _ONE), int(ay * _ONE)), ang, 0, 360, 255, -1, _AA, _SHIFT)

    # hair cap: inside a slightly larger ellipse and above a per-identity hairline with a fringe wave
    hx, hy, ha, hb = g.cx, g.cy - 0.01 * s, g.a * 1.12, g.b * 1.09
    u = (xx - g.cx) / g.a
    y_c = g.brow_y - s * rng.uniform(0.055, 0.085)
    side_drop = (g.eye_y + s * 0.035 - y_c) * np.clip((np.abs(u) - 0.8) / 0.15, 0, 1)
    hairline = (y_c - s * 0.03 * u ** 2 + s * rng.uniform(-0.015, 0.015) * u
                + s * 0.006 * np.sin(rng.uniform(4, 9) * u + rng.uniform(0, 6.3)) + side_drop)
    q = np.sqrt(((xx - hx) / ha) ** 2 + ((yy - hy) / hb) ** 2)
    cap = np.clip((1.0 - q) * min(ha, hb) + 0.5, 0, 1) * np.clip(hairline - yy + 0.5, 0, 1)
    crown = np.array([g.cx + s * rng.uniform(-0.06, 0.06), hy - hb * 1.0])
    sweep = rng.uniform(-0.5, 0.5)

    def hair_field(p):
        v = p - crown
        v = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-6)
        c, sn = math.cos(sweep), math.sin(sweep)
        return np.stack([v[:, 0] * c - v[:, 1] * sn, v[:, 0] * sn + v[:, 1] * c], 1)

    def starts_in(mask):
        ys, xs = np.nonzero(mask > 0.5)
        return lambda n: np.stack([xs, ys], 1)[rng.integers(0, len(xs), n)] + rng.random((n, 2)).astype(np.float32)

    hair_shade = (0.8 + 0.35 * _gauss(xx, yy, g.cx - 0.3 * g.a, hy - 0.6 * hb, 0.3 * g.a, 0.25 * hb))[..., None]

    # back layer: long hair, shoulders, neck, ears
    if long_hair:
        back = _mask(S, ell(g.cx, g.cy + 0.08 * s, g.a * 1.3, g.b * 1.05))
        back *= np.clip((g.cy + g.b * 1.1 - yy) / (0.03 * s), 0, 1)
        _over(img, al, back, hair * 0.7)
        lines = _strands(rng, int(900 * (s / 256) ** 2), starts_in(back), lambda p: np.tile([[0.0, 1.0]], (len(p), 1)),
                         0.16 * s, curl=0.05)
        mod = (d * back * _modulation(rng, (S, S), lines))[..., None]
        img[:] = np.clip(img * (1.0 + mod) + 50.0 * mod * back[..., None], 0, 255)
    _over(img, al, _mask(S, ell(g.cx, g.cy + g.b + 0.3 * s, 0.42 * s, 0.26 * s)), cloth)
    neck = _mask(S, lambda m: cv2.rectangle(m, (int((g.cx - 0.55 * g.a) * _ONE), int(g.cy * _ONE)),
                                            (int((g.cx + 0.55 * g.a) * _ONE), int((g.cy + g.b + 0.1 * s) * _ONE)),
                                            255, -1, _AA, _SHIFT))
    neck_shade = 0.72 + 0.12 * np.clip((yy - g.cy - g.b) / (0.1 * s), 0, 1)
    _over(img, al, neck, skin * neck_shade[..., None])
    for side in (-1, 1):
        _over(img, al, _mask(S, ell(g.cx + side * g.a * 0.97, g.eye_y + 0.035 * s, 0.03 * s, 0.055 * s)), skin * 0.82)

    # skin: low-frequency shading that gives the Haar cascade its cues (dark sockets, lit bridge, shaded sides)
    un, vn = (xx - g.cx) / g.a, (yy - g.cy) / g.b
    r2 = un ** 2 + vn ** 2
    sh = 1.0 - 0.25 * np.clip(r2, 0, 1.2) ** 2.5 + 0.05 * _gauss(xx, yy, g.cx, g.cy - 0.55 * g.b, g.a * 0.5, g.b * 0.2)
    for side in (-1, 1):
        ex = g.cx + side * g.eye_dx
        sh -= 0.2 * _gauss(xx, yy, ex, g.eye_y - 0.004 * s, 0.055 * s, 0.03 * s)
        sh -= 0.10 * _gauss(xx, yy, g.cx + side * 0.032 * s, g.nose_y - 0.02 * s, 0.01 * s, 0.035 * s)
        sh += 0.05 * _gauss(xx, yy, g.cx + side * 0.6 * g.a, g.nose_y, 0.05 * s, 0.04 * s)
        fold = _gauss(xx, yy, g.cx + side * (0.045 * s + 0.4 * (yy - g.nose_y)), g.nose_y + 0.05 * s,
                      0.006 * s, 0.045 * s)
        sh -= 0.07 * fold
    bridge = np.exp(-0.5 * ((xx - g.cx) / (0.013 * s)) ** 2) * np.clip((yy - g.eye_y + 0.02 * s) / (0.02 * s), 0, 1)
    sh += 0.09 * bridge * np.clip((g.nose_y - yy) / (0.02 * s), 0, 1)
    sh -= 0.13 * _gauss(xx, yy, g.cx, g.nose_y + 0.012 * s, 0.03 * s, 0.008 * s)
    sh -= 0.09 * _gauss(xx, yy, g.cx, g.mouth_y + 0.05 * s, 0.05 * s, 0.012 * s)
    blush = _gauss(xx, yy, g.cx, g.nose_y, 0.5 * g.a, 0.05 * s) * (1 - bridge)
    skin_map = skin * sh[..., None] + (blush * 10.0)[..., None] * np.array([1.0, -0.5, -0.5], np.float32)

    tex, moles = _skin_detail(rng, g, S)
    # relative and absolute darkening, so the texture still shows on dark skin where a relative one would fade
    skin_map = skin_map * (1.0 - d * tex) - d * 25.0 * tex
    moles_f = d * moles.astype(np.float32) / 255.0  # moles are detail too
    skin_map = skin_map * (1 - moles_f[..., None]) + moles_f[..., None] * np.array([70, 45, 35], np.float32)
    _over(img, al, _mask(S, ell(g.cx, g.cy, g.a, g.b)), skin_map)
    for side in (-1, 1):  # nostrils
        _over(img, al, _mask(S, ell(g.cx + side * 0.014 * s, g.nose_y, 0.009 * s, 0.0045 * s, side * 20)),
              skin * 0.35)

    # brows: a soft dark band (low frequency) with strands on top (detail)
    # never lighter than half the skin's luminance: light brows on dark skin lose the cascade's strongest cue
    lum = np.array([0.299, 0.587, 0.114], np.float32)
    brow = hair * min(0.8, 0.5 * float(skin @ lum) / max(float(hair @ lum), 1.0))
    for side in (-1, 1):
        bx = g.cx + side * g.eye_dx
        xs = np.linspace(-1, 1, 16)
        top = np.stack([bx + side * xs * g.eye_hw * 1.35, g.brow_y - 0.006 * s * (1 - xs ** 2)], 1)
        th = 0.011 * s * (1.2 - 0.5 * (xs + 1) / 2)
        poly = np.concatenate([top, (top + np.stack([0 * xs, th], 1))[::-1]])
        band = _mask(S, lambda m: cv2.fillPoly(m, [_fix(poly)], 255, _AA, _SHIFT))
        _over(img, al, cv2.GaussianBlur(band, (0, 0), 0.8) * 0.8, brow)
        starts = lambda n: poly[rng.integers(0, 16, n)] + rng.random((n, 2)) * [[0, 1]] * th.max()  # noqa: E731
        lines = _strands(rng, int(120 * s / 256), starts, lambda p: np.tile([[side * 0.95, -0.3]], (len(p), 1)),
                         0.025 * s, steps=4, curl=0.06)
        col, cov = _draw_strands(rng, (S, S), lines, brow, spread=0.3)
        img[:] = img * (1 - d * cov[..., None]) + d * col

    lids = _draw_eyes(rng, img, al, g, S, d, hair=hair, skin=skin, iris=iris, bare=img.copy())

    # hair cap over the forehead: base colour with smooth shading, strands on top (detail)
    n_str = int(1800 * (s / 256) ** 2)
    lines = _strands(rng, n_str, starts_in(cap), hair_field, 0.13 * s)
    mod = d * _modulation(rng, (S, S), lines)[..., None]
    # multiplicative and additive, so strands show on black hair too; both are zero-mean
    _over(img, al, cap, np.clip(hair * hair_shade * (1.0 + mod) + 50.0 * mod, 0, 255))

    face = np.concatenate([img, al[..., None] * 255.0], 2)
    face = np.clip(face + 0.5, 0, 255).astype(np.uint8)
    lip = np.clip(skin * np.array([0.85, 0.58, 0.6]) + np.array([30, 0, 5]), 0, 255)
    colors = dict(lip=lip, lip_lo=np.clip(lip * 1.1 + 8, 0, 255), lip_line=lip * 0.55, cavity=np.array([45, 12, 18.]),
                  teeth=np.array([232, 226, 210.]) * 0.7, skin=skin)
    # vertical lip creases at fixed positions along each lip (fractions of the half-width), drawn per frame
    creases = (np.sort(rng.uniform(-0.8, 0.8, rng.integers(8, 13))),
               np.sort(rng.uniform(-0.8, 0.8, rng.integers(9, 14))))
    return Identity(index=int(index), name=f"id{int(index):02d}", size=S, detail=d, geom=g, face=face,
                    background=_background(rng, S), lids=lids, colors=colors, creases=creases,
                    f0=float(rng.uniform(100, 220)), formant_scale=float(rng.uniform(0.92, 1.12)))


def _background(rng, S: int) -> np.ndarray:
    """A dark two-colour gradient with mild texture. Dark for every skin tone: with a light or mid-grey background
    equalizeHist squeezes a darker face into a few grey levels and the Haar cascade misses it (measured)."""
    target = rng.uniform(28, 62)
    cols = []
    for _ in range(2):
        c = rng.uniform(0.3, 1.0, 3)
        c = c / float(c @ np.array([0.299, 0.587, 0.114])) * (target + rng.uniform(-15, 15))
        cols.append(np.clip(c, 0, 255))
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / S
    t = np.clip(0.5 + (xx - 0.5) * math.cos(ang) + (yy - 0.5) * math.sin(ang), 0, 1)[..., None]
    bg = cols[0] * (1 - t) + cols[1] * t
    low = cv2.GaussianBlur(rng.standard_normal((S, S)).astype(np.float32), (0, 0), S / 24) * (S / 24) * 2.5
    bg = bg + low[..., None] * 4.0 + rng.standard_normal((S, S, 1)).astype(np.float32) * 2.0
    return np.clip(bg + 0.5, 0, 255).astype(np.uint8)


def mouth_contours(g: FaceGeometry, *, openness: float, width: float, n: int = 21) -> dict[str, np.ndarray]:
    """Lip contours in canonical pixels for a given openness in [0, 1] and width factor: (n, 2) arrays.

    The jaw drops the lower lip (70% of the gap) more than the upper lip rises (30%); lips thin as they spread.
    """
    hw = g.mouth_hw * width
    gap = float(np.clip(openness, 0, 1)) * g.gap_max
    u = np.linspace(-1.0, 1.0, n)
    bell = np.maximum(1.0 - u ** 2, 0.0)
    xs = g.cx + u * hw
    thin = 1.0 / math.sqrt(max(width, 0.5))
    corner = g.mouth_y - 0.15 * g.lip_up * (1 - bell)  # corners slightly raised: a relaxed, closed mouth
    in_up = corner - 0.3 * gap * bell ** 0.6
    in_lo = corner + 0.7 * gap * bell ** 0.6
    bow = 1.0 - 0.35 * np.exp(-((u / 0.14) ** 2)) + 0.12 * np.exp(-(((np.abs(u) - 0.25) / 0.12) ** 2))
    out_up = in_up - g.lip_up * thin * bell ** 0.45 * bow
    out_lo = in_lo + g.lip_lo * thin * bell ** 0.5
    return dict(in_up=np.stack([xs, in_up], 1), in_lo=np.stack([xs, in_lo], 1), out_up=np.stack([xs, out_up], 1),
                out_lo=np.stack([xs, out_lo], 1))


def _col(c) -> tuple:
    return (float(c[0]), float(c[1]), float(c[2]), 255.0)


def draw_mouth(img: np.ndarray, ident: Identity, *, openness: float, width: float) -> None:
    """Draw lips, cavity, teeth, contour and creases on the canonical (S, S, 4) uint8 layer ``img`` in place."""
    c, d = ident.colors, ident.detail
    mc = mouth_contours(ident.geom, openness=openness, width=width)
    up, lo, oup, olo = mc["in_up"], mc["in_lo"], mc["out_up"], mc["out_lo"]
    fill = lambda pts, col: cv2.fillPoly(img, [_fix(pts)], _col(col), _AA, _SHIFT)  # noqa: E731
    fill(np.concatenate([oup, olo[::-1]]), c["lip"])
    fill(np.concatenate([up, olo[::-1]]), c["lip_lo"])
    gap = float(np.max(lo[:, 1] - up[:, 1]))
    if gap > 0.3:
        fill(np.concatenate([up, lo[::-1]]), c["cavity"])
        teeth_h = _TEETH_H * ident.geom.gap_max
        tb = np.stack([up[:, 0], np.minimum(up[:, 1] + teeth_h * np.sqrt(np.maximum(
            0.0, 1 - (up[:, 0] - up[10, 0]) ** 2 / (up[0, 0] - up[10, 0]) ** 2)), lo[:, 1])], 1)
        fill(np.concatenate([up[3:-3], tb[3:-3][::-1]]), c["teeth"] * (0.8 + 0.2 * min(1.0, gap / teeth_h)))
        for k in (7, 10, 13):  # gaps between the front teeth
            cv2.line(img, tuple(_fix(up[k])[0, 0]), tuple(_fix(tb[k])[0, 0]), _col(c["teeth"] * (1 - 0.25 * d)), 1,
                     _AA, _SHIFT)
    line = c["lip"] * (1 - d) + c["lip_line"] * d
    cv2.polylines(img, [_fix(np.concatenate([oup, olo[::-1]]))], True, _col(line), 1, _AA, _SHIFT)
    cv2.polylines(img, [_fix(up)], False, _col(c["cavity"] * 0.7 + c["lip"] * 0.3), 1, _AA, _SHIFT)
    crease = _col(c["lip"] * (1 - 0.4 * d) + c["lip_line"] * 0.4 * d)
    for (inner, outer, frac), us in zip(((up, oup, 0.75), (lo, olo, 0.7)), ident.creases):
        xi = (us + 1.0) * 0.5 * (len(inner) - 1)
        i0 = np.clip(xi.astype(int), 0, len(inner) - 2)
        w = (xi - i0)[:, None]
        pi = inner[i0] * (1 - w) + inner[i0 + 1] * w
        po = outer[i0] * (1 - w) + outer[i0 + 1] * w
        segs = [_fix([a, a + (b - a) * frac]) for a, b in zip(pi, po)]
        cv2.polylines(img, segs, False, crease, 1, _AA, _SHIFT)


def draw_lids(img: np.ndarray, ident: Identity, blink: float) -> None:
    """Close both eyes by ``blink`` in [0, 1] (1 = shut) on the canonical (S, S, 4) uint8 layer in place."""
    if blink <= 0.02:
        return
    for x0, y0, patch, top, bot in ident.lids:
        h, w = patch.shape[:2]
        edge = top + (bot - top) * min(1.0, blink)
        rows = np.arange(h, dtype=np.float32)[:, None]
        cov = np.clip(edge[None, :] - rows + 0.5, 0, 1)[..., None]
        roi = img[y0:y0 + h, x0:x0 + w]
        roi[:] = (roi * (1 - cov) + patch * cov + 0.5).astype(np.uint8)
        xs = np.arange(x0, x0 + w, dtype=np.float32)
        lash = np.stack([xs[2:-2], y0 + edge[2:-2]], 1)
        cv2.polylines(img, [_fix(lash)], False, _col(ident.colors["lip_line"] * 0.4), max(1, round(ident.size / 200)),
                      _AA, _SHIFT)


def head_matrix(g: FaceGeometry, *, tx: float, ty: float, rot: float, scale: float) -> np.ndarray:
    """(2, 3) canonical->frame affine: rotate by ``rot`` degrees and scale about the face centre, then shift (px)."""
    m = cv2.getRotationMatrix2D((g.cx, g.cy), rot, scale)
    m[:, 2] += (tx, ty)
    return m


def render_frame(ident: Identity, *, openness: float, width: float, blink: float, matrix: np.ndarray,
                 scratch: np.ndarray | None = None) -> np.ndarray:
    """One (S, S, 3) uint8 RGB frame. ``scratch``: optional (S, S, 4) uint8 buffer reused between frames."""
    work = scratch if scratch is not None else np.empty_like(ident.face)
    np.copyto(work, ident.face)
    draw_mouth(work, ident, openness=openness, width=width)
    draw_lids(work, ident, blink)
    S = ident.size
    # the bottom edge (shoulders) is replicated so the body never ends inside the frame; the other edges are empty
    warped = cv2.warpAffine(work, matrix, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inv = 255 - warped[..., 3]
    bgw = cv2.multiply(ident.background, cv2.merge([inv, inv, inv]), scale=1.0 / 255.0)
    return cv2.add(warped[..., :3], bgw)
