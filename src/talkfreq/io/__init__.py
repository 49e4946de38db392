"""Video and audio IO (PyAV): probing, streaming CFR decode, audio decode/resample, atomic h264+AAC writer."""

from talkfreq.io.audio import fit_length, is_silent, load_audio, load_video_audio
from talkfreq.io.media import MediaInfo, check_output, open_media, probe
from talkfreq.io.video import VideoReader, VideoWriter, aac_rate

__all__ = ["MediaInfo", "VideoReader", "VideoWriter", "aac_rate", "check_output", "fit_length", "is_silent",
           "load_audio", "load_video_audio", "open_media", "probe"]
