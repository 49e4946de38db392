"""A stage-1 generator's own outputs on its training frames: the refiner's most realistic degraded inputs.

The refiner's restoration phase learns to map a degraded face crop to the clean one. Blur and down-up sampling teach
it to sharpen; what it meets in the pipeline is stage 1's output, whose errors are of another kind (a soft mouth of
roughly the right shape, a pale band of teeth, a ring where the generated lower face meets the kept pixels). So,
as LaDTalk's premise and the face-restoration literature suggest, the refiner also trains on (stage-1 output, clean)
pairs of the identity: :func:`write_stage1_outputs` runs the generator over every frame of a prepared dataset the
way the pipeline dubs (the model's own dubbing mask, each frame its own reference, the frame's own audio window) and
stores one ``(N, S, S, 3)`` uint8 array per clip, aligned with the clip's frames, at the prepared crop size
``S``. :class:`talkfreq.data.refiner_data.RefinerDataset` reads them (``data.stage1_outputs``, ``data.stage1_prob``).

Ours: the generator sees frames it was trained on, so its errors there are smaller than on unseen footage; the
writer logs the mouth PSNR of the outputs on the clip's last ``val_fraction`` (frames stage 1 validated on, not
trained on) next to the rest, so a user can see how much smaller. The refiner learns from both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from talkfreq.audio.features import feature_window
from talkfreq.data.datasets import mel_tensor
from talkfreq.data.degradations import stage1_output_pairs
from talkfreq.data.prepared import PreparedDataset
from talkfreq.data.refiner_data import tensor_to_uint8
from talkfreq.errors import TalkfreqError
from talkfreq.face.config import MOUTH_REGION, fraction_box
from talkfreq.metrics.fidelity import region_psnr
from talkfreq.models.loading import load_stage1
from talkfreq.pipeline import inputs as mi

log = logging.getLogger(__name__)

META_FILE = "stage1_outputs.json"


def model_digest(model_dir: Path) -> str:
    """A short hash of a ``model/`` folder's files (names and bytes): names the outputs of exactly these weights."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(model_dir).rglob("*") if p.is_file()):
        h.update(f.relative_to(model_dir).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def write_stage1_outputs(stage1: str | Path, *, data: str | Path, out: str | Path, batch_size: int = 16,
                         val_fraction: float = 0.1, threads: int = 0) -> Path:
    """Run the stage-1 model at ``stage1`` over every frame of the prepared dataset ``data`` into ``out``.

    Writes ``out/<clip_id>.npy`` ((N, S, S, 3) uint8, frame k = the generator's output for frame k, resized to
    the prepared crop size S; frames without a face hold the generator's output on the zero-filled crop and are
    never sampled) and ``out/stage1_outputs.json`` (the model, its digest, per-clip mouth PSNR). The folder is
    written beside ``out`` and renamed into place, so a crash leaves no half-written ``out``. Returns ``out``.
    """
    out = Path(out)
    model = load_stage1(stage1)
    model.eval()
    spec = mi.audio_spec(model)
    mask = mi.dub_mask(model)
    ds = PreparedDataset(Path(data))
    if not ds.metas:
        raise TalkfreqError(f"{data}: the prepared dataset has no finished clips")
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    report: dict[str, dict[str, float]] = {}
    try:
        for meta in ds.metas:
            clip = ds.clip(meta.clip_id)
            if spec.kind == "speech" and clip.speech is None:
                raise TalkfreqError(f"{clip.path}: the stage-1 model takes speech features, the clip has none "
                                    f"(prepare it with --speech-model)")

            def generate(faces: np.ndarray, idx: np.ndarray) -> np.ndarray:
                if spec.kind == "mel":
                    audio = np.stack([mel_tensor(clip, int(k)).numpy() for k in idx])  # as training windows it
                else:
                    audio = np.stack([feature_window(clip.speech, int(k), context=spec.context) for k in idx])
                with torch.inference_mode():
                    gen = mi.stage1_batch(model, targets=faces, references=faces, audio=audio.astype(np.float32),
                                          mask=mask)
                return tensor_to_uint8(gen.float())

            n = len(clip)
            arr = np.lib.format.open_memmap(tmp / f"{meta.clip_id}.npy", mode="w+", dtype=np.uint8,
                                            shape=(n, *clip.frames.shape[1:]))
            mouth_err, pos = np.zeros(n), 0
            mouth = fraction_box(MOUTH_REGION, clip.frames.shape[1])
            for degraded, clean in stage1_output_pairs(generate, clip.frames, batch_size=batch_size):
                arr[pos : pos + len(degraded)] = degraded
                mouth_err[pos : pos + len(degraded)] = region_psnr(degraded, clean, box=mouth, max_db=100.0,
                                                                  reduction="none")
                pos += len(degraded)
            arr.flush()
            del arr
            valid = np.asarray(clip.valid, dtype=bool)
            cut = n - max(1, int(round(val_fraction * n)))
            head, tail = valid.copy(), valid.copy()
            head[cut:], tail[:cut] = False, False
            report[meta.clip_id] = {"mouth_psnr_train": float(mouth_err[head].mean()) if head.any() else float("nan"),
                                    "mouth_psnr_val": float(mouth_err[tail].mean()) if tail.any() else float("nan")}
            log.info("stage-1 outputs of %s: mouth PSNR %.2f dB on its first frames, %.2f on its last %.0f%%",
                     meta.clip_id, report[meta.clip_id]["mouth_psnr_train"], report[meta.clip_id]["mouth_psnr_val"],
                     100 * val_fraction)
        meta_out = {"stage1": str(stage1), "digest": model_digest(Path(stage1)) if Path(stage1).is_dir() else None,
                    "mask": mask, "clips": report}
        (tmp / META_FILE).write_text(json.dumps(meta_out, indent=2) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    finally:
        torch.set_num_threads(old_threads)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def cached_stage1_outputs(stage1: str | Path, *, data: str | Path, root: str | Path, val_fraction: float = 0.1
                          ) -> tuple[Path, bool]:
    """``root/<digest of the stage-1 weights>``, written by :func:`write_stage1_outputs` unless it is there already
    (the digest makes another generator's outputs another folder, never reused by mistake). Returns the folder and
    whether it was written now."""
    folder = Path(root) / model_digest(Path(stage1))
    if (folder / META_FILE).is_file():
        return folder, False
    return write_stage1_outputs(stage1, data=data, out=folder, val_fraction=val_fraction), True


__all__ = ["META_FILE", "cached_stage1_outputs", "model_digest", "write_stage1_outputs"]
