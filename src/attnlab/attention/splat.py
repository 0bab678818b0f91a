"""Split-Attention convolution (ResNeSt)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._common import check_input, check_positive_int, create_act, global_avg_pool, reduced_channels
from ._registry import register_attention


class RadixSoftmax(nn.Module):
    """The r-Softmax of ResNeSt: (N, groups*radix*C/groups, 1, 1) logits, ordered (group, split, channel) as the
    grouped fc2 writes them, to (N, radix, C, 1, 1) weights; a softmax across the ``radix`` splits within each
    cardinal group, or a sigmoid when ``radix == 1``."""

    def __init__(self, radix: int, groups: int):
        super().__init__()
        self.radix, self.groups = radix, groups

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        n = logits.shape[0]
        if self.radix == 1:
            return torch.sigmoid(logits).reshape(n, 1, -1, 1, 1)
        weights = torch.softmax(logits.reshape(n, self.groups, self.radix, -1), dim=2)
        return weights.transpose(1, 2).reshape(n, self.radix, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"radix={self.radix}, groups={self.groups}"


@register_attention("splat", kind="conv", paper="ResNeSt: Split-Attention Networks", year=2020)
class SplitAttention(nn.Module):
    """Split-Attention convolution (Zhang, Wu, Zhang, Zhu, Lin, Zhang, Sun, He, Mueller, Manmatha, Li, Smola,
    "ResNeSt: Split-Attention Networks", arXiv 2020; CVPR Workshops 2022). Replaces the 3x3 conv of a block.

    - splits: one 3x3 conv with ``groups * radix`` groups, ``in_channels -> radix * out_channels``, with the
      block's stride, + BN + ``act``: ``radix`` splits ``U_1..U_r`` of ``out_channels`` each (``groups`` is the
      cardinality K of the paper);
    - squeeze: ``s = gap(sum_i U_i)``; ``z = act(BN(fc1(s)))``, fc1 a biased grouped 1x1 conv ``out -> d``;
    - r-Softmax: fc2, a biased grouped 1x1 conv ``d -> radix * out``, then a softmax across the splits within each
      cardinal group (a sigmoid when ``radix == 1``): the ``gate`` output, (N, radix, out, 1, 1);
    - ``V = sum_i a_i * U_i``.

    ``d = max(in_channels * radix // reduction, min_hidden)`` (``self.hidden``) as the official code's
    ``max(in * radix // 4, 32)``; timm rounds ``in * radix / 4`` to a multiple of 8 (equal for widths that are
    multiples of 16). timm's ``SplitAttn`` has no BN unless given ``norm_layer`` (ResNeSt passes BatchNorm2d, as
    here). ``in_channels`` must be divisible by ``groups * radix``, ``out_channels`` and ``d`` by ``groups``
    (ValueError at construction). Parameters: ``9*in*out/groups + 2*r*out + out*d/groups + d + 2*d +
    d*r*out/groups + r*out`` (conv, BN, fc1, BN, fc2). (N, in, H, W) -> (N, out, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        radix: int = 2,
        groups: int = 1,
        reduction: float = 4,
        min_hidden: int = 32,
        act: str | nn.Module = "relu",
    ):
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.stride = check_positive_int("stride", stride)
        self.radix = check_positive_int("radix", radix)
        self.groups = check_positive_int("groups", groups)
        self.min_hidden = check_positive_int("min_hidden", min_hidden)
        self.reduction = reduction
        if in_channels % (groups * radix):
            raise ValueError(
                f"groups * radix = {groups * radix} must divide in_channels={in_channels}; "
                f"pass groups and radix whose product divides {in_channels}, e.g. radix={math.gcd(in_channels, radix)}"
            )
        if out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide out_channels={out_channels}; "
                f"pass groups={math.gcd(in_channels // radix, out_channels, groups)}"
            )
        hidden = max(reduced_channels(in_channels * radix, reduction, min_channels=0), min_hidden)
        if hidden % groups:
            raise ValueError(
                f"the hidden width {hidden} must be divisible by groups={groups}; change min_hidden or reduction"
            )
        self.hidden = hidden
        self.conv = nn.Conv2d(
            in_channels, out_channels * radix, 3, stride, padding=1, groups=groups * radix, bias=False
        )
        self.bn0 = nn.BatchNorm2d(out_channels * radix)
        self.act0 = create_act(act)
        self.fc1 = nn.Conv2d(out_channels, hidden, 1, groups=groups)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act1 = create_act(act)
        self.fc2 = nn.Conv2d(hidden, out_channels * radix, 1, groups=groups)
        self.gate = RadixSoftmax(radix, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels)
        u = self.act0(self.bn0(self.conv(x)))
        n, _, h, w = u.shape
        splits = u.reshape(n, self.radix, self.out_channels, h, w)
        z = self.act1(self.bn1(self.fc1(global_avg_pool(splits.sum(1)))))
        return (splits * self.gate(self.fc2(z))).sum(1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, stride={self.stride}, radix={self.radix}, "
            f"groups={self.groups}, hidden={self.hidden}"
        )
