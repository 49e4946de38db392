"""``talkfreq train syncnet``: the SyncNet lip-sync expert (Wav2Lip's ``color_syncnet_train.py``) with Lightning.

Samples are Wav2Lip's: the lower halves of 5 consecutive frames with the mel window of the first frame (label 1)
or a window shifted by at least ``data.neg_min_shift`` frames (label 0), half and half
(:class:`~talkfreq.data.datasets.SyncNetDataset`). Loss: BCE on the cosine similarity of the two L2-normalised
embeddings (:func:`~talkfreq.models.syncnet.expert_loss`). ``val/acc`` counts a window as "in sync" when the
cosine exceeds 0.5 (ours; the cosine is Wav2Lip's P(in sync)); ``val/loss`` (the BCE) picks ``best.ckpt``.

The final expert is written by ``save_pretrained`` into ``<run>/model/``: the folder ``loss.syncnet`` of a
stage-1 run points at, and the evaluation's LSE scorer loads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch

from talkfreq.config import to_dict
from talkfreq.data.datasets import DataConfig, SyncNetDataModule
from talkfreq.models.syncnet import SyncNet, SyncNetConfig, expert_loss, sync_probability
from talkfreq.training.callbacks import finish_logger
from talkfreq.training.common import CommonSections, build_trainer, resolve_resume, run_dir
from talkfreq.training.optim import OptimConfig, adam, check_schedule, horizon, with_schedule

log = logging.getLogger(__name__)


@dataclass
class Config(CommonSections):
    """``talkfreq train syncnet`` run config: ``trainer``/``logging``/``run`` + ``model``/``data``/``optim``."""

    model: SyncNetConfig = field(default_factory=SyncNetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    # Wav2Lip trains its expert with Adam's default betas (its generator uses 0.5, 0.999).
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(betas=[0.9, 0.999]))


class SyncNetModule(L.LightningModule):
    """SyncNet + BCE-on-cosine + Adam."""

    def __init__(self, *, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.save_hyperparameters(to_dict(cfg))
        self.model = SyncNet(config=cfg.model)

    def scores(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, accuracy, cosine (B,)) of a batch with ``faces`` (B,15,S/2,S), ``mel`` (B,1,80,16), ``label`` (B,)."""
        audio_emb, video_emb = self.model(batch["faces"], batch["mel"])
        loss = expert_loss(audio_emb, video_emb, batch["label"])
        p = sync_probability(audio_emb, video_emb)
        acc = ((p > 0.5).to(batch["label"].dtype) == batch["label"]).float().mean()
        return loss, acc, p

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, acc, _ = self.scores(batch)
        self.log_dict({"train/loss": loss, "train/acc": acc}, batch_size=batch["label"].shape[0], prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, acc, _ = self.scores(batch)
        self.log_dict({"val/loss": loss, "val/acc": acc}, batch_size=batch["label"].shape[0], sync_dist=True,
                      prog_bar=True)

    def configure_optimizers(self):
        return with_schedule(adam(self.model.parameters(), cfg=self.cfg.optim), cfg=self.cfg.optim,
                             total_steps=horizon(self))


def fit(cfg: Config, *, callbacks: Sequence = ()) -> Path:
    """Train the expert as ``cfg`` says; returns the run folder (``model/`` holds the expert). ``callbacks``: more
    Lightning callbacks for this fit."""
    check_schedule(cfg.optim, max_steps=cfg.trainer.max_steps)
    resume = resolve_resume(cfg.run)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)  # same initial weights for the same seed
    data = SyncNetDataModule(cfg.data, image_size=cfg.model.image_size, seed=cfg.trainer.seed)
    module = SyncNetModule(cfg=cfg)
    out = run_dir(cfg.run)
    trainer = build_trainer(trainer=cfg.trainer, logging=cfg.logging, run=cfg.run, full_config=cfg,
                            resume=resume, callbacks=[*callbacks])
    log.info("SyncNet expert (%d px) -> %s%s", cfg.model.image_size, out, f", resuming {resume}" if resume else "")
    trainer.fit(module, datamodule=data, ckpt_path=resume)
    finish_logger(trainer)
    if trainer.is_global_zero:
        module.model.save_pretrained(out / "model")
    return out
