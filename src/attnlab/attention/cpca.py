"""Channel Prior Convolutional Attention."""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_input, check_positive_int, global_avg_pool, global_max_pool, reduced_channels
from ._registry import register_attention

STRIP_KERNELS = (7, 11, 21)


@register_attention("cpca", paper="Channel prior convolutional attention for medical image segmentation", year=2023)
class ChannelPriorConvAttention(nn.Module):
    """CPCA (Huang, Chen, Zou, Lu, Chen, "Channel prior convolutional attention for medical image segmentation",
    arXiv:2306.05196, 2023; Computers in Biology and Medicine, 2024).

    - channel prior: ``F_c = CA(F) * F`` with ``CA(F) = sigmoid(MLP(avgpool(F))) + sigmoid(MLP(maxpool(F)))``,
      one shared MLP ``C -> C/r -> C`` (biased 1x1 convs, ReLU), r = 4; ``gate`` is the sigmoid, called on the
      average path then on the max path, each (N, C, 1, 1);
    - spatial: ``D = dw5x5(F_c)``, ``A = conv1x1(D + sum_k dw_kx1(dw_1xk(D)))`` for k in 7, 11, 21 (depthwise,
      biased), an (N, C, H, W) map used as it is (no activation);
    - ``y = A * F_c``.

    Parameters: ``2 C h + h + C`` (MLP, ``h = C // r``) ``+ 110 C`` (depthwise: 26 C for 5x5, 2 (k + 1) C per
    strip pair) ``+ C^2 + C`` (1x1 conv); 13,328 at C = 64.

    Paper vs official code, following the code: the paper writes the channel attention as in CBAM, a sigmoid of
    the summed MLP outputs; the official code applies a sigmoid to each path and adds them (values in (0, 2)).
    The official block also wraps the attention in a 1x1 conv + GELU before and the same 1x1 conv after, and
    uses that one conv for the spatial map too; those projections belong to the CPCANet block, so this module
    has its own 1x1 conv and leaves them out.
    """

    def __init__(self, channels: int, *, reduction: float = 4):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.reduction = reduction
        hidden = reduced_channels(channels, reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()
        self.dw5 = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.strips = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, channels, (1, k), padding=(0, k // 2), groups=channels),
                nn.Conv2d(channels, channels, (k, 1), padding=(k // 2, 0), groups=channels),
            )
            for k in STRIP_KERNELS
        )
        self.mix = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        avg = self.gate(self.fc2(self.act(self.fc1(global_avg_pool(x)))))
        peak = self.gate(self.fc2(self.act(self.fc1(global_max_pool(x)))))
        prior = x * (avg + peak)
        base = self.dw5(prior)
        spatial = base
        for strip in self.strips:
            spatial = spatial + strip(base)
        return self.mix(spatial) * prior

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"
