"""EPSANet (Zhang, Zu, Lu, Zou, Meng, "EPSANet: An Efficient Pyramid Squeeze Attention Block on Convolutional
Neural Network", arXiv 2021 / ACCV 2022).

An EPSANet is a ResNet whose bottleneck 3x3 conv is the PSA module (``attnlab.attention.psa``) with the block's
stride: four branches with kernels (3, 5, 7, 9) and groups (1, 4, 8, 16), re-weighted by a shared SE and a
softmax across the branches. Everything else (stem, stages, strides, head) is the ResNet of
:mod:`attnlab.models.resnet`, so the builders are ResNet-50/101 with ``attention='psa'``.
"""

from __future__ import annotations

from typing import Any

from attnlab.attention import AttentionPlacement

from ._registry import register_model
from .resnet import Bottleneck, ResNet


@register_model("epsanet50", attention="psa")
def epsanet50(*, attention: AttentionPlacement | str | None = "psa", **kwargs: Any) -> ResNet:
    """EPSANet-50 ("small", PSA in all four stages): 22.56M parameters at 1000 classes; ``kwargs`` go to
    :class:`ResNet` (``attention_kwargs`` reach the PSA modules)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], attention=attention, **kwargs)


@register_model("epsanet101", attention="psa")
def epsanet101(*, attention: AttentionPlacement | str | None = "psa", **kwargs: Any) -> ResNet:
    """EPSANet-101 ("small"): 38.90M parameters at 1000 classes; ``kwargs`` go to :class:`ResNet`."""
    return ResNet(Bottleneck, [3, 4, 23, 3], attention=attention, **kwargs)
