"""Selective Kernel convolution (SKNet)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ._common import check_input, check_odd_kernel, check_positive_int, create_act, global_avg_pool, reduced_channels
from ._registry import register_attention


@register_attention("sk", kind="conv", paper="Selective Kernel Networks", year=2019)
class SelectiveKernel(nn.Module):
    """Selective Kernel convolution (Li, Wang, Hu, Yang, "Selective Kernel Networks", CVPR 2019). Replaces the
    3x3 conv of a bottleneck.

    - split: one branch per kernel size k, a grouped 3x3 conv with dilation (k-1)/2 (the paper's 5x5 is a dilated
      3x3) + BN + ``act``, each mapping ``in_channels`` to ``out_channels`` with the block's stride;
    - fuse: ``z = act(BN(W gap(U)))`` on the branch sum ``U``, ``W: out -> d`` without bias,
      ``d = max(out_channels // reduction, min_hidden)`` (the paper's max(C/r, L), L=32), stored as ``self.hidden``;
    - select: one bias-free FC per branch (A, B, ... of the paper, stacked in the single 1x1 conv ``select``), a
      softmax across the branches (the ``gate`` output, (N, M, out, 1, 1)), and ``V = sum_m a_m * U_m``.

    ``groups`` must divide both channel counts; there is no silent fallback, a ValueError names the largest
    divisor of ``groups`` that fits. timm's ``SelectiveKernel`` differs by default: it splits the input channels
    across the branches (``split_input=True``), uses ``groups=1`` and ``d = out / 16`` rounded to a multiple of 8;
    ``split_input=False, groups=32, rd_channels=max(out // 16, 32)`` there computes this module.
    Parameters: M*(9*in*out/groups + 2*out) + out*d + 2d + M*d*out.
    (N, in, H, W) -> (N, out, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        kernels: Sequence[int] = (3, 5),
        groups: int = 32,
        reduction: float = 16,
        min_hidden: int = 32,
        act: str | nn.Module = "relu",
    ):
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.stride = check_positive_int("stride", stride)
        self.groups = check_positive_int("groups", groups)
        self.min_hidden = check_positive_int("min_hidden", min_hidden)
        self.kernels, self.reduction = tuple(kernels), reduction
        if len(self.kernels) < 2:
            raise ValueError(f"kernels needs at least 2 sizes to select between, got {self.kernels}")
        for k in self.kernels:
            check_odd_kernel(f"each of the kernels {self.kernels}", k, 3, " (k is a 3x3 conv with dilation (k-1)/2)")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}; "
                f"pass groups={math.gcd(in_channels, out_channels, groups)}"
            )
        self.dilations = tuple((k - 1) // 2 for k in self.kernels)
        self.hidden = max(reduced_channels(out_channels, reduction, min_channels=0), min_hidden)
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 3, stride, padding=d, dilation=d, groups=groups, bias=False),
                nn.BatchNorm2d(out_channels),
                create_act(act),
            )
            for d in self.dilations
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(out_channels, self.hidden, 1, bias=False), nn.BatchNorm2d(self.hidden), create_act(act)
        )
        self.select = nn.Conv2d(self.hidden, out_channels * len(self.kernels), 1, bias=False)
        self.gate = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels)
        feats = torch.stack([branch(x) for branch in self.branches], dim=1)  # (N, M, out, H', W')
        n, m, c = feats.shape[:3]
        z = self.fuse(global_avg_pool(feats.sum(1)))
        weights = self.gate(self.select(z).reshape(n, m, c, 1, 1))
        return (feats * weights).sum(1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, stride={self.stride}, kernels={self.kernels}, "
            f"groups={self.groups}, hidden={self.hidden}"
        )
