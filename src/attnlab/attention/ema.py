"""Efficient Multi-Scale Attention."""

from __future__ import annotations

import torch
from torch import nn

from ._common import apply_gate, check_input, check_positive_int
from ._registry import register_attention


@register_attention("ema", paper="Efficient Multi-Scale Attention Module with Cross-Spatial Learning", year=2023)
class EfficientMultiScaleAttention(nn.Module):
    """EMA (Ouyang, He, Zhang, Luo, Guo, Zhan, Huang, "Efficient Multi-Scale Attention Module with Cross-Spatial
    Learning", ICASSP 2023).

    The C channels are split into ``groups`` sub-features of ``c = C / G`` channels, each processed alike:

    - 1x1 branch: pool along W and along H (``z_h``: (c, H), ``z_w``: (c, W)), a shared biased 1x1 conv
      ``c -> c`` on their concatenation, split, sigmoids: ``x1 = GN(x * sigmoid(a_h) * sigmoid(a_w))``, GroupNorm
      with one group per channel;
    - 3x3 branch: ``x2 = conv3x3(x)``, biased, ``c -> c``;
    - cross-spatial learning: ``w = softmax_c(avgpool(x1))^T x2 + softmax_c(avgpool(x2))^T x1``, an (H, W) map;
    - ``y = x * sigmoid(w)``: ``gate`` is that sigmoid, its output (N, G, H, W).

    Parameters: ``10 c^2 + 4 c`` (1x1 conv, 3x3 conv, GN affine), shared by the groups. ``groups`` defaults to
    32, the official code's ``factor``; ``channels`` must be divisible by it and leave at least 2 channels per
    group (with one, the channel softmax is constantly 1 and the cross-spatial step degenerates), so the default
    needs channels >= 64. The module follows the official code, which matches the paper's figure and equations.
    ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(self, channels: int, *, groups: int = 32, inplace: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("groups", groups)
        if channels % groups or channels // groups < 2:
            fits = [g for g in range(1, channels // 2 + 1) if channels % g == 0 and g <= groups]
            fix = f"use groups={fits[-1]}" if fits else "place it after a layer with at least 2 channels"
            raise ValueError(
                f"EMA needs channels divisible by groups with at least 2 channels per group, got channels={channels}"
                f", groups={groups}; {fix}"
            )
        self.groups, self.inplace = groups, inplace
        self.group_channels = c = channels // groups
        self.conv1x1 = nn.Conv2d(c, c, 1)
        self.conv3x3 = nn.Conv2d(c, c, 3, padding=1)
        self.norm = nn.GroupNorm(c, c)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        n, _, h, w = x.shape
        grouped = x.reshape(n * self.groups, self.group_channels, h, w)
        pooled = torch.cat((grouped.mean(3, keepdim=True), grouped.mean(2, keepdim=True).transpose(2, 3)), dim=2)
        a_h, a_w = self.conv1x1(pooled).split((h, w), dim=2)  # (nG, c, H, 1), (nG, c, W, 1)
        x1 = self.norm(grouped * torch.sigmoid(a_h) * torch.sigmoid(a_w.transpose(2, 3)))
        x2 = self.conv3x3(grouped)
        w1 = x1.mean((2, 3)).softmax(-1).unsqueeze(1)  # (nG, 1, c)
        w2 = x2.mean((2, 3)).softmax(-1).unsqueeze(1)
        weights = w1 @ x2.flatten(2) + w2 @ x1.flatten(2)  # (nG, 1, H*W)
        gate = self.gate(weights.reshape(n, self.groups, 1, h, w))
        return apply_gate(x.unflatten(1, (self.groups, -1)), gate, self.inplace).flatten(1, 2)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, groups={self.groups}"
