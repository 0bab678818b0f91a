"""Style-based Recalibration Module."""

from __future__ import annotations

import torch
from torch import nn

from ._common import ChannelGate, check_positive_int, global_avg_pool
from ._registry import register_attention


@register_attention("srm", paper="SRM: A Style-based Recalibration Module for Convolutional Neural Networks", year=2019)
class StyleRecalibration(ChannelGate):
    """SRM (Lee, Kim, Nam, "SRM: A Style-based Recalibration Module for Convolutional Neural Networks", ICCV 2019).

    - style pooling: per-channel mean ``mu`` and std ``sigma = sqrt(mean((x - mu)^2) + eps)``;
    - style integration: a channel-wise FC ``z_c = w_c0 * mu_c + w_c1 * sigma_c`` (``cfc``, C x 2, no bias), then
      BN and a sigmoid: ``y = x * sigmoid(BN(z))``.

    The variance is the biased one of the paper's formula, so sigma is sqrt(eps) rather than NaN on a 1x1 map
    (the official code's unbiased ``var`` divides by HW - 1 = 0 there). ``cfc`` starts at zero as in the official
    code. Parameters: 2C (cfc) + 2C (BN). The gate output is (N, C, 1, 1).
    ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(self, channels: int, *, eps: float = 1e-5, inplace: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.inplace = inplace
        if not eps > 0:
            raise ValueError(f"eps must be > 0 to keep the std differentiable on constant maps, got {eps!r}")
        self.eps = eps
        self.cfc = nn.Parameter(torch.zeros(channels, 2))
        self.bn = nn.BatchNorm2d(channels)
        self.gate = nn.Sigmoid()

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, 2, 1): the spatial mean and the biased variance of each channel."""
        mean = global_avg_pool(x)
        return torch.cat((mean, global_avg_pool((x - mean).square())), dim=2)

    def excite(self, pooled: torch.Tensor) -> torch.Tensor:
        mean, std = pooled[:, :, 0:1], (pooled[:, :, 1:2] + self.eps).sqrt()
        weights = self.cfc.reshape(1, self.channels, 2, 1)
        z = mean * weights[:, :, 0:1] + std * weights[:, :, 1:2]
        return self.gate(self.bn(z))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, eps={self.eps}"
