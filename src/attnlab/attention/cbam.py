"""Convolutional Block Attention Module."""

from __future__ import annotations

import torch
from torch import nn

from ._common import apply_gate, check_input, check_odd_kernel, global_avg_pool, global_max_pool, reduced_channels
from ._registry import register_attention


@register_attention("cbam", paper="CBAM: Convolutional Block Attention Module", year=2018)
class CBAM(nn.Module):
    """CBAM (Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018).

    Channel attention then spatial attention, applied in sequence, with no residual inside the module:

    - channel: ``Mc = sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``, one shared MLP ``C -> C/r -> C``;
      output of ``gate``, (N, C, 1, 1);
    - spatial: ``Ms = sigmoid(BN(conv_kxk([max_c(x'); mean_c(x')])))`` on ``x' = x * Mc``; output of
      ``spatial_gate``, (N, 1, H, W). Channel order and the BN follow the official implementation.
    ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(self, channels: int, *, reduction: float = 16, spatial_kernel: int = 7, inplace: bool = False):
        super().__init__()
        check_odd_kernel("spatial_kernel", spatial_kernel)
        self.channels = channels
        self.reduction = reduction
        self.spatial_kernel = spatial_kernel
        self.inplace = inplace
        hidden = reduced_channels(channels, reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.gate = nn.Sigmoid()
        self.spatial_conv = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)
        self.spatial_bn = nn.BatchNorm2d(1, momentum=0.01)
        self.spatial_gate = nn.Sigmoid()

    def channel_excitation(self, avg: torch.Tensor, max: torch.Tensor) -> torch.Tensor:
        """``Mc`` (N, C, 1, 1) from the global average and max pools (N, C, 1, 1) of the input."""
        return self.gate(self.mlp(avg) + self.mlp(max))

    def spatial_excitation(self, pooled: torch.Tensor) -> torch.Tensor:
        """``Ms`` (N, 1, H, W) from the channel max and mean (N, 2, H, W) of the channel-gated input."""
        return self.spatial_gate(self.spatial_bn(self.spatial_conv(pooled)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        x = apply_gate(x, self.channel_excitation(global_avg_pool(x), global_max_pool(x)), self.inplace)
        spatial = self.spatial_excitation(torch.cat((x.amax(1, keepdim=True), x.mean(1, keepdim=True)), dim=1))
        # x is now this module's own tensor, so the spatial gate may always go in place
        return apply_gate(x, spatial, inplace=True)
