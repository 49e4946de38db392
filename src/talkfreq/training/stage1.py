"""``talkfreq train stage1``: the FREAK generator or the Wav2Lip baseline, trained with Lightning.

The LightningModule only wires model + losses + optimisers; data comes from
:class:`~talkfreq.data.datasets.Stage1DataModule`, the Trainer from :func:`~talkfreq.training.common.build_trainer`.

Generator loss (ours: a plain weighted sum of the terms each paper names)::

    rec·L1 + percep·LPIPS-VGG + freq·FFL(alpha) + sync·BCE(expert cosine, 1) + gan·L_adv

(the L1 weighted 1 + ``loss.mouth_weight`` inside the mouth box when that is set, ours).

FREAK names L_rec, L_percep and L_freq (the defaults: unit weights, ours). Wav2Lip's
``(1 - sw - dw)·L1 + sw·sync + dw·GAN`` with sw = 0.03, dw = 0.07 is rec 0.9, sync 0.03, gan 0.07 with the other
terms off (configs/stage1/wav2lip_96.yaml). Wav2Lip switches its sync term on only once the generator's
validation sync loss falls below 0.75: ``loss.sync_start`` does that (the wav2lip_96 config sets 0.75; unset, the
term is on from step 0). The switch is a buffer of the module, so it is saved in ``.ckpt`` files and resumes exactly;
until it flips, the training step skips the expert's forward pass.

With the sync term on, each sample carries 5 consecutive frames (same reference and mask kind); the generator
makes all 5, every loss is taken over all 5, and the frozen expert sees their lower halves (resized to its own
``image_size``) with the mel window of the first. With ``gan > 0`` optimisation is manual: a discriminator step,
then a generator step whose adversarial term starts at ``gan_warmup_steps``; one batch = one ``global_step``
(see :func:`step_without_counting`), and ``trainer.strategy=ddp`` becomes ``ddp_find_unused_parameters_true``.
``val/loss`` (what ``best.ckpt`` tracks) is the validation L1 — comparable across loss settings (ours).

Start-up checks (before the Trainer exists): the data (index, hubert features), the perceptual weights, the
SyncNet expert — each a one-line error. The final generator is written by ``save_pretrained`` into
``<run>/model/`` (what inference loads); Lightning's ``checkpoints/last.ckpt`` and ``best.ckpt`` stay for resume.
Frozen networks (VGG16, expert) are left out of the .ckpt files and re-read from their own files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from talkfreq.audio.features import save_speech_record
from talkfreq.audio.mel import MelConfig
from talkfreq.config import to_dict
from talkfreq.data.datasets import DataConfig, Stage1DataModule
from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.losses.frequency import FocalFrequencyLoss
from talkfreq.losses.gan import GAN_LOSSES, discriminator_loss, generator_loss
from talkfreq.losses.region import GAN_REGIONS, gan_view, mouth_weighted_l1
from talkfreq.models import registry
from talkfreq.models.discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from talkfreq.models.freak import FREAKConfig
from talkfreq.models.masks import apply_mask
from talkfreq.models.syncnet import SyncNet, expert_loss
from talkfreq.models.wav2lip import Wav2LipConfig
from talkfreq.training.callbacks import Preview, SamplePreview, finish_logger
from talkfreq.training.common import CommonSections, build_trainer, resolve_resume, run_dir
from talkfreq.training.optim import (
    OptimConfig,
    adam,
    check_schedule,
    horizon,
    step_scheduler,
    step_without_counting,
    with_schedule,
)

log = logging.getLogger(__name__)

_FROZEN = ("percep.", "sync_expert.")  # state_dict prefixes kept out of .ckpt files


@dataclass
class LossConfig:
    """Loss weights (``loss.*``); a weight of 0 turns its term off. See the module docstring for the sum."""

    rec: float = 1.0  # L1
    mouth_weight: float = 0.0  # extra L1 weight inside face.config.MOUTH_REGION (0: uniform; losses.region)
    percep: float = 1.0  # LPIPS-VGG; needs VGG16 weights
    vgg16: Optional[str] = None  # torchvision vgg16-397923af.pth; None: $TALKFREQ_VGG16
    freq: float = 1.0  # focal frequency loss
    freq_alpha: float = 1.0
    sync: float = 0.0  # needs a trained expert
    syncnet: Optional[str] = None  # a `talkfreq train syncnet` model/ folder, or Wav2Lip's lipsync_expert.pth
    sync_start: Optional[float] = None  # switch the sync term on once val/sync < this (Wav2Lip: 0.75); None: at once
    gan: float = 0.0  # > 0: manual optimisation with a PatchDiscriminator
    gan_kind: str = "hinge"  # hinge | bce
    gan_warmup_steps: int = 0  # no adversarial term for G before this step (D trains from step 0)
    gan_region: str = "face"  # face | mouth: what the discriminator sees (losses.region.gan_view)


@dataclass
class Config(CommonSections):
    """``talkfreq train stage1`` run config: ``trainer``/``logging``/``run`` + the sections below."""

    model: str = "freak"  # a generator kind of talkfreq.models.registry with a section below: freak | wav2lip
    # start from a trained generator of the same kind and shapes (a model/ folder): e.g. the per-identity recipe
    # fine-tuning a generator pretrained on more data; resuming a run ignores it (the checkpoint has the weights)
    init_from: Optional[str] = None
    freak: FREAKConfig = field(default_factory=FREAKConfig)  # audio_len/audio_dim are set from data.audio
    wav2lip: Wav2LipConfig = field(default_factory=Wav2LipConfig)
    disc: PatchDiscriminatorConfig = field(default_factory=PatchDiscriminatorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


def generator_kind(cfg: Config) -> registry.ModelKind:
    return registry.get(cfg.model, role="generator", source="model")


def generator_config(cfg: Config):
    """The run config's section of its generator (``freak``, ``wav2lip``)."""
    return getattr(cfg, generator_kind(cfg).config_section)


