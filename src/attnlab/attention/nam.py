"""Normalization-based Attention Module (channel sub-module)."""

from __future__ import annotations

import torch
from torch import nn

from ._common import apply_gate, check_input, check_positive_int
from ._registry import register_attention


@register_attention("nam", paper="NAM: Normalization-based Attention Module", year=2021)
class NormalizationAttention(nn.Module):
    """NAM, channel sub-module (Liu, Shao, Teng, Hoffmann, "NAM: Normalization-based Attention
    Module", NeurIPS 2021 Workshop on ImageNet: Past, Present, and Future).

    ``B = BN(x)`` with scale factors ``gamma``; each channel is weighted by its share of the total scale,
    ``w_c = |gamma_c| / sum_j |gamma_j|``, and ``y = x * sigmoid(w_c * B_c)``. The BN's variance scale says how
    much a channel varies, so the weighting suppresses the less salient channels. Parameters: 2C (the BN
    affine). The gate output is (N, C, H, W); ``inplace=True`` scales the input in place at inference
    (see :func:`apply_gate`).

    Paper vs official code, following the code: the paper writes ``w_c = gamma_c / sum_j gamma_j``; the official
    code takes absolute values (so the weights stay a well-defined share when some gamma turn negative) and reads
    ``gamma`` through ``.data``, so no gradient flows through the weights ``w`` (gamma still learns through
    the BN). The paper's spatial (pixel-normalisation) sub-module is not in the official code and not here; the
    paper's L1 penalty on the scale factors belongs in the training loss.
    """

    def __init__(self, channels: int, *, inplace: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.inplace = inplace
        self.bn = nn.BatchNorm2d(channels)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        scale = self.bn.weight.detach().abs()
        weights = (scale / scale.sum()).reshape(1, -1, 1, 1)
        return apply_gate(x, self.gate(weights * self.bn(x)), self.inplace)
