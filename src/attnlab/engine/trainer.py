"""The training loop, top to bottom: data, model, optimiser, epochs, checkpoints, metrics, plots.

Reproducibility: every epoch starts by seeding the global RNGs from (seed, epoch), and the data order and
augmentation come from generators seeded the same way, so an epoch's batches, augmentations, mixup and dropout
depend only on the seed and the epoch number. Resuming from the state saved after epoch e therefore replays
epochs e+1... as an uninterrupted run would (with ``deterministic`` on the CPU, to the last bit).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from attnlab.attention import attention_layers
from attnlab.engine.batches import preprocess_for, splits_for, train_val_batches
from attnlab.engine.checkpoint import load_state, read_state_dict, save_state, save_weights
from attnlab.engine.config import TrainConfig
from attnlab.engine.distributed import (
    broadcast_buffers,
    close_distributed,
    init_distributed,
    is_main_process,
    reduce_sums,
)
from attnlab.engine.evaluate import EvalResult, evaluate
from attnlab.engine.modeling import attach_spec, build_model, model_kwargs
from attnlab.engine.plots import plot_run
from attnlab.engine.rundir import (
    CONFIG_FILE,
    LOCK_FILE,
    Provenance,
    RunLock,
    clear_run,
    holds_run,
    refuse_existing_run,
    with_run_dir,
)
from attnlab.engine.schedule import build_optimizer, build_scheduler
from attnlab.retrofit import load_original_weights
from attnlab.utils import (
    atomic_write_text,
    autocast,
    check_writable_folder,
    progress_bar,
    resolve_amp,
    resolve_device,
)

RESUME_FILE = "resume.safetensors"
# The columns of metrics.csv (and keys of metrics.jsonl), one row per finished epoch. README "Metrics" lists them.
METRICS = {
    "epoch": "the epoch, counted from 1",
    "train_loss": "mean training loss over the epoch's batches (with mixup/label smoothing when on, so it runs "
    "higher than val_loss)",
    "train_acc": "top-1 accuracy on the training batches as trained (augmented, mixed), so below a clean evaluation",
    "val_loss": "cross-entropy on the validation split after the epoch (of the EMA weights when ema is on)",
    "val_acc": "top-1 accuracy on the validation split after the epoch",
    "val_top5": "top-5 accuracy on the validation split (1.0 by definition with 5 classes or fewer)",
    "lr": "the learning rate of the epoch's last optimiser step (the first parameter group's)",
    "epoch_seconds": "wall time of the epoch's training pass, data loading included (validation and checkpoints not)",
    "train_images_per_s": "training images per second over the epoch (all processes together)",
}
METRIC_FIELDS = list(METRICS)
TENSORBOARD_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "val_top5": "accuracy/val_top5",
    "lr": "lr",
    "epoch_seconds": "speed/epoch_seconds",
    "train_images_per_s": "speed/train_images_per_s",
}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the checkpoints of the last finished epoch are kept."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def set_deterministic(enabled: bool) -> None:
    """Deterministic kernels (warning about ops that have none) and no cuDNN autotuning."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled


def mixup_batch(images: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup (Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018):
    (mixed images (N, 3, H, W), the permutation they were mixed with (N,), lambda)."""
    lam = float(np.random.beta(alpha, alpha))
    perm = torch.randperm(len(images), device=images.device)
    return lam * images + (1 - lam) * images[perm], perm, lam


def tensorboard_writer(folder: Path):
    """A TensorBoard ``SummaryWriter`` writing into ``folder``, or None when the tensorboard package (the optional
    ``attnlab[tensorboard]`` extra) is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))


