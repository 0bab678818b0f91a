"""Coordinate Attention."""

from __future__ import annotations

import torch
from torch import nn

from ._common import apply_gate, check_input, check_positive_int, create_act, reduced_channels
from ._registry import register_attention


@register_attention("coord", paper="Coordinate Attention for Efficient Mobile Network Design", year=2021)
class CoordinateAttention(nn.Module):
    """Coordinate Attention (Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021).

    Average-pool along W and along H, giving (N, C, H, 1) and (N, C, W, 1) direction-aware descriptors;
    concatenate them along the spatial axis, apply a shared biased 1x1 conv ``C -> mid`` + BN + ``act`` (h-swish)
    with ``mid = max(min_hidden, C // reduction)`` (``self.hidden``); split back and map each part with its own
    biased 1x1 conv ``mid -> C`` and a sigmoid: ``y = x * a_h * a_w``. One ``gate`` Sigmoid is called twice, on
    the (N, C, H, 1) and the (N, C, 1, W) attention maps. Parameters: 3*C*mid + 3*mid + 2*C.
    ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: float = 32,
        min_hidden: int = 8,
        act: str | nn.Module = "hard_swish",
        inplace: bool = False,
    ):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.inplace = inplace
        self.min_hidden = check_positive_int("min_hidden", min_hidden)
        self.reduction = reduction
        self.hidden = max(reduced_channels(channels, reduction, min_channels=0), min_hidden)
        self.conv = nn.Conv2d(channels, self.hidden, 1)
        self.bn = nn.BatchNorm2d(self.hidden)
        self.act = create_act(act)
        self.conv_h = nn.Conv2d(self.hidden, channels, 1)
        self.conv_w = nn.Conv2d(self.hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        h, w = x.shape[-2:]
        pooled_h = x.mean(3, keepdim=True)  # (N, C, H, 1)
        pooled_w = x.mean(2, keepdim=True).transpose(2, 3)  # (N, C, W, 1)
        y = self.act(self.bn(self.conv(torch.cat((pooled_h, pooled_w), dim=2))))
        y_h, y_w = y.split((h, w), dim=2)
        a_h = self.gate(self.conv_h(y_h))
        a_w = self.gate(self.conv_w(y_w.transpose(2, 3)))
        # the first product is this module's own tensor, so the second may always go in place
        return apply_gate(apply_gate(x, a_h, self.inplace), a_w, inplace=True)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}"