def image_size(cfg: Config) -> int:
    return generator_config(cfg).image_size


def dub_mask(cfg: Config) -> str:
    """The generator's dubbing mask kind (Wav2Lip: always the half mask)."""
    return generator_kind(cfg).mask_for_dubbing(generator_config(cfg))


def check_config(cfg: Config) -> None:
    """One-line ConfigErrors for settings that cannot work together (run before anything is built)."""
    trainable = [k for k in registry.names("generator") if hasattr(cfg, registry.get(k).config_section)]
    if cfg.model not in trainable:
        raise ConfigError(f"model must be one of {', '.join(trainable)}, got {cfg.model!r}")
    kind = registry.get(cfg.model)
    lw = cfg.loss
    for name in ("rec", "mouth_weight", "percep", "freq", "sync", "gan"):
        if getattr(lw, name) < 0:
            raise ConfigError(f"loss.{name} must be >= 0, got {getattr(lw, name)}")
    if lw.gan_kind not in GAN_LOSSES:
        raise ConfigError(f"loss.gan_kind must be one of {', '.join(GAN_LOSSES)}, got {lw.gan_kind!r}")
    if lw.gan_region not in GAN_REGIONS:
        raise ConfigError(f"loss.gan_region must be one of {', '.join(GAN_REGIONS)}, got {lw.gan_region!r}")
    if lw.sync_start is not None and not lw.sync_start > 0:
        raise ConfigError(f"loss.sync_start must be > 0 (a validation sync loss), got {lw.sync_start}")
    if lw.sync > 0 and not lw.syncnet:
        raise ConfigError(f"loss.sync={lw.sync} needs a trained SyncNet expert: set loss.syncnet=RUN/model "
                          f"(from `talkfreq train syncnet`) or loss.sync=0")
    if kind.audio is None and cfg.data.audio != "mel":
        raise ConfigError(f"model={cfg.model} takes the 80×16 mel window only; set data.audio=mel")
    if not kind.one_shot and cfg.data.p_half != 1.0:
        raise ConfigError(f"model={cfg.model} is a dubbing model and trains on half masks only; "
                          f"set data.p_half=1.0 (configs/stage1/wav2lip_96.yaml does)")
    check_schedule(cfg.optim, max_steps=cfg.trainer.max_steps)


