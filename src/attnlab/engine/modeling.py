"""From a training config (or a checkpoint's record of one) to the model: the backbone, the attention attached
into it, and nothing else. Training, loading a checkpoint and costing a comparison all build models here, so the
three always agree."""

from __future__ import annotations

from torch import nn

from attnlab.engine.config import TrainConfig
from attnlab.models import create_model
from attnlab.retrofit import WHERE_MODES, AttachReport, attach


def parse_where(text: str) -> str | list[str]:
    """``where`` of :func:`attnlab.attach` from a flag's text: 'residual', 'conv', or comma-separated glob
    patterns over module paths."""
    return text if text in WHERE_MODES else [p.strip() for p in text.split(",") if p.strip()]


def model_kwargs(config: TrainConfig, num_classes: int) -> dict:
    """The ``create_model`` keyword arguments of ``config`` (checkpoints record them)."""
    return {
        "num_classes": num_classes,
        "attention": config.attention,
        "attention_kwargs": config.attention_kwargs or None,
    }


def attach_spec(config: TrainConfig) -> dict | None:
    """How ``config`` calls :func:`attnlab.attach` (checkpoints record it), or None without ``attach``."""
    if not config.attach:
        return None
    return {
        "attention": config.attach,
        "where": parse_where(config.attach_where),
        "attention_kwargs": config.attention_kwargs or {},
    }


def build_model(model: str, kwargs: dict, attached: dict | None = None) -> tuple[nn.Module, AttachReport | None]:
    """(``create_model(model, **kwargs)`` with the attention of ``attached`` attached, the attach report or
    None); ``kwargs`` and ``attached`` as :func:`model_kwargs` and :func:`attach_spec` give them."""
    built = create_model(model, **{k: v for k, v in kwargs.items() if v is not None})
    if not attached:
        return built, None
    report = attach(built, attached["attention"], attached["where"], **attached["attention_kwargs"])
    return built, report


def model_for_config(config: TrainConfig, num_classes: int) -> nn.Module:
    """The untrained model ``config`` trains, attached attention included."""
    return build_model(config.model, model_kwargs(config, num_classes), attach_spec(config))[0]
