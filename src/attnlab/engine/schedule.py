"""Optimizers and per-step learning-rate schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from attnlab.engine.config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) or Adam/AdamW, with weight decay on every parameter as in the seeds'
    and the papers' reference code."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay
        )
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


WARMUP_MIN_FRACTION = 0.05
WARMUP_MAX_FRACTION = 0.5


def warmup_length(total_steps: int, config: TrainConfig) -> int:
    """Optimizer steps of linear warm-up: ``config.warmup_steps`` (0: none), but at least 5% of the run, so long
    runs ramp up as gently as short ones, and at most half of it, so a run shorter than the warm-up still gets its
    peak and decay."""
    if not config.warmup_steps:
        return 0
    steps = max(config.warmup_steps, math.ceil(WARMUP_MIN_FRACTION * total_steps))
    return max(1, min(steps, int(WARMUP_MAX_FRACTION * total_steps)))


def lr_factor(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based). Step schedules change at epoch boundaries,
    cosine and one-cycle every step; the linear warm-up of :func:`warmup_length` multiplies any of them."""
    total = config.epochs * steps_per_epoch
    epoch = step // steps_per_epoch
    warmup = warmup_length(total, config)
    if config.schedule == "step":
        factor = config.lr_gamma ** sum(epoch >= m for m in config.milestones)
    elif config.schedule == "cosine":
        factor = 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    elif config.schedule == "onecycle":  # linear up over the warm-up, then linear down to 0
        return (step + 1) / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup))
    else:
        factor = 1.0
    return factor * min(1.0, (step + 1) / warmup) if warmup else factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int, config: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, config))
