"""Spatial Group-wise Enhance."""

from __future__ import annotations

import torch
from torch import nn

from ._common import apply_gate, check_input, check_positive_int, safe_sqrt
from ._registry import register_attention


@register_attention(
    "sge",
    paper="Spatial Group-wise Enhance: Improving Semantic Feature Learning in Convolutional Networks",
    year=2019,
)
class SpatialGroupEnhance(nn.Module):
    """SGE (Li, Hu, Yang, "Spatial Group-wise Enhance: Improving Semantic Feature Learning in Convolutional
    Networks", arXiv:1905.09646, 2019).

    The C channels are split into ``groups`` groups of ``C / G`` channels; in each group, with ``x_i`` the
    (C/G)-vector at position ``i`` and ``g = mean_i x_i`` the group's global descriptor:

    - similarity ``c_i = g . x_i``;
    - normalisation over the m = H*W positions: ``c_hat_i = (c_i - mu_c) / (sigma_c + eps)``,
      ``mu_c = mean_i c_i``, ``sigma_c^2 = mean_i (c_i - mu_c)^2``;
    - ``a_i = gamma * c_hat_i + beta`` (one gamma, beta per group) and ``y_i = x_i * sigmoid(a_i)``.

    Parameters: 2G (``weight`` = gamma and ``bias`` = beta, stored (1, G, 1, 1) as in the official code, so its
    weights load), initialised as the official code: gamma = 0, beta = 1. The paper and the official code use
    G = 64 (the default here); ``channels`` must be divisible by ``groups``.

    Paper vs official code: the code divides by the unbiased standard deviation (``torch.std``, divisor m - 1),
    which is NaN for a single position; this module follows the paper's divisor m (a 1x1 map normalises to 0,
    so ``y = x * sigmoid(beta)``). For m positions the two differ by the factor ``sqrt(m / (m - 1))`` in
    ``c_hat``. The gate output is (N, G, H, W); ``inplace=True`` scales the input in place at inference
    (see :func:`apply_gate`).
    """

    def __init__(self, channels: int, *, groups: int = 64, eps: float = 1e-5, inplace: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("groups", groups)
        if channels % groups:
            divisors = [g for g in range(1, min(groups, channels) + 1) if channels % g == 0]
            raise ValueError(
                f"SGE splits the channels into groups: channels={channels} is not divisible by groups={groups}; "
                f"use a divisor of {channels} such as groups={divisors[-1]}"
            )
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.groups, self.eps, self.inplace = groups, eps, inplace
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.ones(1, groups, 1, 1))
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        grouped = x.unflatten(1, (self.groups, -1))  # (N, G, C/G, H, W), a view of x
        similarity = (grouped * grouped.mean((3, 4), keepdim=True)).sum(2)  # (N, G, H, W)
        centred = similarity - similarity.mean((2, 3), keepdim=True)
        std = safe_sqrt(centred.square().mean((2, 3), keepdim=True))
        gate = self.gate(self.weight * (centred / (std + self.eps)) + self.bias)
        return apply_gate(grouped, gate.unsqueeze(2), self.inplace).flatten(1, 2)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, groups={self.groups}"
