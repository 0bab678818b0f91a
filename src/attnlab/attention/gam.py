"""Global Attention Mechanism."""

from __future__ import annotations

import torch
from torch import nn

from ._common import apply_gate, check_input, check_odd_kernel, check_positive_int, create_act, reduced_channels
from ._registry import register_attention


@register_attention(
    "gam", paper="Global Attention Mechanism: Retain Information to Enhance Channel-Spatial Interactions", year=2021
)
class GlobalAttentionMechanism(nn.Module):
    """GAM (Liu, Shao, Hoffmann, "Global Attention Mechanism: Retain Information to Enhance Channel-Spatial
    Interactions", arXiv:2112.05561, 2021).

    CBAM's sequential order without any pooling: ``x' = Mc(x) * x``, ``y = Ms(x') * x'``.

    - channel: permute (N, C, H, W) -> (N, H, W, C), a two-layer MLP ``C -> C/r -> C`` (``act`` between) at
      every position, permute back, sigmoid: the output of ``gate``, (N, C, H, W);
    - spatial: ``k x k`` conv ``C -> C/r``, BN, ``act``, ``k x k`` conv ``C/r -> C``, BN, sigmoid: the output of
      ``spatial_gate``, (N, C, H, W).

    Defaults as the paper: r = 4 (``reduction``), k = 7 (``kernel_size``), ReLU. Parameters, with
    ``h = C // r``: ``2 C h + h + C`` (MLP, biased) ``+ 2 k^2 C h + h + C`` (convs, biased) ``+ 2 h + 2 C`` (BN).
    The paper replaces the spatial convs by group convolutions with channel shuffle for ResNet-50 to save
    parameters; it gives no exact recipe and there is no official code, so this module keeps the plain convs.
    ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: float = 4,
        kernel_size: int = 7,
        act: str | nn.Module = "relu",
        inplace: bool = False,
    ):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_odd_kernel("kernel_size", kernel_size)
        self.reduction, self.kernel_size, self.inplace = reduction, kernel_size, inplace
        self.hidden = hidden = reduced_channels(channels, reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.act = create_act(act)
        self.fc2 = nn.Linear(hidden, channels)
        self.gate = nn.Sigmoid()
        self.conv1 = nn.Conv2d(channels, hidden, kernel_size, padding=kernel_size // 2)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, channels, kernel_size, padding=kernel_size // 2)
        self.bn2 = nn.BatchNorm2d(channels)
        self.spatial_gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        channel_logits = self.fc2(self.act(self.fc1(x.permute(0, 2, 3, 1)))).permute(0, 3, 1, 2)
        x = apply_gate(x, self.gate(channel_logits), self.inplace)
        spatial = self.spatial_gate(self.bn2(self.conv2(self.act(self.bn1(self.conv1(x))))))
        # x is now this module's own tensor, so the spatial gate may always go in place
        return apply_gate(x, spatial, inplace=True)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}, kernel_size={self.kernel_size}"
