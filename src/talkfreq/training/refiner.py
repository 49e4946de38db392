"""``talkfreq train refiner``: the SOVQAE stage-2 refiner trained on clean face crops of one identity (or several).

Losses (weights in ``loss.*``; 0 switches a term off): L1 + focal frequency (FFL) + perceptual (LPIPS-VGG, only with
user-supplied VGG16 weights - a positive weight without them fails at start-up) + the quantiser's commitment + the
codebook regulariser of :mod:`talkfreq.losses.codebook` (margin, separation, usage, optional Lipschitz penalty) +
an optional hinge GAN after ``loss.gan_start_step`` steps; in restoration, optionally, sync preservation
(:mod:`talkfreq.losses.sync`: a frozen expert's view of refined vs stage-1 windows of 5 frames).

Restoration (``denoise_finetune=true``; the recipe is ours, LaDTalk gives none, CodeFormer's stages inspired it):
the encoder sees a degraded frame (:class:`talkfreq.data.degradations.Degradation`) and is pulled onto the *clean*
frame's codes - the teacher's indices, from a frozen copy of the model (``denoise.teacher=frozen``) or from the live
model without gradients (``self``) - by a cross-entropy (over the code predictor's logits when the model has one,
else over code distances) plus a squared distance to the clean code; the restored output (:meth:`SOVQAE.restore`:
predicted codes, fusion, frequency split) is compared with the clean frame (L1, mouth-weighted with
``loss.mouth_weight``, FFL/LPIPS/GAN as above). The codebook is frozen (the targets are indices into it) and so,
by default, is the decoder; the codebook regulariser's margin/separation/usage terms are off, its Lipschitz term
still applies. Two ways to run it: from ``init_from`` (a refiner trained on clean crops; ``denoise.start_step=0``),
or in one run with ``denoise.start_step = N > 0``: the first N steps train the autoencoder on clean crops, then the
teacher is copied from the model as it is and restoration begins (``restore_started``, saved in the checkpoint, so a
resume after the switch neither copies the teacher again nor un-freezes anything).

Steps, checkpoints, logging and exact resume follow :mod:`talkfreq.training.common` and stage 1: the data stream
restarts at the restored step, and the global RNGs are re-seeded from ``(seed, step)`` before every batch, so a
resumed run draws the random numbers of an uninterrupted one. With the GAN on (manual optimisation) one step is one
batch: the discriminator's optimiser step is not counted (``max_steps`` = generator steps).
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from talkfreq.config import to_dict
from talkfreq.data.degradations import Degradation
from talkfreq.data.refiner_data import RefinerDataConfig, RefinerDataModule
from talkfreq.errors import ConfigError, TalkfreqError
from talkfreq.losses.codebook import (
    CodebookRegConfig,
    latent_spread,
    lipschitz_penalty,
    sovqae_codebook_regularization,
)
from talkfreq.losses.frequency import focal_frequency_loss
from talkfreq.losses.gan import GAN_LOSSES, discriminator_loss, generator_loss
from talkfreq.losses.region import GAN_REGIONS, gan_view, mouth_weighted_l1
from talkfreq.losses.sync import sync_preservation_loss
from talkfreq.models.discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from talkfreq.models.loading import INFERENCE_FILE, load_refiner
from talkfreq.models.sovqae import SOVQAE, SOVQAEConfig
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


@dataclass
class RefinerLossConfig:
    """``loss.*``: the weight of each term (0 = off)."""

    l1: float = 1.0
    freq: float = 1.0  # focal frequency loss
    freq_alpha: float = 1.0
    percep: float = 0.0  # LPIPS-VGG; > 0 needs vgg16 (or $TALKFREQ_VGG16)
    vgg16: Optional[str] = None
    commit: float = 1.0  # multiplies the quantiser's commitment loss (itself x sovqae.commitment_weight)
    codebook_reg: float = 1.0  # multiplies the whole codebook regulariser (terms weighted in codebook.*)
    gan: float = 0.0
    gan_kind: str = "hinge"  # hinge | bce
    gan_start_step: int = 5000  # the GAN term and the discriminator start after this many steps
    # what the discriminator sees: the whole crop, or only face.config.MOUTH_REGION's box (ours: about a tenth of
    # the pixels, so a CPU budget can afford it, and the mouth is where a refiner's detail is judged)
    gan_region: str = "face"
    # pix2pix's conditional discriminator: it judges (output, the refiner's input) pairs, so it can tell that a
    # closed eye in the input must stay closed (ours, from the whole-face GAN painting open eyes on closed lids,
    # benchmarks/RESULTS.md "A discriminator on the whole face"); disc.in_channels is then doubled for it
    gan_conditional: bool = False
    mouth_weight: float = 0.0  # extra L1 weight inside face.config.MOUTH_REGION (0: uniform)
    # sync preservation (talkfreq.losses.sync), restoration only: a frozen expert's video embeddings of refined vs
    # stage-1 windows of 5 consecutive frames (from data.stage1_outputs); sync_windows windows per step, each 5 more
    # frames through the refiner. Use another expert than the one that scores the result (e.g. another seed).
    # Off: on the demo it cost LSE-C and detail at every weight tried (benchmarks/RESULTS.md "Sync preservation").
    sync_preserve: float = 0.0
    sync_expert: Optional[str] = None  # a `talkfreq train syncnet` model/ folder, or Wav2Lip's lipsync_expert.pth
    sync_windows: int = 1


@dataclass
class DenoiseConfig:
    """``denoise.*``: the denoising fine-tune (used when ``denoise_finetune`` is true)."""

    degradation: Degradation = field(default_factory=Degradation)
    teacher: str = "frozen"  # frozen: a frozen copy of the starting model; self: the live model, no gradients
    code_ce: float = 1.0  # cross-entropy of the student's code distances towards the teacher's indices
    code_temperature: float = 0.1  # on squared distances in units of the latent spread (cosine: unit sphere)
    latent: float = 1.0  # squared distance of the student latent to the teacher's code (relative units)
    freeze_decoder: bool = True  # the decoder's own layers; a fusion and a code predictor always train
    start_step: int = 0  # steps of clean autoencoder training in the same run before restoration begins


@dataclass
class Config(CommonSections):
    """The full refiner run config (YAML files under configs/refiner/ only override these defaults)."""

    sovqae: SOVQAEConfig = field(default_factory=SOVQAEConfig)
    codebook: CodebookRegConfig = field(default_factory=CodebookRegConfig)
    data: RefinerDataConfig = field(default_factory=RefinerDataConfig)
    loss: RefinerLossConfig = field(default_factory=RefinerLossConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, betas=[0.5, 0.9], disc_lr=2e-4))
    disc: PatchDiscriminatorConfig = field(default_factory=lambda: PatchDiscriminatorConfig(norm="none",
                                                                                            spectral_norm=True))
    init_from: Optional[str] = None  # start from a trained refiner (model/ folder or .ckpt)
    denoise_finetune: bool = False
    denoise: DenoiseConfig = field(default_factory=DenoiseConfig)
    latent_smoothing: float = 0.0  # default temporal smoothing alpha of `talkfreq refine` for this model

    def __post_init__(self) -> None:
        for name in ("l1", "freq", "percep", "commit", "codebook_reg", "gan", "mouth_weight", "sync_preserve"):
            if getattr(self.loss, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self.loss, name)}")
        if self.loss.sync_preserve > 0:
            # data.stage1_outputs is checked by the data module: recipes set it after this config is built
            missing = [what for what, ok in (("loss.sync_expert (a SyncNet)", self.loss.sync_expert),
                                             ("denoise_finetune=true", self.denoise_finetune)) if not ok]
            if missing:
                raise ConfigError(f"loss.sync_preserve={self.loss.sync_preserve} needs {', '.join(missing)}")
            if self.loss.sync_windows < 1:
                raise ConfigError(f"loss.sync_windows must be >= 1, got {self.loss.sync_windows}")
        if self.loss.gan_region not in GAN_REGIONS:
            raise ConfigError(f"loss.gan_region must be one of {', '.join(GAN_REGIONS)}, got {self.loss.gan_region!r}")
        if self.loss.gan_kind not in GAN_LOSSES:
            raise ConfigError(f"loss.gan_kind must be one of {', '.join(GAN_LOSSES)}, got {self.loss.gan_kind!r}")
        if self.denoise.start_step < 0:
            raise ConfigError(f"denoise.start_step must be >= 0, got {self.denoise.start_step}")
        if self.denoise.teacher not in ("frozen", "self"):
            raise ConfigError(f"denoise.teacher must be frozen or self, got {self.denoise.teacher!r}")
        if not 0.0 <= self.latent_smoothing < 1.0:
            raise ConfigError(f"latent_smoothing must be in [0, 1), got {self.latent_smoothing}")


def _vector_quantizers(model: SOVQAE) -> list:
    from vector_quantize_pytorch import VectorQuantize

    return [m for m in model.quantizer.modules() if isinstance(m, VectorQuantize)]


class RefinerModule(L.LightningModule):
    """Wires a :class:`SOVQAE` (``self.model``), its losses and optimisers; batches are ``{"clean", "input"}``
    (B, 3, S, S) in [-1, 1]. Manual optimisation when the GAN is on (generator step, then discriminator step)."""

    def __init__(self, config: dict | Config, talkfreq_kind: str = "refiner"):
        # talkfreq_kind is accepted (and ignored) so that load_from_checkpoint(**hyper_parameters) works
        super().__init__()
        cfg = config if isinstance(config, Config) else _config_from_dict(config)
        # a plain dict: the checkpoint stays loadable with torch.load(weights_only=True)
        self.save_hyperparameters({"config": to_dict(cfg), "talkfreq_kind": "refiner"})
        self.cfg = cfg
        self.model = SOVQAE(config=cfg.sovqae)
        self.gan_on = cfg.loss.gan > 0
        self.automatic_optimization = not self.gan_on
        disc_cfg = replace(cfg.disc, in_channels=cfg.disc.in_channels * (2 if cfg.loss.gan_conditional else 1))
        self.disc = PatchDiscriminator(config=disc_cfg) if self.gan_on else None
        self._percep: tuple = ()  # kept out of the state dict: frozen VGG weights do not belong in checkpoints
        if cfg.loss.percep > 0:
            from talkfreq.losses.perceptual import PerceptualLoss

            self._percep = (PerceptualLoss(cfg.loss.vgg16),)  # raises the one-line "weights missing" error now
        self._sync: tuple = ()  # the frozen expert, out of the state dict like VGG
        if cfg.loss.sync_preserve > 0:  # the config has checked that it comes with an expert and restoration
            from talkfreq.models.syncnet import SyncNet

            self._sync = (SyncNet.frozen(cfg.loss.sync_expert),)
        self.denoise = cfg.denoise_finetune
        self.teacher: Optional[SOVQAE] = None
        if self.denoise:
            # set once the restoration phase has begun (saved: a resumed run does not copy the teacher again)
            self.register_buffer("restore_started", torch.zeros((), dtype=torch.bool))
            self._restoration_applied = False  # this process froze the weights already (not saved)
            if cfg.denoise.teacher == "frozen":
                self._make_teacher()
            if self.start_step == 0:
                self._freeze_for_restoration()  # before configure_optimizers: frozen weights get no Adam state

    def _make_teacher(self) -> None:
        self.teacher = copy.deepcopy(self.model).requires_grad_(False).eval()

    @property
    def start_step(self) -> int:
        return self.cfg.denoise.start_step

    def _restoring(self) -> bool:
        # once begun, restoration goes on (a resume with a larger max_steps moves start_step, not the past)
        return self.denoise and (self.global_step >= self.start_step or bool(self.restore_started))

    def _freeze_for_restoration(self) -> None:
        for vq in _vector_quantizers(self.model):
            vq.freeze_codebook = True  # the targets are indices into this codebook: it must not drift
        if self.cfg.denoise.freeze_decoder:
            self.model.decoder.requires_grad_(False)

    def _start_restoration(self) -> None:
        """The switch from clean training to restoration: the teacher becomes a frozen copy of the model as it is
        now (unless this run started from ``init_from`` or already switched before a resume), weights freeze."""
        if self._restoration_applied:
            return
        self._restoration_applied = True
        self._freeze_for_restoration()
        if not bool(self.restore_started):
            if self.teacher is not None and self.start_step > 0:
                self.teacher.load_state_dict(self.model.state_dict())
            self.restore_started.fill_(True)

    def load_initial(self, path: str | Path) -> None:
        """Start from the weights of a trained refiner (``init_from``); the frozen teacher is re-copied."""
        src = load_refiner(path)
        if src.config != self.model.config:
            raise TalkfreqError(f"{path}: init_from holds a refiner with another sovqae config than this run's")
        self.model.load_state_dict(src.state_dict())
        if self.teacher is not None:
            self.teacher.load_state_dict(src.state_dict())

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # the teacher never takes an EMA step or changes mode
        return self

    # -- losses ---------------------------------------------------------------------------------------------------

    def _reconstruction(self, x_hat: Tensor, target: Tensor, logs: dict[str, Tensor]) -> Tensor:
        w = self.cfg.loss
        logs["l1"] = (x_hat - target).abs().mean().detach()
        loss = w.l1 * mouth_weighted_l1(x_hat, target, mouth_weight=w.mouth_weight)
        if w.freq:
            ffl = focal_frequency_loss(x_hat, target, alpha=w.freq_alpha)
            logs["ffl"] = ffl.detach()
            loss = loss + w.freq * ffl
        if self._percep:
            percep = self._percep[0].to(x_hat.device)
            lp = percep((x_hat.clamp(-1, 1) + 1) / 2, (target + 1) / 2)
            logs["lpips"] = lp.detach()
            loss = loss + w.percep * lp
        return loss

    def _denoise_terms(self, out, clean: Tensor, logs: dict[str, Tensor]) -> Tensor:
        """Cross-entropy + latent pull of the student's (degraded-input) latents towards the clean frame's codes."""
        d = self.cfg.denoise
        teacher = self.teacher if self.teacher is not None else self.model
        with torch.no_grad():
            z_t = teacher.encode(clean)
            idx_t = teacher.primary_indices(teacher.quantize(z_t).indices)  # (B, h, w)
            scale = 1.0 if teacher.is_cosine else latent_spread(teacher.quantizer_space(z_t)).detach()
        codebook = self.model.codebook.detach()  # (K, Dq)
        zs = self.model.quantizer_space(out.z_e).movedim(1, -1).reshape(-1, codebook.shape[-1]).float()
        target = idx_t.reshape(-1)
        d2 = torch.cdist(zs, codebook.float()).pow(2) / (scale * scale)  # (N, K) relative squared distances
        if out.logits is not None:  # the code predictor's own logits (its prior uses the running spread)
            with torch.no_grad():
                self.model.latent_scale.lerp_(torch.as_tensor(scale, dtype=torch.float32), 0.05)
            ce = F.cross_entropy(out.logits.float(), idx_t)
        else:
            ce = F.cross_entropy(-d2 / d.code_temperature, target)
        pull = d2.gather(1, target[:, None]).mean()
        student = self.model.primary_indices(out.indices).reshape(-1)
        logs.update(code_ce=ce.detach(), code_pull=pull.detach(), code_match=(student == target).float().mean())
        return d.code_ce * ce + d.latent * pull

    def _sync_term(self, windows: Tensor) -> Tensor:
        """Sync preservation of (N, 5, 3, S, S) stage-1 windows, refined with the split used at inference (a term
        taken at the training split let the refiner fit the expert with detail that inference removes)."""
        expert = self._sync[0].to(windows.device)
        refined, _ = self.model.restore(rearrange(windows, "n t c h w -> (n t) c h w"),
                                        split_sigma=self.model.inference_split)
        return sync_preservation_loss(expert, rearrange(refined, "(n t) c h w -> n t c h w", n=windows.shape[0]),
                                      windows)

    def _generator_loss(self, batch: dict[str, Tensor], x_in: Tensor, logs: dict[str, Tensor]):
        w = self.cfg.loss
        restoring = self._restoring()
        clean = batch["clean"]
        out = self.model(x_in, restore=restoring)
        loss = self._reconstruction(out.x_hat, clean, logs)
        if w.commit and not restoring:
            logs["commit"] = out.commit_loss.detach()
            loss = loss + w.commit * out.commit_loss
        if restoring:
            loss = loss + self._denoise_terms(out, clean, logs)
            if self._sync and "sync_window" in batch:
                sync = self._sync_term(batch["sync_window"][: w.sync_windows])
                logs["sync_preserve"] = sync.detach()
                loss = loss + w.sync_preserve * sync
        if w.codebook_reg:
            reg_cfg = self.cfg.codebook
            if restoring:
                reg_cfg = replace(reg_cfg, margin_weight=0.0, separation_weight=0.0, usage_weight=0.0)
            if reg_cfg.margin_weight or reg_cfg.separation_weight or reg_cfg.usage_weight:
                reg = sovqae_codebook_regularization(self.model, out.z_e, out.indices, config=reg_cfg)
                logs.update(reg_margin=reg.margin, reg_separation=reg.separation, reg_usage=reg.usage)
                loss = loss + w.codebook_reg * reg.loss
            if reg_cfg.lipschitz_weight:
                lip = lipschitz_penalty(self.model.encode, x_in, eps=reg_cfg.lipschitz_eps,
                                        target=reg_cfg.lipschitz_target, z_clean=out.z_e,
                                        scale=latent_spread(out.z_e).detach())
                logs["lipschitz"] = lip.detach()
                loss = loss + w.codebook_reg * reg_cfg.lipschitz_weight * lip
        return out, loss

    def _gan_active(self) -> bool:
        return self.gan_on and self.global_step >= self.cfg.loss.gan_start_step

    # -- Lightning hooks ------------------------------------------------------------------------------------------

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # every random draw of this step (k-means init, Lipschitz noise, ...) comes from (seed, step): exact resume
        torch.manual_seed((self.cfg.trainer.seed * 1_000_003 + self.global_step) % (2**63 - 1))
        if self._restoring():
            self._start_restoration()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int):
        logs: dict[str, Tensor] = {}
        x_in = self._model_input(batch)
        out, loss = self._generator_loss(batch, x_in, logs)
        if not self.gan_on:
            self._log("train", loss, logs, batch)
            return loss
        opt_g, opt_d = self.optimizers()
        active = self._gan_active()
        if active:
            g_adv = generator_loss(self._judge(out.x_hat, x_in), kind=self.cfg.loss.gan_kind)
            logs["g_adv"] = g_adv.detach()
            loss = loss + self.cfg.loss.gan * g_adv
        self.toggle_optimizer(opt_g)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._clip(opt_g)
        opt_g.step()
        step_scheduler(self)
        self.untoggle_optimizer(opt_g)
        if active:
            self.toggle_optimizer(opt_d)
            d_loss = discriminator_loss(self._judge(batch["clean"], x_in), self._judge(out.x_hat.detach(), x_in),
                                        kind=self.cfg.loss.gan_kind)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            self._clip(opt_d)
            step_without_counting(opt_d)
            self.untoggle_optimizer(opt_d)
            logs["d_loss"] = d_loss.detach()
        self._log("train", loss, logs, batch)
        return None

    def _model_input(self, batch: dict[str, Tensor]) -> Tensor:
        """What the refiner sees this step: the degraded input in restoration, the clean crop before it."""
        return batch["input"] if self._restoring() else batch["clean"]

    def _judge(self, x: Tensor, x_in: Tensor) -> Tensor:
        """The discriminator's logits for crops ``x`` (paired with the refiner's input ``x_in`` when it is
        conditional), on the part ``loss.gan_region`` names."""
        if self.cfg.loss.gan_conditional:
            x = torch.cat([x, x_in], dim=1)
        return self.disc(gan_view(x, region=self.cfg.loss.gan_region))

    def _clip(self, opt) -> None:
        clip = self.cfg.trainer.gradient_clip_val
        if clip:
            self.clip_gradients(opt, gradient_clip_val=clip, gradient_clip_algorithm="norm")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        out = self.model(self._model_input(batch), restore=self._restoring())
        logs: dict[str, Tensor] = {}
        self._reconstruction(out.x_hat, batch["clean"], logs)
        mse = ((out.x_hat.clamp(-1, 1) - batch["clean"]) / 2).pow(2).flatten(1).mean(1)
        logs["psnr"] = (-10 * torch.log10(mse.clamp_min(1e-10))).mean()
        logs["codes_used"] = torch.tensor(float(torch.unique(self.model.primary_indices(out.indices)).numel()))
        # val/loss (what best.ckpt tracks) is the L1 alone: comparable across loss settings and the ablation
        self._log("val", logs["l1"], logs, batch)

    def _log(self, stage: str, loss: Tensor, logs: dict[str, Tensor], batch: dict[str, Tensor]) -> None:
        bs = batch["clean"].shape[0]
        self.log(f"{stage}/loss", loss.detach(), prog_bar=True, batch_size=bs)
        self.log_dict({f"{stage}/{k}": v for k, v in logs.items()}, batch_size=bs)

    def preview(self, batch: dict[str, Tensor]):
        """(input | output | target) for :class:`talkfreq.training.callbacks.SamplePreview`."""
        from talkfreq.training.callbacks import Preview

        x_hat = self.model(self._model_input(batch), restore=self._restoring()).x_hat.clamp(-1, 1)
        return Preview(columns={"input": batch["input"], "output": x_hat, "target": batch["clean"]},
                       generated=x_hat, real=batch["clean"])

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        opts = adam(params, cfg=self.cfg.optim)
        if self.gan_on:
            opts = [opts, adam(self.disc.parameters(), cfg=self.cfg.optim, lr=self.cfg.optim.disc_lr)]
        return with_schedule(opts, cfg=self.cfg.optim, total_steps=horizon(self))


def _config_from_dict(values: dict) -> Config:
    from talkfreq.models._io import build_config

    return build_config(Config, values, source="refiner checkpoint")


# -- loading a trained refiner ----------------------------------------------------------------------------------


# -- fit --------------------------------------------------------------------------------------------------------


def _check(cfg: Config) -> Config:
    if cfg.trainer.max_steps <= 0:
        raise ConfigError(f"trainer.max_steps must be > 0 for a refiner run, got {cfg.trainer.max_steps}")
    check_schedule(cfg.optim, max_steps=cfg.trainer.max_steps)
    if cfg.data.image_size is not None and cfg.data.image_size != cfg.sovqae.image_size:
        cfg = replace(cfg, sovqae=replace(cfg.sovqae, image_size=cfg.data.image_size))  # re-validates the size
    if cfg.loss.gan > 0 and cfg.trainer.accumulate_grad_batches != 1:
        raise ConfigError("trainer.accumulate_grad_batches must be 1 when loss.gan > 0 (manual optimisation)")
    if cfg.denoise_finetune and not cfg.init_from and cfg.denoise.start_step == 0:
        warnings.warn("denoise_finetune without init_from: the teacher codes come from an untrained model",
                      stacklevel=2)
    return cfg


def fit(cfg: Config, *, callbacks: Sequence = ()) -> Path:
    """Train (or resume) a refiner; returns the run folder, which holds ``model/`` (``save_pretrained`` +
    ``inference.json``), ``checkpoints/last.ckpt`` and ``best.ckpt``, ``samples/`` and the logs. ``callbacks``: more
    Lightning callbacks for this fit."""
    from talkfreq.training.callbacks import SamplePreview

    cfg = _check(cfg)
    degradation = cfg.denoise.degradation if cfg.denoise_finetune else None
    data = RefinerDataModule(cfg.data, image_size=cfg.sovqae.image_size, seed=cfg.trainer.seed,
                             degradation=degradation, sync_windows=cfg.loss.sync_preserve > 0)
    # seeded before the model is built: the initial weights are part of what a seed reproduces
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    module = RefinerModule(cfg)  # perceptual weights are checked here, before any folder is written
    ckpt = resolve_resume(cfg.run)
    if cfg.init_from and ckpt is None:
        module.load_initial(cfg.init_from)
    # manual optimisation (GAN) clips inside the module; Lightning refuses its own clipping there
    trainer_cfg = replace(cfg.trainer, gradient_clip_val=0.0) if module.gan_on else cfg.trainer
    out = run_dir(cfg.run)
    trainer = build_trainer(
        trainer=trainer_cfg, logging=cfg.logging, run=cfg.run, full_config=cfg, resume=ckpt,
        callbacks=[SamplePreview(out_dir=out / "samples", every_n_steps=cfg.logging.sample_every_n_steps), *callbacks],
    )
    with warnings.catch_warnings():
        # the stream is resumable by construction (it restarts at the restored step); Lightning cannot know that
        warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # the frozen teacher, on purpose
        trainer.fit(module, datamodule=data, ckpt_path=ckpt)
    if trainer.is_global_zero:
        # the final state, so `run.resume=last` with a larger max_steps continues from exactly here
        trainer.save_checkpoint(out / "checkpoints" / "last.ckpt", weights_only=False)
        model_dir = module.model.save_pretrained(out / "model")
        (model_dir / INFERENCE_FILE).write_text(json.dumps({"latent_smoothing": cfg.latent_smoothing}) + "\n")
    return out


__all__ = ["Config", "DenoiseConfig", "RefinerLossConfig", "RefinerModule", "fit"]
