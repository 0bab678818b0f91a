"""SimAM: parameter-free attention weights from a neuron energy function."""

from __future__ import annotations

import torch
from torch import nn

from ._common import apply_gate, check_input, check_positive_int
from ._registry import register_attention


@register_attention(
    "simam", paper="SimAM: A Simple, Parameter-Free Attention Module for Convolutional Neural Networks", year=2021
)
class SimAM(nn.Module):
    """SimAM (Yang, Zhang, Li, Xie, "SimAM: A Simple, Parameter-Free Attention Module for Convolutional Neural
    Networks", ICML 2021).

    Every neuron ``t`` is weighted by the inverse of its minimal energy within its channel,
    ``1/e_t = (t - mu)^2 / (4 (var + e_lambda)) + 1/2`` with ``mu`` the channel's spatial mean and
    ``var = sum((x - mu)^2) / n``, ``n = H*W - 1`` (the other neurons of the channel, as in the official code);
    ``y = x * sigmoid(1/e)``. No parameters.

    With a single position (H = W = 1) ``n`` would be 0 and ``var`` 0/0; ``n`` is clamped to >= 1 there, so the
    lone neuron gets ``1/e = 1/2`` and ``y = x * sigmoid(1/2)``. The gate output is (N, C, H, W).
    ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(self, channels: int, *, e_lambda: float = 1e-4, inplace: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.inplace = inplace
        if not e_lambda > 0:
            raise ValueError(f"e_lambda must be > 0 (it keeps a constant channel's energy finite), got {e_lambda!r}")
        self.e_lambda = e_lambda
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        n = max(x.shape[2] * x.shape[3] - 1, 1)
        sq_dev = (x - x.mean((2, 3), keepdim=True)).square()
        inv_energy = sq_dev / (4 * (sq_dev.sum((2, 3), keepdim=True) / n + self.e_lambda)) + 0.5
        return apply_gate(x, self.gate(inv_energy), self.inplace)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, e_lambda={self.e_lambda}"
