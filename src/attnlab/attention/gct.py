"""Gated Channel Transformation."""

from __future__ import annotations

import torch
from torch import nn

from ._common import ChannelGate, check_positive_int
from ._registry import register_attention


class OnePlusTanh(nn.Module):
    """``1 + tanh(x)``: GCT's gate, which is 1 (identity) at x = 0 and stays in (0, 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1 + torch.tanh(x)


@register_attention("gct", paper="Gated Channel Transformation for Visual Recognition", year=2020)
class GatedChannelTransform(ChannelGate):
    """GCT (Yang, Zhu, Wu, Yang, "Gated Channel Transformation for Visual Recognition", CVPR 2020).

    - global context embedding ``s_c = alpha_c * sqrt(sum_hw x_c^2 + eps)`` (``mode='l2'``; ``'l1'``:
      ``alpha_c * sum_hw |x_c|``);
    - channel normalisation ``s_hat_c = s_c / sqrt(mean_c s_c^2 + eps)`` (``'l1'``: ``s_c / (mean_c |s_c| + eps)``);
    - gating ``y = x * (1 + tanh(gamma_c * s_hat_c + beta_c))``, the output of ``gate``, (N, C, 1, 1).

    Parameters: 3C (alpha, gamma, beta, each stored (1, C, 1, 1) as in the official code, so its weights load).
    Initialised as the official code: alpha = 1, gamma = beta = 0, so a fresh GCT is the identity.
    ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(self, channels: int, *, mode: str = "l2", eps: float = 1e-5, inplace: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.inplace = inplace
        if mode not in ("l2", "l1"):
            raise ValueError(f"mode must be 'l2' or 'l1', got {mode!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.mode, self.eps = mode, eps
        self.alpha = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gate = OnePlusTanh()

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, 1, 1) ``sum_hw x^2`` ('l2') or ``sum_hw |x|`` ('l1')."""
        return (x.square() if self.mode == "l2" else x.abs()).sum((2, 3), keepdim=True)

    def excite(self, pooled: torch.Tensor) -> torch.Tensor:
        if self.mode == "l2":
            embedding = self.alpha * (pooled + self.eps).sqrt()
            norm = (embedding.square().mean(1, keepdim=True) + self.eps).sqrt()
        else:
            embedding = self.alpha * pooled
            norm = embedding.abs().mean(1, keepdim=True) + self.eps
        return self.gate(self.gamma * embedding / norm + self.beta)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, mode={self.mode!r}, eps={self.eps}"
