"""torchvision and timm models by name (``'torchvision:resnet18'``, ``'timm:resnet50'``), with random weights
(nothing is downloaded) and optionally attention attached where the papers place it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from attnlab.retrofit import attach
from attnlab.utils import check_positive_int, unknown_name_error

EXTERNAL_SOURCES = ("torchvision", "timm")


def create_external_model(
    name: str,
    num_classes: int = 1000,
    attention: str | type[nn.Module] | None = None,
    attention_kwargs: dict | None = None,
    attention_stages: Sequence[int] | None = None,
    in_chans: int = 3,
    **kwargs: Any,
) -> nn.Module:
    """Build ``'torchvision:ARCH'`` or ``'timm:ARCH'`` with random weights and, with ``attention``, attach it
    after the last BN of each residual branch as the papers place it (``init=None``: the modules as their
    papers have them; for fine-tuning pretrained weights use :func:`attnlab.attach`)."""
    check_positive_int("num_classes", num_classes)
    source, _, arch = name.partition(":")
    if source == "torchvision":
        import torchvision

        if in_chans != 3:
            raise ValueError(f"torchvision models take 3 input channels, got in_chans={in_chans}; use a timm model")
        known = torchvision.models.list_models()
        if arch not in known:
            raise unknown_name_error(
                "model", name, known, listing="torchvision.models.list_models()", prefix="torchvision:"
            )
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    elif source == "timm":
        try:
            import timm
        except ImportError:
            raise ValueError(f"{name!r} needs timm: pip install 'attnlab[timm]'") from None
        if not timm.is_model(arch):
            raise unknown_name_error("model", name, timm.list_models(), listing="timm.list_models()", prefix="timm:")
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
    else:
        raise ValueError(
            f"model {name!r}: the prefix must be one of {', '.join(EXTERNAL_SOURCES)}, e.g. 'timm:resnet18'"
        )
    model.default_input_size = (in_chans, 224, 224)
    model.model_name = name
    if attention is not None:
        attach(model, attention, "residual", attention_stages, init=None, **(attention_kwargs or {}))
    return model