def resolve_audio(cfg: Config, *, speech_dim: int) -> Config:
    """``cfg`` with the generator's audio input shape (FREAK's ``audio_len``/``audio_dim``) set from the data:
    (16, 80) mel windows, or (2·context+1, D) speech features — so the window length is written once, in ``data``.
    A generator without an ``audio`` adapter in the registry takes the mel window and has no such fields."""
    kind = generator_kind(cfg)
    if kind.audio is None:
        return cfg
    mel, section = MelConfig(), generator_config(cfg)
    shape = (2 * cfg.data.context + 1, speech_dim) if cfg.data.audio == "hubert" else (mel.frames_per_window,
                                                                                         mel.n_mels)
    if (section.audio_len, section.audio_dim) != shape:
        log.info("%s audio input set to %s×%s from data.audio=%s", cfg.model, *shape, cfg.data.audio)
    return replace(cfg, **{kind.config_section: replace(section, audio_len=shape[0], audio_dim=shape[1])})


class Stage1Module(L.LightningModule):
    """Generator (FREAK or Wav2Lip) + losses (+ frozen expert, + discriminator) + optimisers."""

    def __init__(self, *, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.save_hyperparameters(to_dict(cfg))
        self.kind = generator_kind(cfg)
        self.generator = self.kind.cls(config=generator_config(cfg))
        self.ffl = FocalFrequencyLoss(alpha=cfg.loss.freq_alpha)
        self.percep = None
        if cfg.loss.percep > 0:
            from talkfreq.losses.perceptual import PerceptualLoss

            self.percep = PerceptualLoss(cfg.loss.vgg16, normalize=False)  # raises the loss module's one-liner
        self.sync_expert = SyncNet.frozen(cfg.loss.syncnet) if cfg.loss.sync > 0 else None
        self.disc = PatchDiscriminator(config=cfg.disc) if cfg.loss.gan > 0 else None
        self.automatic_optimization = self.disc is None
        self.register_buffer("sync_on", torch.tensor(cfg.loss.sync_start is None))

    def load_initial(self, path: str | Path) -> None:
        """Start from the weights of a trained generator (``init_from``): same kind, same parameter shapes."""
        src = self.kind.cls.from_pretrained(path)
        mine = self.generator.state_dict()
        theirs = src.state_dict()
        bad = [k for k in mine if k not in theirs or theirs[k].shape != mine[k].shape] + [k for k in theirs
                                                                                           if k not in mine]
        if bad:
            raise TalkfreqError(f"{path}: init_from holds a {self.cfg.model} of other shapes than this run's "
                                f"({len(bad)} tensors differ, e.g. {bad[0]})")
        self.generator.load_state_dict(theirs)

    def train(self, mode: bool = True) -> Stage1Module:
        super().train(mode)
        if self.sync_expert is not None:
            self.sync_expert.eval()  # frozen: its BatchNorm statistics must not follow our batches
        return self

    # ------------------------------------------------------------------ generation

    def generate(self, *, reference: torch.Tensor, masked: torch.Tensor, audio: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
        """(B,3,S,S) ×2, audio (B,1,80,16) or (B,T,D), mask (B,1,S,S) -> (B,3,S,S) in [-1, 1]."""
        return self.kind.generate(self.generator, reference=reference, masked=masked, audio=audio, mask=mask)

    def _frames(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(generated, target), both (B·T,3,S,S): T = 5 with the sync term on, else 1."""
        if "sync_frames" not in batch:
            return self.generate(reference=batch["reference"], masked=batch["masked"], audio=batch["audio"],
                                 mask=batch["mask"]), batch["target"]
        t = batch["sync_frames"].shape[1]
        target = rearrange(batch["sync_frames"], "b t c h w -> (b t) c h w")
        mask = repeat(batch["mask"], "b c h w -> (b t) c h w", t=t)
        fake = self.generate(reference=repeat(batch["reference"], "b c h w -> (b t) c h w", t=t),
                             masked=apply_mask(target, mask), mask=mask,
                             audio=rearrange(batch["sync_audio"], "b t ... -> (b t) ..."))
        return fake, target

    def sync_loss(self, fake: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Expert BCE of (B·5,3,S,S) generated frames against their (B,1,80,16) mel windows, target "in sync"."""
        faces = self.sync_expert.face_input(rearrange(fake, "(b t) c h w -> b t c h w", b=mel.shape[0]))
        audio_emb, video_emb = self.sync_expert(faces, mel)
        return expert_loss(audio_emb, video_emb, torch.ones(mel.shape[0], device=mel.device))

    def losses(self, fake: torch.Tensor, target: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        """The weighted terms (``l1``, ``ffl``, ``percep``, ``sync`` as they are on) and their sum ``loss``."""
        lw = self.cfg.loss
        parts = {"l1": F.l1_loss(fake, target)}
        rec = mouth_weighted_l1(fake, target, mouth_weight=lw.mouth_weight) if lw.mouth_weight else parts["l1"]
        total = lw.rec * rec
        if lw.freq > 0:
            parts["ffl"] = self.ffl(fake, target)
            total = total + lw.freq * parts["ffl"]
        if self.percep is not None:
            parts["percep"] = self.percep(fake, target)
            total = total + lw.percep * parts["percep"]
        if self.sync_expert is not None and (bool(self.sync_on) or not self.training):
            parts["sync"] = self.sync_loss(fake, batch["sync_mel"])  # validation always measures it
            if bool(self.sync_on):
                total = total + lw.sync * parts["sync"]
        parts["loss"] = total
        return parts

    # ------------------------------------------------------------------ Lightning hooks

    def training_step(self, batch: dict, batch_idx: int) -> Optional[torch.Tensor]:
        n = batch["target"].shape[0]
        if self.automatic_optimization:
            fake, target = self._frames(batch)
            parts = self.losses(fake, target, batch)
            self.log_dict({f"train/{k}": v for k, v in parts.items()}, batch_size=n, prog_bar=False)
            return parts["loss"]
        return self._gan_step(batch, n=n)

    def _gan_step(self, batch: dict, *, n: int) -> None:
        opt_g, opt_d = self.optimizers()
        fake, target = self._frames(batch)
        lw = self.cfg.loss

        self.toggle_optimizer(opt_d)
        d_loss = discriminator_loss(self._judge(target), self._judge(fake.detach()), kind=lw.gan_kind)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        self._clip(opt_d)
        step_without_counting(opt_d)
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        parts = self.losses(fake, target, batch)
        if self.global_step >= lw.gan_warmup_steps:
            parts["adv"] = generator_loss(self._judge(fake), kind=lw.gan_kind)
            parts["loss"] = parts["loss"] + lw.gan * parts["adv"]
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(parts["loss"])
        self._clip(opt_g)
        opt_g.step()
        step_scheduler(self)
        self.untoggle_optimizer(opt_g)
        self.log_dict({f"train/{k}": v for k, v in parts.items()} | {"train/d_loss": d_loss}, batch_size=n)

    def _judge(self, x: torch.Tensor) -> torch.Tensor:
        """The discriminator's logits for (B, 3, S, S) crops ``x``, on the part ``loss.gan_region`` names."""
        return self.disc(gan_view(x, region=self.cfg.loss.gan_region))

    def _clip(self, opt) -> None:
        # Manual optimisation: the Trainer's gradient_clip_val is not applied for us, so the module clips.
        if self.cfg.trainer.gradient_clip_val > 0:
            self.clip_gradients(opt, gradient_clip_val=self.cfg.trainer.gradient_clip_val,
                                gradient_clip_algorithm="norm")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        fake, target = self._frames(batch)
        parts = self.losses(fake, target, batch)
        n = batch["target"].shape[0]
        self.log("val/loss", parts["l1"], batch_size=n, sync_dist=True, prog_bar=True)
        self.log_dict({f"val/{k}": v for k, v in parts.items() if k != "loss"} | {"val/total": parts["loss"]},
                      batch_size=n, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        start = self.cfg.loss.sync_start
        if start is None or bool(self.sync_on) or self.sync_expert is None or self.trainer.sanity_checking:
            return
        val = self.trainer.callback_metrics.get("val/sync")  # averaged over ranks (sync_dist), so all agree
        if val is not None and float(val) < start:
            self.sync_on.fill_(True)
            log.info("step %d: val/sync %.3f < %.3f, the sync term is on", self.global_step, float(val), start)

    def preview(self, batch: dict) -> Preview:
        """reference | masked | generated | target for the first frame of each sample (see callbacks)."""
        fake = self.generate(reference=batch["reference"], masked=batch["masked"], audio=batch["audio"],
                             mask=batch["mask"])
        cols = {"reference": batch["reference"], "masked": batch["masked"], "generated": fake,
                "target": batch["target"]}
        return Preview(columns=cols, generated=fake, real=batch["target"])

    def configure_optimizers(self):
        opts = adam(self.generator.parameters(), cfg=self.cfg.optim)
        if self.disc is not None:
            opts = [opts, adam(self.disc.parameters(), cfg=self.cfg.optim, lr=self.cfg.optim.disc_lr)]
        return with_schedule(opts, cfg=self.cfg.optim, total_steps=horizon(self))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith(_FROZEN)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Frozen nets come from their own files (loaded in __init__); put them back so loading stays strict.
        checkpoint["state_dict"].update({k: v for k, v in self.state_dict().items() if k.startswith(_FROZEN)})


def fit(cfg: Config, *, callbacks: Sequence = ()) -> Path:
    """Train stage 1 as ``cfg`` says; returns the run folder (``model/``, ``checkpoints/``, ``samples/`` ...).
    ``callbacks``: more Lightning callbacks for this fit (e.g. :class:`talkfreq.training.budget.StepTimer`)."""
    check_config(cfg)
    resume = resolve_resume(cfg.run)
    # Seeded before the model is built, so two runs with the same seed start from the same weights.
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    data = Stage1DataModule(cfg.data, image_size=image_size(cfg), seed=cfg.trainer.seed, sync=cfg.loss.sync > 0,
                            dub_mask=dub_mask(cfg))
    cfg = resolve_audio(cfg, speech_dim=data.speech_dim)
    speech_source = data.speech_source if cfg.data.audio == "hubert" else None  # mixed encoders fail here
    module = Stage1Module(cfg=cfg)
    if cfg.init_from and resume is None:
        module.load_initial(cfg.init_from)
    trainer_cfg = cfg.trainer
    if not module.automatic_optimization:
        # Lightning refuses gradient_clip_val under manual optimisation (the module clips itself), and DDP must
        # accept parameters without gradients: the D and G backward passes each reach only their own network.
        strategy = "ddp_find_unused_parameters_true" if trainer_cfg.strategy == "ddp" else trainer_cfg.strategy
        trainer_cfg = replace(trainer_cfg, gradient_clip_val=0.0, strategy=strategy)
    out = run_dir(cfg.run)
    preview = SamplePreview(out_dir=out / "samples", every_n_steps=cfg.logging.sample_every_n_steps)
    trainer = build_trainer(trainer=trainer_cfg, logging=cfg.logging, run=cfg.run, callbacks=[preview, *callbacks],
                            full_config=cfg, resume=resume)
    log.info("stage 1 (%s, %d px) -> %s%s", cfg.model, image_size(cfg), out, f", resuming {resume}" if resume else "")
    trainer.fit(module, datamodule=data, ckpt_path=resume)
    finish_logger(trainer)
    if trainer.is_global_zero:
        module.generator.save_pretrained(out / "model")
        if cfg.data.reference == "audio":  # infer retrieves its references from the training frames
            data.reference_bank().save(out / "model")
        if speech_source is not None:  # inference then makes the same features without --speech-model
            save_speech_record(out / "model", model=speech_source[0], layer=speech_source[1])
    return out
