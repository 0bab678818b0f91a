"""Efficient Channel Attention."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._common import ChannelGate, check_odd_kernel, check_positive_int, global_avg_pool
from ._registry import register_attention


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """ECA's adaptive kernel size psi(C) = |log2(C)/gamma + b/gamma|_odd (C=64 -> 3, 256 -> 5, 2048 -> 7)."""
    check_positive_int("channels", channels)
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


@register_attention(
    "eca", paper="ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", year=2020
)
class EfficientChannelAttention(ChannelGate):
    """ECA (Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", CVPR 2020).

    Global average pooling, then a bias-free 1D convolution of kernel ``k`` across the channel axis (local
    cross-channel interaction without dimensionality reduction), then a sigmoid:
    ``y = x * sigmoid(conv1d_k(avgpool(x)))``. ``k_size=None`` picks ``k = eca_kernel_size(channels, gamma, b)``;
    the resolved value is ``self.k_size``. Parameters: k. The gate output is (N, C, 1, 1). ``inplace=True`` scales
    the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(
        self, channels: int, *, k_size: int | None = None, gamma: float = 2, b: float = 1, inplace: bool = False
    ):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        if k_size is None:
            if gamma <= 0:
                raise ValueError(f"gamma must be > 0, got {gamma!r}")
            k_size = eca_kernel_size(channels, gamma, b)
        else:
            check_odd_kernel("k_size", k_size, why=" (or None for adaptive)")
        self.k_size = k_size
        self.conv = nn.Conv1d(1, 1, k_size, padding=(k_size - 1) // 2, bias=False)
        self.gate = nn.Sigmoid()
        self.inplace = inplace

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        y = self.conv(global_avg_pool(x).reshape(n, 1, c))
        return self.gate(y.reshape(n, c, 1, 1))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, k_size={self.k_size}"
