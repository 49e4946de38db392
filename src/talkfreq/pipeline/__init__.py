"""Streaming inference: paste-back (:mod:`talkfreq.pipeline.paste`) and the stage-2 refiner over a video
(:mod:`talkfreq.pipeline.refine`). Modules are imported on demand (no heavy imports here)."""
