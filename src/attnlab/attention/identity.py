"""The identity: a model built with ``attention='none'`` has no attention."""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_input, check_positive_int
from ._registry import register_attention


@register_attention("none", paper="(identity, no attention)", year=0)
class NoAttention(nn.Module):
    """Returns its (N, C, H, W) input unchanged; has no parameters and no ``gate``."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = check_positive_int("channels", channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        return x
