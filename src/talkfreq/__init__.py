"""talkfreq: audio-driven talking heads with a frequency-aware generator (FREAK / Wav2Lip) and a SOVQAE refiner.

The public API (imported on first use, so ``import talkfreq`` stays cheap)::

    talkfreq.prepare(["clips/"], out="data/prep", cfg=talkfreq.PrepareConfig())   # crops, audio, mel, boxes
    talkfreq.infer("face.mp4", audio="speech.wav", stage1="runs/freak/model", refiner="runs/sovqae/model",
                   out="dubbed.mp4")
    talkfreq.refine("any_talking_head.mp4", refiner="runs/sovqae/model", out="refined.mp4")
    talkfreq.evaluate("real.mp4", {"freak": "dubbed.mp4"}, out="eval")             # metrics, figures, report.html
    talkfreq.compare_video("real.mp4", {"freak": "dubbed.mp4"}, out="side_by_side.mp4")
    model = talkfreq.load_model("runs/freak/model")                                  # any kind, by path

The networks (``FREAK``, ``Wav2Lip``, ``SyncNet``, ``SyncNetV2``, ``SOVQAE``) take ``config=`` as their config
dataclass or a dict; ``talkfreq.models.registry`` lists the kinds and registers new ones.
"""

from talkfreq._lazy import lazy_exports
from talkfreq.errors import TalkfreqError

__version__ = "0.1.0"

_EXPORTS = {
    "prepare": "talkfreq.data.prepare:prepare_dataset",
    "PrepareConfig": "talkfreq.data.prepare",
    "synthesize": "talkfreq.data.synth",
    "SynthConfig": "talkfreq.data.synth",
    "infer": "talkfreq.pipeline.infer",
    "InferConfig": "talkfreq.pipeline.infer",
    "refine": "talkfreq.pipeline.refine",
    "RefineConfig": "talkfreq.pipeline.refine",
    "evaluate": "talkfreq.report.evaluate",
    "EvalConfig": "talkfreq.report.evaluate",
    "compare_video": "talkfreq.report.compare_video",
    "load_model": "talkfreq.models.loading",
    **dict.fromkeys(("FREAK", "FREAKConfig", "Wav2Lip", "Wav2LipConfig", "SyncNet", "SyncNetConfig", "SyncNetV2",
                     "SyncNetV2Config", "SOVQAE", "SOVQAEConfig"), "talkfreq.models"),
}
__all__ = ["TalkfreqError", "__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