class RunLogger:
    """Writes the per-epoch metrics of a run (rank 0 only) as ``metrics.csv`` and ``metrics.jsonl`` (the columns
    of :data:`METRICS`) and, with ``tensorboard`` on and the tensorboard package installed, as TensorBoard
    scalars in ``RUN/tensorboard`` (:data:`TENSORBOARD_TAGS`)."""

    def __init__(self, run_dir: Path, tensorboard: bool):
        self.csv_path, self.jsonl_path = run_dir / "metrics.csv", run_dir / "metrics.jsonl"
        self.tensorboard_dir = run_dir / "tensorboard"
        self.writer = tensorboard_writer(self.tensorboard_dir) if tensorboard else None

    def write_all(self, history: list[dict]) -> None:
        """Rewrite both files from ``history`` (after a resume, rows of an interrupted epoch disappear)."""
        lines = [",".join(METRIC_FIELDS)] + [",".join(str(row[k]) for k in METRIC_FIELDS) for row in history]
        atomic_write_text(self.csv_path, "\n".join(lines) + "\n")
        atomic_write_text(self.jsonl_path, "".join(json.dumps(row) + "\n" for row in history))
        if self.writer and history:
            row = history[-1]
            for key, tag in TENSORBOARD_TAGS.items():
                self.writer.add_scalar(tag, row[key], row["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def short_list(names: list[str], limit: int = 6) -> str:
    """'a, b, c' or, for more than ``limit`` names, 'a, b, c, ... z'."""
    shown = names if len(names) <= limit else [*names[: limit - 1], "...", names[-1]]
    return ", ".join(shown)


def duration(seconds: float) -> str:
    """'42s', '3m05s' or '2h07m'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def epoch_line(row: dict, epochs: int, num_classes: int, eta_seconds: float, best: bool) -> str:
    """The line printed after each epoch: losses, accuracies (top-5 only with more than 5 classes, where it
    differs from 1), the last step's learning rate, time, speed and the time left for the whole run."""
    top5 = f" top-5 {row['val_top5']:.4f}" if num_classes > 5 else ""
    eta = f"  eta {duration(eta_seconds)}" if row["epoch"] < epochs else ""
    return (
        f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
        f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}{top5}  lr {row['lr']:.2e}  "
        f"{row['epoch_seconds']:.1f}s {row['train_images_per_s']:.0f} img/s{eta}" + ("  *best" if best else "")
    )


def log(message: str) -> None:
    if is_main_process():
        print(message, flush=True)


class Trainer:
    """One training run; ``Trainer(config).fit()`` trains, checkpoints and returns the last epoch's metrics."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.device = resolve_device(config.device)
        self.rank, self.world_size = init_distributed(self.device)
        self.amp_dtype = resolve_amp(config.amp, self.device)
        set_deterministic(config.deterministic)
        seed_everything(config.seed)
        if config.out is None:
            raise ValueError("Trainer needs config.out, the run folder; train() picks a default one")
        self.run_dir = Path(config.out)
        self.provenance = Provenance(self.run_dir, self.device)

        self.splits = splits_for(config)
        if self.splits.train is None:
            raise ValueError("no training data: pass --data DIR or --train DIR with --val DIR")
        self.classes = list(self.splits.classes)
        if len(self.classes) < 2:
            warnings.warn(
                f"the data has only one class ({self.classes[0]}): every prediction is right, so accuracy is 100% "
                "and means nothing; add at least one more class folder",
                stacklevel=2,
            )
        self.preprocess = preprocess_for(config, self.splits)
        self.train_batches, self.val_batches = train_val_batches(
            self.splits, self.preprocess, config, self.rank, self.world_size, self.device
        )

        self.model = self.build_model()
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = build_scheduler(self.optimizer, len(self.train_batches), config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.ema = None
        if config.ema:
            ema_fn = torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema)
            self.ema = torch.optim.swa_utils.AveragedModel(self.model, multi_avg_fn=ema_fn, use_buffers=True)
        self.train_model = self.model
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        if config.compile:
            self.train_model = torch.compile(self.train_model)

        self.logger = RunLogger(self.run_dir, config.tensorboard) if is_main_process() else None
        self.history: list[dict] = []
        self.start_epoch = 0
        self.best_acc = -1.0
        self.best_epoch = 0
        self.last_val: EvalResult | None = None

    def build_model(self) -> nn.Module:
        model, report = build_model(self.config.model, self.model_kwargs(), self.attach_spec())
        if report is not None:
            log(str(report))
        if self.config.init_from:
            left_out = load_original_weights(model, read_state_dict(self.config.init_from))
            log(
                f"initialised from {self.config.init_from}"
                + (f" except (shape differs) {', '.join(left_out)}" if left_out else "")
            )
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.config.channels_last else model

    def attach_spec(self) -> dict | None:
        """How ``attach`` was called (checkpoint metadata: ``load_model`` attaches the same way)."""
        return attach_spec(self.config)

    def model_kwargs(self) -> dict:
        return model_kwargs(self.config, len(self.classes))

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def metadata(self, epoch: int, metrics: dict) -> dict:
        """What a checkpoint needs besides its tensors: how to rebuild the model and prepare its inputs."""
        return {
            "model": self.config.model,
            "model_kwargs": self.model_kwargs(),
            "attach": self.attach_spec(),
            "attention_layers": attention_layers(self.model),
            "classes": self.classes,
            "preprocess": self.preprocess.to_dict(),
            "epoch": epoch,
            "metrics": metrics,
            "config": self.config.to_dict(),
        }

    # --------------------------------------------------------------------------------------------- training

    def fit(self) -> dict:
        config = self.config
        if is_main_process():
            atomic_write_text(self.run_dir / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
            atomic_write_text(self.run_dir / "classes.json", json.dumps(self.splits.class_to_index, indent=2))
            self.provenance.start()
        log(
            f"{len(self.splits.train)} training and {len(self.splits.val)} validation images of "
            f"{len(self.classes)} classes ({short_list(self.classes)}); run directory {self.run_dir}"
            + (f" (TensorBoard: {self.logger.tensorboard_dir})" if self.logger and self.logger.writer else "")
        )
        start = time.perf_counter()
        for epoch in range(self.start_epoch, config.epochs):
            row = self.train_epoch(epoch)
            broadcast_buffers(self.eval_model)
            self.last_val = evaluate(
                self.eval_model,
                progress_bar(
                    self.val_batches.epoch(epoch),
                    desc="validation",
                    total=len(self.val_batches),
                    enabled=is_main_process(),
                ),
                len(self.classes),
                self.device,
                amp_dtype=self.amp_dtype,
                channels_last=config.channels_last,
            )
            row.update(val_loss=self.last_val.loss, val_acc=self.last_val.top1, val_top5=self.last_val.top5)
            self.history.append(row)
            per_epoch = (time.perf_counter() - start) / (epoch + 1 - self.start_epoch)
            self.end_epoch(row, eta_seconds=per_epoch * (config.epochs - epoch - 1))
        if is_main_process():
            if self.last_val is not None:
                self.write_plots()
            self.provenance.finish()
            self.logger.close()  # a run that fails leaves the writer's daemon thread; each epoch was flushed
        return self.history[-1] if self.history else {}

    def train_epoch(self, epoch: int) -> dict:
        config = self.config
        seed_everything(epoch_seed(config.seed, epoch))
        self.train_model.train()
        # Running sums stay on the device: reading them (or the step's loss) every step would make the host wait
        # for the GPU, so it could not queue the next steps meanwhile.
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        count = 0
        start = time.perf_counter()
        bar = progress_bar(
            self.train_batches.epoch(epoch),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            total=len(self.train_batches),
            enabled=is_main_process(),
        )
        for images, labels in bar:
            if config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses; the epoch reports its last step's
            loss, batch_correct = self.train_step(images, labels)
            loss_sum += loss * len(labels)
            correct += batch_correct
            count += len(labels)
            if not bar.disable:  # a terminal shows the running figures, at one host sync per step
                bar.set_postfix(loss=f"{loss_sum.item() / count:.4f}", acc=f"{correct.item() / count:.4f}")
        loss_sum, correct, count = reduce_sums(loss_sum.item(), correct.item(), count, device=self.device)
        seconds = time.perf_counter() - start  # after .item(): the GPU has finished the epoch's steps
        if not math.isfinite(loss_sum):  # summed over processes: under DDP all of them stop together
            saved = (
                f"The checkpoints of the last finished epoch ({self.history[-1]['epoch']}) are in {self.run_dir}."
                if self.history
                else "No epoch finished, so nothing was saved."
            )
            raise TrainingDiverged(
                f"the training loss became {loss_sum / count} in epoch {epoch + 1}; training stopped. {saved} Try a "
                "lower --lr or --grad-clip 1.0, or --amp bf16 instead of fp16."
            )
        return {
            "epoch": epoch + 1,
            "train_loss": loss_sum / count,
            "train_acc": correct / count,
            "lr": lr,
            "epoch_seconds": seconds,
            "train_images_per_s": count / seconds,
        }

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step; returns this process's (mean loss, correct predictions) as 0-d tensors on the
        device (no host sync)."""
        config = self.config
        with autocast(self.device, self.amp_dtype):
            if config.mixup:
                mixed, perm, lam = mixup_batch(images, config.mixup)
                logits = self.train_model(mixed).float()
                loss = lam * F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing) + (
                    1 - lam
                ) * F.cross_entropy(logits, labels[perm], label_smoothing=config.label_smoothing)
            else:
                logits = self.train_model(images).float()
                loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.detach(), (logits.argmax(1) == labels).sum()

    # ------------------------------------------------------------------------------------------ checkpoints

    def end_epoch(self, row: dict, eta_seconds: float = 0.0) -> None:
        """Commit the epoch, then write its files and the epoch line.

        Crash consistency: ``resume.safetensors`` is written first and is the commit; it holds everything the
        other files are made from. ``last``, ``best`` (when val accuracy improved) and the metrics follow, so no
        file ever runs ahead of the committed epoch, and a resume after a crash anywhere in between rewrites them
        from the state (:meth:`write_epoch_files`). ``eta_seconds``: the time the remaining epochs should take."""
        improved = row["val_acc"] > self.best_acc
        if improved:
            self.best_acc, self.best_epoch = row["val_acc"], row["epoch"]
        if not is_main_process():
            return
        metadata = {**self.metadata(row["epoch"], row), "val_result": self.last_val.to_dict(self.classes)}
        save_state(self.run_dir / RESUME_FILE, self.training_state(), metadata)
        self.write_epoch_files(metadata)
        print(epoch_line(row, self.config.epochs, len(self.classes), eta_seconds, improved), flush=True)

    def training_state(self) -> dict:
        """Everything that changes during training; RNG state is not needed (each epoch reseeds)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "history": self.history,
            "best_acc": self.best_acc,
            "best_epoch": self.best_epoch,
        }

    def write_epoch_files(self, metadata: dict) -> None:
        """``last`` (the evaluated weights), ``best`` when the committed epoch is the best so far, and the metrics,
        all of the committed epoch ``metadata['epoch']``; rewriting them is harmless, so a resume repairs with it."""
        weights = self.eval_model.state_dict()
        save_weights(self.run_dir / "last.safetensors", weights, metadata)
        if self.best_epoch == metadata["epoch"]:
            save_weights(self.run_dir / "best.safetensors", weights, metadata)
        self.logger.write_all(self.history)

    def resume(self) -> Trainer:
        """Load ``resume.safetensors`` of the run directory; training continues after its epoch. The files of
        that epoch are rewritten from it (repairing a crash between the commit and those writes); a run stopped
        before its first epoch was committed starts again from epoch 1."""
        if is_main_process():
            for stale in self.run_dir.glob(".*.tmp"):  # left by a write that was killed
                stale.unlink()
        if not (self.run_dir / RESUME_FILE).is_file():
            log(f"{self.run_dir} has no finished epoch yet; starting it again from epoch 1")
            return self
        state, metadata = load_state(self.run_dir / RESUME_FILE)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.history, self.best_acc = list(state["history"]), state["best_acc"]
        self.best_epoch = state.get("best_epoch", 0)
        self.start_epoch = metadata["epoch"]
        if is_main_process():
            self.write_epoch_files(metadata)
        log(f"resuming {self.run_dir} after epoch {self.start_epoch}/{self.config.epochs}")
        return self

    def write_plots(self) -> None:
        epoch = self.history[-1]["epoch"]
        source = f"last checkpoint, epoch {epoch} of {self.config.epochs} (best: epoch {self.best_epoch})"
        plot_run(
            self.run_dir, self.history, self.last_val.confusion, self.eval_model, self.val_batches, self.classes, source
        )


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> dict:
    """Train according to ``config`` in the run folder ``config.out`` (default: a new folder under ``runs/``, see
    :func:`~attnlab.engine.rundir.default_run_dir`); returns the last epoch's metrics.

    A folder that holds a run is refused unless ``resume`` (continue it) or ``overwrite`` (delete its run files
    first). The folder is locked for the whole run (one writer at a time). A run that fails before it starts
    training leaves no folder behind. Under torchrun every process calls this; rank 0 owns the folder.
    """
    owner = int(os.environ.get("RANK", "0")) == 0
    config = with_run_dir(config)
    run_dir = Path(config.out)
    created = not run_dir.exists()
    if owner:
        check_writable_folder(run_dir)
    try:
        with RunLock(run_dir) if owner else contextlib.nullcontext():
            if owner and not resume:
                if overwrite:
                    clear_run(run_dir)
                else:
                    refuse_existing_run(run_dir)
            trainer = Trainer(config)
            return (trainer.resume() if resume else trainer).fit()
    finally:
        close_distributed()
        if owner and created and not holds_run(run_dir):  # failed before it began: leave nothing behind
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                run_dir.rmdir()
