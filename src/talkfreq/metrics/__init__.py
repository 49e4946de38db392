"""Evaluation metrics on frame batches: fidelity, frequency, sharpness, temporal flicker, lip sync, mouth
opening."""

from talkfreq.metrics.fidelity import as_frames, crop_box, fid_score, lpips_score, psnr, region_psnr, region_ssim, ssim
from talkfreq.metrics.frequency import (
    SpectrumAccumulator,
    high_frequency_ratio,
    mean_log_spectrum,
    radial_power_spectrum,
    spectrum_gap,
)
from talkfreq.metrics.mouth import (
    frame_levels,
    lagged_pearson,
    mouth_opening,
    mouth_rows,
    pearson,
    silent_frames,
    silent_opening_ratio,
)
from talkfreq.metrics.robustness import (
    RobustnessReport,
    code_flip_rate,
    code_margins,
    inside_bound_fraction,
    latent_shift,
    robustness_report,
    temporal_flip_rate,
)
from talkfreq.metrics.seam import boundary_band, seam_gradient
from talkfreq.metrics.sharpness import cpbd, laplacian_variance
from talkfreq.metrics.sync import LSEResult, SyncEmbeddingStream, lse_scores, offset_distances, sync_embeddings
from talkfreq.metrics.temporal import FlickerAccumulator, flicker_ratio, temporal_flicker
