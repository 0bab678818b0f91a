"""The timm model with the same architecture as an attnlab model, for ``attnlab bench --vs-timm``.

timm's ResNets place the attention gate where attnlab does (after the block's last BN, before the residual
addition; ``block_args=dict(attn_layer=...)``), but two of its attention defaults differ from the papers, so
the twins pass arguments that restore the papers' architecture:

- SE: timm rounds the hidden width ``C / 16`` up to a multiple of 8 (``rd_divisor=8``), which changes the
  64-channel stage of ResNet-18/34 (8 hidden units instead of the paper's 4); the twin uses ``rd_divisor=1``.
  On ResNet-50 every width is a multiple of 128, so timm's default SE is already the paper's.
- CBAM: timm's channel MLP has no biases (``mlp_bias=False``); the official CBAM MLP has them, so the twin
  uses ``mlp_bias=True``. (timm also stacks the spatial descriptor as [mean; max] instead of [max; mean],
  which swaps two input channels of the 7x7 conv and changes neither cost nor parameter count.)
- ECA: timm's adaptive kernel size is attnlab's ``eca_kernel_size`` (clamped to >= 3, which changes nothing
  for C >= 8), so timm's default is used.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class TimmTwin:
    """How to build the timm equivalent of one attnlab model: timm name, the attention layer, and a note."""

    timm_name: str
    attention: str | None = None
    note: str = ""


_FAMILIES = {
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50",
    "resnet101": "resnet101",
    "resnet152": "resnet152",
    "resnext50_32x4d": "resnext50_32x4d",
}
_NOTES = {
    None: "",
    "se": "timm SE with rd_divisor=1 (timm's default rounds C/16 up to a multiple of 8)",
    "eca": "timm ECA, default adaptive kernel",
    "cbam": "timm CBAM with mlp_bias=True (timm's default MLP has no biases, the official CBAM has)",
}


def _twins() -> dict[str, TimmTwin]:
    twins = {}
    for ours, theirs in _FAMILIES.items():
        for attention, note in _NOTES.items():
            name = f"{attention}_{ours}" if attention else ours
            twins[name] = TimmTwin(theirs, attention, note)
    return twins


TIMM_TWINS: dict[str, TimmTwin] = _twins()


def _timm_attention_layer(attention: str | None):
    from timm.layers.cbam import CbamModule
    from timm.layers.eca import EcaModule
    from timm.layers.squeeze_excite import SEModule

    layers = {
        None: None,
        "se": functools.partial(SEModule, rd_divisor=1),
        "eca": EcaModule,
        "cbam": functools.partial(CbamModule, mlp_bias=True),
    }
    return layers[attention]


def create_timm_twin(name: str, num_classes: int = 1000) -> nn.Module | None:
    """The timm model equal to attnlab's ``name`` (randomly initialised, nothing downloaded), or None when
    timm has no such architecture (e.g. EPSANet, the CIFAR ResNets)."""
    twin = TIMM_TWINS.get(name)
    if twin is None:
        return None
    import timm

    block_args = {"attn_layer": _timm_attention_layer(twin.attention)} if twin.attention else None
    return timm.create_model(twin.timm_name, pretrained=False, num_classes=num_classes, block_args=block_args)
