"""Non-local block."""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_input, reduced_channels
from ._registry import register_attention


@register_attention("nl", paper="Non-local Neural Networks", year=2018)
class NonLocal(nn.Module):
    """Non-local block, embedded Gaussian (Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018).

    Biased 1x1 convs ``theta, phi, g: C -> d`` and ``W_z: d -> C``; over the H*W positions,
    ``f = softmax_j(s * theta(x)_i . phi(x)_j)`` (the ``gate`` output, (N, HW, HW)) and
    ``y_i = sum_j f_ij g(x)_j``; the block is residual: ``z = x + BN(W_z y)``. BN's scale and shift start at zero
    (as the paper's initialisation), so the block starts as the identity; at that first step only, the gradient
    of every parameter before the BN is exactly zero.

    Defaults follow the paper: ``d = C // 2`` (``reduction=2``) and ``s = 1``. timm's ``NonLocalAttn`` (from the
    BAT code) uses ``d = C / 8`` rounded to a multiple of 8 and ``s = C ** -0.5``: ``reduction=8, scale=True`` here.
    Parameters: ``3*(C*d + d) + d*C + C + 2*C``. Cost grows with (H*W)^2.
    """

    def __init__(self, channels: int, *, reduction: float = 2, scale: bool = False):
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        self.hidden = reduced_channels(channels, reduction)
        self.scale = channels**-0.5 if scale else 1.0
        self.theta = nn.Conv2d(channels, self.hidden, 1)
        self.phi = nn.Conv2d(channels, self.hidden, 1)
        self.g = nn.Conv2d(channels, self.hidden, 1)
        self.out = nn.Conv2d(self.hidden, channels, 1)
        self.norm = nn.BatchNorm2d(channels)
        self.gate = nn.Softmax(dim=-1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal (fan-out) convs with zero biases and a zero BN, as the reference implementations."""
        for conv in (self.theta, self.phi, self.g, self.out):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        n, c, h, w = x.shape
        theta = self.theta(x).reshape(n, self.hidden, h * w).transpose(1, 2)  # (N, HW, d)
        phi = self.phi(x).reshape(n, self.hidden, h * w)  # (N, d, HW)
        g = self.g(x).reshape(n, self.hidden, h * w).transpose(1, 2)  # (N, HW, d)
        attn = self.gate(torch.bmm(theta, phi) * self.scale)  # (N, HW, HW)
        y = torch.bmm(attn, g).transpose(1, 2).reshape(n, self.hidden, h, w)
        return x + self.norm(self.out(y))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}, scale={self.scale != 1.0}"
