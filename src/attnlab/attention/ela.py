"""Efficient Local Attention (ELA)."""

from __future__ import annotations

import torch
from torch import nn

from ._common import apply_gate, check_input, check_odd_kernel, check_positive_int, create_act
from ._registry import register_attention


@register_attention("ela", paper="ELA: Efficient Local Attention for Deep Convolutional Neural Networks", year=2024)
class EfficientLocalAttention(nn.Module):
    """ELA (Xu, Wan, "ELA: Efficient Local Attention for Deep Convolutional Neural Networks", arXiv:2403.01123,
    2024).

    Coordinate attention without channel reduction: average-pool along W and along H into the strips
    ``z_h`` (N, C, H) and ``z_w`` (N, C, W), run each through a depthwise 1D conv of kernel ``k`` (no bias) and a
    GroupNorm, and gate with both: ``y = x * sigmoid(GN(conv1d(z_h))) * sigmoid(GN(conv1d(z_w)))``. One ``gate``
    Sigmoid is called twice, on the (N, C, H, 1) and the (N, C, 1, W) maps.

    The default is the paper's ELA-B: ``kernel_size=7``, ``norm_groups=16``, one conv and one GN shared by both
    directions (``shared=True``), no activation before the sigmoid; parameters ``k*C + 2*C``. ELA-T is
    ``kernel_size=5, norm_groups=32``. timm's ``EfficientLocalAttn`` departs from the paper: a separate conv and
    norm per direction, GroupNorm with one group, and SiLU before the sigmoid — ``shared=False, norm_groups=1,
    act='swish'`` here (parameters ``2*k*C + 4*C``); the parity test uses that configuration.

    ``norm_groups`` must divide ``channels`` (ValueError at construction). ``inplace=True`` scales the input in
    place at inference (see :func:`apply_gate`).
    """

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int = 7,
        norm_groups: int = 16,
        shared: bool = True,
        act: str | nn.Module = "identity",
        inplace: bool = False,
    ):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.kernel_size = check_odd_kernel("kernel_size", kernel_size)
        self.norm_groups = check_positive_int("norm_groups", norm_groups)
        if channels % norm_groups:
            raise ValueError(
                f"norm_groups={norm_groups} must divide channels={channels}; pass a divisor of {channels} "
                "(norm_groups=1 always fits)"
            )
        self.shared = shared
        self.inplace = inplace
        k = kernel_size
        self.conv_h = nn.Conv1d(channels, channels, k, padding=k // 2, groups=channels, bias=False)
        self.norm_h = nn.GroupNorm(norm_groups, channels)
        self.conv_w = None if shared else nn.Conv1d(channels, channels, k, padding=k // 2, groups=channels, bias=False)
        self.norm_w = None if shared else nn.GroupNorm(norm_groups, channels)
        self.act = create_act(act)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        n, c, h, w = x.shape
        conv_w = self.conv_h if self.conv_w is None else self.conv_w
        norm_w = self.norm_h if self.norm_w is None else self.norm_w
        a_h = self.gate(self.act(self.norm_h(self.conv_h(x.mean(3))))).reshape(n, c, h, 1)
        a_w = self.gate(self.act(norm_w(conv_w(x.mean(2))))).reshape(n, c, 1, w)
        # the first product is this module's own tensor, so the second may always go in place
        return apply_gate(apply_gate(x, a_h, self.inplace), a_w, inplace=True)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, kernel_size={self.kernel_size}, norm_groups={self.norm_groups}, "
            f"shared={self.shared}"
        )
