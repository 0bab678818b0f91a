"""Spatial and Channel Synergistic Attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import apply_gate, check_input, check_odd_kernel, check_positive_int
from ._registry import register_attention


@register_attention(
    "scsa", paper="SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention", year=2024
)
class SpatialChannelSynergisticAttention(nn.Module):
    """SCSA (Si, Xu, Zhu, Li, Zhang, Xiong, "SCSA: Exploring the Synergistic Effects Between Spatial and Channel
    Attention", arXiv:2407.05128, 2024; Neurocomputing, 2025).

    Shareable multi-semantic spatial attention (SMSA), then progressive channel-wise self-attention (PCSA):

    - SMSA: average over W gives ``z_h`` (N, C, H), over H ``z_w`` (N, C, W); each is split into 4 channel
      groups, group i filtered by a depthwise 1D conv of kernel ``group_kernel_sizes[i]`` (3, 5, 7, 9; the
      convs are shared by the two directions), concatenated, GroupNorm (4 groups, one per direction) and
      sigmoid (``spatial_gate``): ``x' = x * a_h * a_w``;
    - PCSA: ``p = GN_1(avgpool_{w x w}(x'))`` (window ``window_size``, stride = window, GroupNorm with one
      group); ``q, k, v`` depthwise 1x1 convs of ``p``; per head ``softmax(q k^T / sqrt(d)) v`` with the
      (d x d) attention across the head's d = C / ``head_num`` channels; average over positions and sigmoid
      (``gate``, (N, C, 1, 1)): ``y = x' * sigmoid(...)``.

    Parameters: ``7 C`` (1D convs) ``+ 4 C`` (two GN) ``+ 2 C`` (GN_1) ``+ 3 C`` (q, k, v, no bias) = 16 C.
    Defaults as the official ResNet configs: ``head_num=1``, ``window_size=7``, sigmoid gates, no attention
    dropout. ``channels`` must be divisible by 4 and by ``head_num``.

    Where the feature map is smaller than the window along an axis, the window shrinks to the map's size there
    (one global window); the official average pooling fails on such maps. At sizes >= the window the pooling is
    the official one (floor mode: trailing rows or columns that do not fill a window are left out).
    ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(
        self,
        channels: int,
        *,
        head_num: int = 1,
        window_size: int = 7,
        group_kernel_sizes: tuple[int, int, int, int] = (3, 5, 7, 9),
        qkv_bias: bool = False,
        inplace: bool = False,
    ):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("head_num", head_num)
        check_positive_int("window_size", window_size)
        if channels % 4:
            raise ValueError(
                f"SCSA splits the channels into 4 groups (one per 1D kernel), got channels={channels}; "
                "place it after a layer whose channel count is a multiple of 4"
            )
        if channels % head_num:
            raise ValueError(
                f"head_num={head_num} must divide channels={channels} (each head attends over C / head_num "
                f"channels); use head_num=1"
            )
        if len(group_kernel_sizes) != 4:
            raise ValueError(f"group_kernel_sizes needs 4 odd kernel sizes, got {group_kernel_sizes!r}")
        for k in group_kernel_sizes:
            check_odd_kernel("group_kernel_sizes entries", k)
        self.head_num, self.window_size, self.inplace = head_num, window_size, inplace
        self.group_kernel_sizes = tuple(group_kernel_sizes)
        quarter = channels // 4
        self.dwconvs = nn.ModuleList(
            nn.Conv1d(quarter, quarter, k, padding=k // 2, groups=quarter) for k in group_kernel_sizes
        )
        self.norm_h = nn.GroupNorm(4, channels)
        self.norm_w = nn.GroupNorm(4, channels)
        self.spatial_gate = nn.Sigmoid()
        self.norm = nn.GroupNorm(1, channels)
        self.q = nn.Conv2d(channels, channels, 1, groups=channels, bias=qkv_bias)
        self.k = nn.Conv2d(channels, channels, 1, groups=channels, bias=qkv_bias)
        self.v = nn.Conv2d(channels, channels, 1, groups=channels, bias=qkv_bias)
        self.gate = nn.Sigmoid()

    def _spatial(self, z: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
        parts = z.chunk(4, dim=1)
        return self.spatial_gate(norm(torch.cat([conv(p) for conv, p in zip(self.dwconvs, parts)], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        n, c, h, w = x.shape
        a_h = self._spatial(x.mean(3), self.norm_h).unsqueeze(3)  # (N, C, H, 1)
        a_w = self._spatial(x.mean(2), self.norm_w).unsqueeze(2)  # (N, C, 1, W)
        # the first product is this module's own tensor, so the later ones may always go in place
        x = apply_gate(apply_gate(x, a_h, self.inplace), a_w, inplace=True)
        window = (min(self.window_size, h), min(self.window_size, w))
        pooled = self.norm(F.avg_pool2d(x, window, window))
        shape = (n, self.head_num, c // self.head_num, -1)
        q, k, v = (proj(pooled).reshape(shape) for proj in (self.q, self.k, self.v))
        scale = (c // self.head_num) ** -0.5
        attended = (q @ k.transpose(-2, -1) * scale).softmax(-1) @ v  # (N, heads, d, L)
        return apply_gate(x, self.gate(attended.mean(-1).reshape(n, c, 1, 1)), inplace=True)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, head_num={self.head_num}, window_size={self.window_size}"
