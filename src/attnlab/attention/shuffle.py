"""Shuffle Attention (SA-Net)."""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_input, check_positive_int, global_avg_pool
from ._registry import register_attention


def shuffle_attention_groups(channels: int, max_groups: int = 64) -> int:
    """Default group count: the largest G <= ``max_groups`` splitting ``channels`` into groups of an even size.

    64 -> 32, 96 -> 48, 256 and wider multiples of 128 -> 64 (the paper's value).
    """
    check_positive_int("channels", channels)
    if channels % 2:
        raise ValueError(
            f"shuffle attention needs an even number of channels (each group is split into a channel half and "
            f"a spatial half), got channels={channels}; place it after a layer with an even channel count"
        )
    half = channels // 2
    return max(g for g in range(1, min(max_groups, half) + 1) if half % g == 0)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle of (N, C, H, W): channel ``g * C/groups + i`` moves to ``i * groups + g``."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


@register_attention("sa", paper="SA-Net: Shuffle Attention for Deep Convolutional Neural Networks", year=2021)
class ShuffleAttention(nn.Module):
    """Shuffle Attention (Zhang, Yang, "SA-Net: Shuffle Attention for Deep Convolutional Neural Networks",
    ICASSP 2021).

    The channels are split into ``groups`` groups, each into two halves of ``c = C / (2G)`` channels:

    - channel half: ``x0 * sigmoid(cweight * avgpool(x0) + cbias)``;
    - spatial half: ``x1 * sigmoid(sweight * GN(x1) + sbias)``, GroupNorm with one group per channel;

    then the halves are concatenated back and the C channels shuffled with 2 groups. ``cweight``, ``cbias``,
    ``sweight``, ``sbias`` and the GN affine are shared by all groups: ``6 * C / (2G)`` parameters.
    ``groups=None`` picks ``shuffle_attention_groups(channels)`` (the paper's 64 when it fits, e.g. 32 at
    64 channels); the resolved value is ``self.groups``.

    Official initialisation: ``cweight = sweight = 0``, ``cbias = sbias = 1``. With ``sweight = 0`` the GN
    affine parameters get an exactly zero gradient at the first step, and a real one after the first update.

    ``gate`` is one sigmoid over both halves' logits, (N, C, H, W) in the pre-shuffle channel order (group by
    group, channel half then spatial half).
    """

    def __init__(self, channels: int, *, groups: int | None = None):
        super().__init__()
        default_groups = shuffle_attention_groups(channels)
        if groups is None:
            groups = default_groups
        elif channels % (2 * check_positive_int("groups", groups)):
            raise ValueError(
                f"groups={groups} needs channels divisible by 2 * groups = {2 * groups} (each group is split into "
                f"a channel half and a spatial half), got channels={channels}; use groups={default_groups} "
                f"or groups=None"
            )
        self.channels = channels
        self.groups = groups
        half = channels // (2 * groups)
        self.cweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.norm = nn.GroupNorm(half, half)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        n, c, h, w = x.shape
        x_channel, x_spatial = x.reshape(n * self.groups, c // self.groups, h, w).chunk(2, dim=1)
        channel_logits = self.cweight * global_avg_pool(x_channel) + self.cbias
        spatial_logits = self.sweight * self.norm(x_spatial) + self.sbias
        logits = torch.cat((channel_logits.expand_as(x_channel), spatial_logits), dim=1).reshape(n, c, h, w)
        return channel_shuffle(x * self.gate(logits), 2)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, groups={self.groups}"
