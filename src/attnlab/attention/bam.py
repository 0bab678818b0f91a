"""Bottleneck Attention Module."""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_input, check_positive_int, reduced_channels
from ._registry import register_attention


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> nn.Sequential:
    """Biased kxk conv (same padding), BN, ReLU."""
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@register_attention("bam", paper="BAM: Bottleneck Attention Module", year=2018)
class BottleneckAttention(nn.Module):
    """BAM (Park, Woo, Lee, Kweon, "BAM: Bottleneck Attention Module", BMVC 2018).

    Two parallel branches on the input:

    - channel ``Mc``: global average pool, MLP ``Linear C -> C/r, BN1d, ReLU, Linear C/r -> C``, (N, C, 1, 1);
    - spatial ``Ms``: 1x1 conv C -> C/r, two 3x3 convs C/r -> C/r with dilation ``d``, each conv followed by
      BN + ReLU, then a 1x1 conv C/r -> 1, (N, 1, H, W).

    ``M = sigmoid(Mc + Ms)`` (N, C, H, W), the ``gate`` output, and ``y = x + x * M = x * (1 + M)``, the paper's
    residual form. The branches are combined by the paper's sum (its best variant); the official code multiplies
    them instead. BN placement and biases follow the official code.
    """

    def __init__(self, channels: int, *, reduction: float = 16, dilation: int = 4):
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        self.hidden = reduced_channels(channels, reduction)
        self.dilation = check_positive_int("dilation", dilation)
        self.channel_mlp = nn.Sequential(
            nn.Linear(channels, self.hidden),
            nn.BatchNorm1d(self.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(self.hidden, channels),
        )
        self.spatial_convs = nn.Sequential(
            conv_bn_relu(channels, self.hidden, 1),
            conv_bn_relu(self.hidden, self.hidden, 3, dilation),
            conv_bn_relu(self.hidden, self.hidden, 3, dilation),
            nn.Conv2d(self.hidden, 1, 1),
        )
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        n, c = x.shape[:2]
        channel_logits = self.channel_mlp(x.mean((2, 3))).reshape(n, c, 1, 1)
        return x * (1 + self.gate(channel_logits + self.spatial_convs(x)))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}, dilation={self.dilation}"
