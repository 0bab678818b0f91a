"""Pyramid Split Attention (EPSANet)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._common import check_input, check_odd_kernel, check_positive_int, global_avg_pool, reduced_channels
from ._registry import register_attention


@register_attention(
    "psa",
    kind="conv",
    paper="EPSANet: An Efficient Pyramid Squeeze Attention Block on Convolutional Neural Network",
    year=2021,
)
class PyramidSplitAttention(nn.Module):
    """PSA module (Zhang et al., "EPSANet: An Efficient Pyramid Squeeze Attention Block on Convolutional Neural
    Network", ACCV 2022 / arXiv 2021). Replaces the 3x3 conv of a bottleneck.

    S parallel convs (kernels 3, 5, 7, 9 with groups 1, 4, 8, 16 by default) each map the full input to
    ``out_channels / S`` channels with the block's stride. One SE weight module (biased 1x1 convs, reduction 16,
    sigmoid) is shared by the branches; a softmax across the S branches (the ``gate`` output, shape
    (N, S, out/S, 1, 1)) re-weights them, and the weighted branches are concatenated last branch first, as the
    reference implementation does. (N, in, H, W) -> (N, out, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        kernels: Sequence[int] = (3, 5, 7, 9),
        groups: Sequence[int] = (1, 4, 8, 16),
        reduction: float = 16,
    ):
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.stride = check_positive_int("stride", stride)
        self.kernels, self.groups, self.reduction = tuple(kernels), tuple(groups), reduction
        if len(self.kernels) != len(self.groups) or not self.kernels:
            raise ValueError(f"kernels and groups need the same non-zero length, got {self.kernels} and {self.groups}")
        num_branches = len(self.kernels)
        if out_channels % num_branches:
            raise ValueError(f"out_channels={out_channels} must be divisible by the {num_branches} branches")
        split = out_channels // num_branches
        for k, g in zip(self.kernels, self.groups):
            check_odd_kernel(f"each of the PSA kernels {self.kernels}", k)
            if in_channels % g or split % g:
                raise ValueError(
                    f"groups={g} must divide in_channels={in_channels} and out_channels/{num_branches}={split}; "
                    f"pick channels that are multiples of {g * num_branches} or smaller groups"
                )
        self.split = split
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, split, k, stride=stride, padding=k // 2, groups=g, bias=False)
            for k, g in zip(self.kernels, self.groups)
        )
        hidden = reduced_channels(split, reduction)
        self.se = nn.Sequential(
            nn.Conv2d(split, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, split, 1), nn.Sigmoid()
        )
        self.gate = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels)
        feats = torch.stack([branch(x) for branch in self.branches], dim=1)  # (N, S, out/S, H', W')
        n, s, c, h, w = feats.shape
        # The shared SE runs once on all branches folded into the batch: same maths as S separate calls.
        weights = self.se(global_avg_pool(feats.reshape(n * s, c, h, w))).reshape(n, s, c, 1, 1)
        return (feats * self.gate(weights)).flip(1).reshape(n, s * c, h, w)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, stride={self.stride}, kernels={self.kernels}, "
            f"groups={self.groups}, reduction={self.reduction}"
        )
