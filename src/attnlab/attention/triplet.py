"""Triplet Attention: three rotated Z-pool + conv branches."""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_input, check_odd_kernel, check_positive_int
from ._registry import register_attention


def z_pool(x: torch.Tensor) -> torch.Tensor:
    """Z-pool: (N, D, A, B) -> (N, 2, A, B), the max and the mean over dim 1, in that order."""
    return torch.cat((x.amax(1, keepdim=True), x.mean(1, keepdim=True)), dim=1)


class ZPoolConv(nn.Module):
    """One triplet branch before its sigmoid: Z-pool, bias-free kxk conv 2 -> 1, BN. (N, D, A, B) -> (N, 1, A, B)."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, momentum=0.01)  # momentum of the official code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(z_pool(x)))


@register_attention("triplet", paper="Rotate to Attend: Convolutional Triplet Attention Module", year=2021)
class TripletAttention(nn.Module):
    """Triplet Attention (Misra, Nalamada, Arasanipalai, Hou, "Rotate to Attend: Convolutional Triplet Attention
    Module", WACV 2021).

    Three branches, each ``x' * sigmoid(BN(conv_kxk(z_pool(x'))))`` on a rotated view ``x'`` of the input:

    - ``cw``: C and H swapped, (N, H, C, W): pools over H, so C interacts with W;
    - ``hc``: C and W swapped, (N, W, H, C): pools over W, so H interacts with C;
    - ``hw``: the input itself: pools over C, plain spatial attention (left out with ``no_spatial=True``).

    Outputs are rotated back and averaged (1/3, or 1/2 without the spatial branch). Parameters:
    ``2 k^2 + 2`` per branch (conv + BN affine). One ``gate`` sigmoid serves every branch, so a hook on it sees
    (N, 1, C, W), (N, 1, H, C) and (N, 1, H, W), in that order.
    """

    def __init__(self, channels: int, *, kernel_size: int = 7, no_spatial: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_odd_kernel("kernel_size", kernel_size)
        self.kernel_size = kernel_size
        self.no_spatial = no_spatial
        self.cw = ZPoolConv(kernel_size)
        self.hc = ZPoolConv(kernel_size)
        self.hw = None if no_spatial else ZPoolConv(kernel_size)
        self.gate = nn.Sigmoid()

    def _attend(self, branch: ZPoolConv, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(branch(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        # Each rotation swaps C with one spatial axis, so applying it again rotates back.
        outs = [
            self._attend(self.cw, x.transpose(1, 2)).transpose(1, 2),
            self._attend(self.hc, x.transpose(1, 3)).transpose(1, 3),
        ]
        if self.hw is not None:
            outs.append(self._attend(self.hw, x))
        return sum(outs) / len(outs)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, no_spatial={self.no_spatial}"
