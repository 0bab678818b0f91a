"""Convolutional Block Attention Module, and timm's light variant."""

from __future__ import annotations

import torch
from torch import nn

from ._common import (
    apply_gate,
    check_input,
    check_odd_kernel,
    global_avg_pool,
    global_max_pool,
    has_forward_hooks,
    pointwise,
    records_graph,
    reduced_channels,
)
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

    Parameters: ``2*C*(C/r) + (C/r + C if bias) + k*k + 2``. The MLP has biases (``bias=True``) as the official
    code's ``nn.Linear`` layers; timm's ``CbamModule`` leaves them out (``mlp_bias=False``; ``bias=False`` here),
    puts the mean before the max in the spatial pooling (a permutation of the two input channels of the spatial
    conv) and keeps BN's default momentum (the running statistics move faster; outputs are the same).
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: float = 16,
        spatial_kernel: int = 7,
        bias: bool = True,
        inplace: bool = False,
    ):
        super().__init__()
        check_odd_kernel("spatial_kernel", spatial_kernel)
        self.channels = channels
        self.reduction = reduction
        self.spatial_kernel = spatial_kernel
        self.inplace = inplace
        hidden = reduced_channels(channels, reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=bias), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1, bias=bias)
        )
        self.gate = nn.Sigmoid()
        self.spatial_conv = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)
        self.spatial_bn = nn.BatchNorm2d(1, momentum=0.01)
        self.spatial_gate = nn.Sigmoid()

    def shared_mlp(self, pooled: torch.Tensor) -> torch.Tensor:
        """The channel MLP on (N, C, 1, 1) pooled vectors (``self.mlp``, its 1x1 convs as matrix products)."""
        if has_forward_hooks(self.mlp):
            return self.mlp(pooled)
        first, act, second = self.mlp
        return pointwise(second, act(pointwise(first, pooled)))

    def channel_excitation(self, avg: torch.Tensor, max: torch.Tensor) -> torch.Tensor:
        """``Mc`` (N, C, 1, 1) from the global average and max pools (N, C, 1, 1) of the input."""
        # one MLP pass over both pools, then MLP(avg) + MLP(max) (a reshape, not a split: exports with a free batch)
        return self.gate(self.shared_mlp(torch.cat((avg, max))).unflatten(0, (2, -1)).sum(0))

    def spatial_excitation(self, top: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """``Ms`` (N, 1, H, W) from the channel max and mean (N, 1, H, W) of the channel-gated input."""
        pooled = torch.cat((top, mean), dim=1)
        if records_graph() and pooled.device.type == "cpu" and not torch.compiler.is_compiling():
            # eager oneDNN's backward of this 2 -> 1 channel conv runs 1.8-2.7x faster in channels_last at 20-40 px
            # (the compiler chooses conv layouts itself)
            pooled = pooled.contiguous(memory_format=torch.channels_last)
        return self.spatial_gate(self.spatial_bn(self.spatial_conv(pooled)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        x = apply_gate(x, self.channel_excitation(global_avg_pool(x), global_max_pool(x)), self.inplace)
        spatial = self.spatial_excitation(x.amax(1, keepdim=True), x.mean(1, keepdim=True))
        # x is now this module's own tensor, so the spatial gate may always go in place
        return apply_gate(x, spatial, inplace=True)


@register_attention("lcbam", paper="CBAM: Convolutional Block Attention Module", year=2018)
class LightCBAM(CBAM):
    """Light CBAM: timm's ``LightCbamModule``, an experiment of timm built on CBAM (Woo, Park, Lee, Kweon, "CBAM:
    Convolutional Block Attention Module", ECCV 2018); the paper has no such variant. Each of CBAM's two poolings
    is averaged before it is transformed, halving the work of both attentions:

    - channel: ``Mc = sigmoid(MLP((avgpool(x) + maxpool(x)) / 2))``, one MLP ``C -> C/r -> C`` with ReLU, output
      of ``gate``, (N, C, 1, 1);
    - spatial: ``Ms = sigmoid(BN(conv_kxk((mean_c(x') + max_c(x')) / 2)))`` on ``x' = x * Mc``, a 1 -> 1 conv
      without bias, output of ``spatial_gate``, (N, 1, H, W); ``y = x' * Ms``.

    Parameters: ``2*C*(C/r) + (C/r + C if bias) + k*k + 2``. ``bias=True`` as attnlab's CBAM; timm's default is
    ``mlp_bias=False`` (``bias=False`` here). ``inplace=True`` scales the input in place at inference (see
    :func:`apply_gate`).
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(channels, **kwargs)
        # the pooled maps are averaged into one, so the spatial conv takes 1 channel; timm's default BN momentum
        self.spatial_conv = nn.Conv2d(1, 1, self.spatial_kernel, padding=self.spatial_kernel // 2, bias=False)
        self.spatial_bn = nn.BatchNorm2d(1)

    def channel_excitation(self, avg: torch.Tensor, max: torch.Tensor) -> torch.Tensor:
        return self.gate(self.shared_mlp(0.5 * avg + 0.5 * max))

    def spatial_excitation(self, top: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        return self.spatial_gate(self.spatial_bn(self.spatial_conv(0.5 * mean + 0.5 * top)))
