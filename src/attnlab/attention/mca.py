"""Multidimensional Collaborative Attention."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._common import check_input, check_odd_kernel, check_positive_int, global_avg_pool, spatial_std
from ._registry import register_attention


def mca_kernel_size(channels: int, gamma: float = 1, lambd: float = 1.5) -> int:
    """MCA's channel-branch kernel ``k = |(log2(C) - gamma) / lambd|`` rounded, made odd by subtracting 1 when
    even (C=64 -> 3, 128 -> 3, 256 -> 5, 2048 -> 7), and at least 1 (the official formula gives -1 at C = 2)."""
    check_positive_int("channels", channels)
    t = round(abs((math.log2(channels) - gamma) / lambd))
    return max(t if t % 2 else t - 1, 1)


class MCABranch(nn.Module):
    """One MCA gate on an (N, D, A, B) view: squeeze over (A, B) by average and standard deviation, mix them,
    excite across D with a bias-free 1D conv of kernel ``k``; returns ``x * sigmoid(...)``."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.weight = nn.Parameter(torch.rand(2))  # alpha, beta before their sigmoid; the official init

    def forward(self, x: torch.Tensor, gate: nn.Module) -> torch.Tensor:
        n, d = x.shape[:2]
        avg, std = global_avg_pool(x), spatial_std(x)
        alpha, beta = torch.sigmoid(self.weight).unbind()
        mixed = 0.5 * (avg + std) + alpha * avg + beta * std  # (N, D, 1, 1)
        return x * gate(self.conv(mixed.reshape(n, 1, d)).reshape(n, d, 1, 1))


@register_attention(
    "mca",
    paper="MCA: Multidimensional collaborative attention in deep convolutional neural networks for image recognition",
    year=2023,
)
class MultidimensionalCollaborativeAttention(nn.Module):
    """MCA (Yu, Zhang, Cheng, Song, Tang, "MCA: Multidimensional collaborative attention in deep convolutional
    neural networks for image recognition", Engineering Applications of Artificial Intelligence, 2023).

    Three branches, each an :class:`MCABranch` gate on a view of the input, rotated back and averaged:

    - ``h``: C and H swapped, (N, H, C, W): squeezes over C and W, excites along H (kernel 3);
    - ``w``: C and W swapped, (N, W, H, C): squeezes over H and C, excites along W (kernel 3);
    - ``c``: the input itself, squeezes over space, excites along C with the adaptive kernel
      :func:`mca_kernel_size` (``kernel_size`` overrides it); left out with ``no_spatial=True`` (the official
      switch's name, though it drops this channel branch).

    Squeeze: ``0.5 (avg + std) + sigmoid(a) avg + sigmoid(b) std``, ``a``, ``b`` learnt per branch (official
    init: uniform in [0, 1)). Parameters: ``(3 + 2) + (3 + 2) + (k + 2)``, 15 at C = 64. One ``gate`` sigmoid
    serves every branch, so a hook on it sees (N, H, 1, 1), (N, W, 1, 1) and (N, C, 1, 1), in that order.

    Paper vs official code: the code's standard deviation pooling is ``torch.std`` (unbiased, divisor n - 1),
    NaN for a single position; this module uses the population standard deviation (divisor n) of the paper's
    std-pooling formula, 0 there.
    """

    def __init__(self, channels: int, *, kernel_size: int | None = None, no_spatial: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        if kernel_size is None:
            kernel_size = mca_kernel_size(channels)
        else:
            check_odd_kernel("kernel_size", kernel_size, why=" (or None for adaptive)")
        self.kernel_size, self.no_spatial = kernel_size, no_spatial
        self.h = MCABranch(3)
        self.w = MCABranch(3)
        self.c = None if no_spatial else MCABranch(kernel_size)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        # Each rotation swaps C with one spatial axis, so applying it again rotates back.
        outs = [
            self.h(x.transpose(1, 2), self.gate).transpose(1, 2),
            self.w(x.transpose(1, 3), self.gate).transpose(1, 3),
        ]
        if self.c is not None:
            outs.append(self.c(x, self.gate))
        return sum(outs) / len(outs)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, no_spatial={self.no_spatial}"
