"""What every talkfreq training run shares: the Lightning Trainer, its loggers and checkpoints, and resume.

Each trainable thing (SyncNet expert, stage 1, refiner) has a run config with three common sections — ``trainer``,
``logging``, ``run`` — defined here once, plus its own ``model``/``data``/``loss`` sections. A run writes into
``run.out_dir/run.name/``: ``checkpoints/last.ckpt`` (every ``checkpoint_every_n_steps``) and ``best.ckpt`` (by
``run.monitor``), the logger's files, and ``config.yaml`` (the full merged config, so a run can be reproduced).
``run.resume=last`` (or a checkpoint path) continues exactly: Lightning restores weights, optimiser and scheduler
states, the global step and the loop position. Resuming checks the new config against the ``config.yaml`` of the
checkpoint's run before anything is written: only ``trainer.*``, ``run.*``, ``logging.*``, ``data.root`` and
``data.num_workers`` may change (``RESUMABLE``); any other difference (a model size, a loss weight) is a one-line
error naming the keys, and the run folder is left as it was. ``run.resume=last`` with no ``last.ckpt`` yet starts
from step 0 and says so on stderr, louder when an earlier run in the folder stopped before its first checkpoint: it
is the command a preemptible job repeats, so its first run must not be refused.

Output: with stdout not a terminal (a log file, a scheduler), a ``step N/M`` line with the progress-bar metrics is
printed every ``trainer.log_every_n_steps`` steps (:class:`StepLines`) and the progress bar is off;
``logging.quiet`` (``--quiet``) drops the bar, the step lines and Lightning's banners and tips.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from talkfreq.config import to_yaml
from talkfreq.errors import TalkfreqError, require_writable_dir

# config keys (prefixes) a resumed run may change: how long and where it runs, how it logs, where the data is
RESUMABLE = ("trainer.", "run.", "logging.", "data.root", "data.num_workers")


@dataclass
class TrainerConfig:
    """Passed to ``lightning.Trainer`` (``devices``/``strategy`` give DDP, e.g. devices=2 strategy=ddp)."""

    max_steps: int = 20000
    accelerator: str = "auto"
    devices: str = "auto"  # "auto", a count such as "2", or a list such as "[0,1]"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    val_check_interval: int = 1000  # in training steps
    limit_val_batches: int = 16
    log_every_n_steps: int = 50
    gradient_clip_val: float = 0.0  # ignored under manual optimisation (the module clips itself)
    accumulate_grad_batches: int = 1
    seed: int = 0
    deterministic: bool = False


@dataclass
class LoggingConfig:
    logger: str = "wandb"  # wandb (offline by default) | tensorboard | csv | none
    project: str = "talkfreq"
    offline: bool = True
    sample_every_n_steps: int = 1000  # sample grids and averaged spectra of generated vs real crops
    quiet: bool = False  # no progress bar, step lines, banners or tips (``--quiet``)


@dataclass
class RunConfig:
    out_dir: str = "outputs/runs"
    name: str = "run"
    resume: Optional[str] = None  # "last" or a .ckpt path
    monitor: str = "val/loss"
    monitor_mode: str = "min"
    checkpoint_every_n_steps: int = 1000


def run_dir(run: RunConfig) -> Path:
    return Path(run.out_dir) / run.name


def _devices(text: str) -> Any:
    text = str(text).strip()
    if text == "auto":
        return "auto"
    if text.startswith("["):
        return [int(x) for x in text.strip("[]").split(",") if x.strip()]
    try:
        return int(text)
    except ValueError as exc:
        raise TalkfreqError(f"trainer.devices={text!r}: expected auto, a count or a list like [0,1]") from exc


def make_logger(logging: LoggingConfig, *, save_dir: Path, name: str):
    from lightning.pytorch import loggers

    kind = logging.logger.lower()
    if kind == "none":
        return False
    if kind == "csv":
        # auto-numbered versions: a resumed run logs into version_1, never over the first run's metrics.csv
        return loggers.CSVLogger(save_dir=str(save_dir), name="csv")
    if kind == "tensorboard":
        return loggers.TensorBoardLogger(save_dir=str(save_dir), name="tb")
    if kind == "wandb":
        if logging.offline:
            os.environ.setdefault("WANDB_MODE", "offline")
        return loggers.WandbLogger(project=logging.project, name=name, save_dir=str(save_dir), offline=logging.offline)
    raise TalkfreqError(f"logging.logger must be wandb, tensorboard, csv or none, got {logging.logger!r}")


def warn(message: str) -> None:
    """One line on stderr, seen whatever the logging setup (Lightning's own logs may be silenced)."""
    print(f"talkfreq: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)


def resolve_resume(run: RunConfig) -> Optional[str]:
    """The checkpoint to resume from, or None. ``last`` with no last.ckpt yet starts fresh (the first run of a job
    that is repeated with ``--resume last``), with a warning (see the module docstring)."""
    if not run.resume:
        return None
    if run.resume == "last":
        folder = run_dir(run)
        last = folder / "checkpoints" / "last.ckpt"
        if last.is_file():
            return str(last)
        if (folder / "config.yaml").is_file():
            warn(f"--resume last: {folder} holds no checkpoint: an earlier run there stopped before its first one "
                 f"(written every {run.checkpoint_every_n_steps} steps, run.checkpoint_every_n_steps), so its "
                 f"steps are lost; training starts again from step 0")
        else:
            warn(f"--resume last: no checkpoint in {folder} yet; training starts from step 0")
        return None
    path = Path(run.resume)
    if not path.is_file():
        raise TalkfreqError(f"{path}: checkpoint to resume from not found")
    return str(path)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def check_resume_config(checkpoint: str | Path, full_config: Any) -> None:
    """One-line error when ``full_config`` differs from the ``config.yaml`` of the run that wrote ``checkpoint``
    (its folder's parent) in anything but ``RESUMABLE`` keys; nothing to check when that file is missing."""
    from omegaconf import OmegaConf

    saved = Path(checkpoint).resolve().parent.parent / "config.yaml"
    if not saved.is_file():
        return
    try:
        old = _flat(OmegaConf.to_container(OmegaConf.load(saved), resolve=True))
    except Exception as exc:  # an unreadable file describes nothing to compare against
        first = str(exc).splitlines()[0] if str(exc) else exc
        raise TalkfreqError(f"{saved}: unreadable run config ({first})") from exc
    new = _flat(OmegaConf.to_container(OmegaConf.create(to_yaml(full_config)), resolve=True))
    diff = [k for k in sorted(old.keys() | new.keys())
            if old.get(k, "<unset>") != new.get(k, "<unset>") and not k.startswith(RESUMABLE)]
    if diff:
        shown = ", ".join(f"{k} {old.get(k, '<unset>')} -> {new.get(k, '<unset>')}" for k in diff[:4])
        more = f" (+{len(diff) - 4} more)" if len(diff) > 4 else ""
        raise TalkfreqError(
            f"{checkpoint}: cannot resume with a changed config: {shown}{more}; a resumed run keeps the model and "
            f"training settings of {saved} (only trainer.*, run.*, logging.*, data.root and data.num_workers may "
            f"change); start a new run with another --name")


def build_trainer(*, trainer: TrainerConfig, logging: LoggingConfig, run: RunConfig, callbacks: list | None = None,
                  full_config: Any = None, resume: str | None = None):
    """A ``lightning.Trainer`` writing into ``run_dir(run)``, with last/best checkpoints and the chosen logger.

    ``resume``: the checkpoint the fit will resume from; its run's config is checked first
    (:func:`check_resume_config`), before ``config.yaml`` is written.
    """
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from talkfreq.training.callbacks import StepLines, quiet_lightning

    if resume is not None and full_config is not None:
        check_resume_config(resume, full_config)
    out = require_writable_dir(run_dir(run))
    if logging.quiet:
        quiet_lightning()
    steps = [] if logging.quiet or sys.stdout.isatty() else [StepLines(every_n_steps=trainer.log_every_n_steps)]
    if full_config is not None:
        (out / "config.yaml").write_text(to_yaml(full_config))
    ckpt_dir = out / "checkpoints"
    last = ModelCheckpoint(dirpath=ckpt_dir, filename="step{step}", save_last=True, save_top_k=0,
                           every_n_train_steps=run.checkpoint_every_n_steps, auto_insert_metric_name=False)
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=run.monitor, mode=run.monitor_mode,
                           save_top_k=1, auto_insert_metric_name=False)
    L.seed_everything(trainer.seed, workers=True, verbose=False)
    return L.Trainer(
        default_root_dir=str(out),
        max_steps=trainer.max_steps,
        max_epochs=-1,
        accelerator=trainer.accelerator,
        devices=_devices(trainer.devices),
        num_nodes=trainer.num_nodes,
        strategy=trainer.strategy,
        precision=trainer.precision,
        val_check_interval=trainer.val_check_interval,
        check_val_every_n_epoch=None,
        limit_val_batches=trainer.limit_val_batches,
        log_every_n_steps=trainer.log_every_n_steps,
        gradient_clip_val=trainer.gradient_clip_val or None,
        accumulate_grad_batches=trainer.accumulate_grad_batches,
        deterministic=trainer.deterministic,
        logger=make_logger(logging, save_dir=out, name=run.name),
        callbacks=[last, best, *steps, *(callbacks or [])],
        # a bar redrawn with carriage returns is noise in a log file: the step lines are that run's progress
        enable_progress_bar=not logging.quiet and sys.stdout.isatty(),
        enable_model_summary=False,
    )


@dataclass
class CommonSections:
    """Mixed into each run config (a dataclass field each) so every run has the same three sections."""

    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    run: RunConfig = field(default_factory=RunConfig)
