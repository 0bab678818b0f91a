"""Squeeze-and-Excitation and its single-FC 'effective' variant."""

from __future__ import annotations

import torch
from torch import nn

from ._common import ChannelGate, check_positive_int, create_act, pointwise, reduced_channels
from ._registry import register_attention


@register_attention("se", paper="Squeeze-and-Excitation Networks", year=2018)
class SqueezeExcite(ChannelGate):
    """Squeeze-and-Excitation (Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018).

    ``y = x * sigmoid(W2 act(W1 avgpool(x)))`` with ``W1: C -> C // reduction`` and ``W2: C // reduction -> C``
    as 1x1 convs. ``act='swish'`` gives the EfficientNet variant. The gate output is (N, C, 1, 1).
    The hidden width is ``C // reduction`` as the paper; timm's ``SEModule`` rounds ``C / 16`` to a multiple of 8
    (``rd_divisor=8``: 64 -> 8 there, 4 here), so timm's ``se`` equals ``rd_channels=C // 16``.
    ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: float = 16,
        bias: bool = True,
        act: str | nn.Module = "relu",
        inplace: bool = False,
    ):
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        self.hidden = reduced_channels(channels, reduction)
        self.fc1 = nn.Conv2d(channels, self.hidden, 1, bias=bias)
        self.act = create_act(act)
        self.fc2 = nn.Conv2d(self.hidden, channels, 1, bias=bias)
        self.gate = nn.Sigmoid()
        self.inplace = inplace

    def excite(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.gate(pointwise(self.fc2, self.act(pointwise(self.fc1, pooled))))


@register_attention("ese", paper="CenterMask: Real-Time Anchor-Free Instance Segmentation", year=2020)
class EffectiveSqueezeExcite(ChannelGate):
    """Effective SE (Lee, Park, "CenterMask: Real-Time Anchor-Free Instance Segmentation", CVPR 2020).

    SE with one biased 1x1 conv ``C -> C`` (no bottleneck, so no channel information is lost) and a hard
    sigmoid: ``y = x * hsigmoid(W avgpool(x))``. Parameters: C*C + C. The gate output is (N, C, 1, 1).
    ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(self, channels: int, *, gate: str = "hard_sigmoid", inplace: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.fc = nn.Conv2d(channels, channels, 1)
        self.gate = create_act(gate)
        self.inplace = inplace

    def excite(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.gate(pointwise(self.fc, pooled))
