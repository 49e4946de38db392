"""talkfreq: audio-driven talking heads with a frequency-aware generator (FREAK / Wav2Lip) and a SOVQAE refiner."""

from talkfreq.errors import TalkfreqError

__version__ = "0.1.0"
__all__ = ["TalkfreqError", "__version__"]
