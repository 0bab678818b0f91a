"""Coordinate Attention and its strip-pooling relatives: timm's simple coordinate attention and strip attention."""

from __future__ import annotations

import torch
from torch import nn

from ._common import apply_gate, check_input, check_odd_kernel, check_positive_int, create_act, reduced_channels
from ._registry import register_attention


@register_attention("coord", paper="Coordinate Attention for Efficient Mobile Network Design", year=2021)
class CoordinateAttention(nn.Module):
    """Coordinate Attention (Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021).

    Average-pool along W and along H, giving (N, C, H, 1) and (N, C, W, 1) direction-aware descriptors;
    concatenate them along the spatial axis, apply a shared biased 1x1 conv ``C -> mid`` + BN + ``act`` (h-swish)
    with ``mid = max(min_hidden, C // reduction)`` (``self.hidden``); split back and map each part with its own
    biased 1x1 conv ``mid -> C`` and a sigmoid: ``y = x * a_h * a_w``. One ``gate`` Sigmoid is called twice, on
    the (N, C, H, 1) and the (N, C, 1, W) attention maps. Parameters: 3*C*mid + 3*mid + 2*C.
    The convs have biases as in the official code; timm's ``CoordAttn`` leaves them out (``bias=False``) and
    sizes ``mid`` as ``channels / 24`` rounded to a multiple of 8 (the parity test passes ``bias=True`` and
    attnlab's ``mid`` to timm). ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: float = 32,
        min_hidden: int = 8,
        act: str | nn.Module = "hard_swish",
        inplace: bool = False,
    ):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.inplace = inplace
        self.min_hidden = check_positive_int("min_hidden", min_hidden)
        self.reduction = reduction
        self.hidden = max(reduced_channels(channels, reduction, min_channels=0), min_hidden)
        self.conv = nn.Conv2d(channels, self.hidden, 1)
        self.bn = nn.BatchNorm2d(self.hidden)
        self.act = create_act(act)
        self.conv_h = nn.Conv2d(self.hidden, channels, 1)
        self.conv_w = nn.Conv2d(self.hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        h, w = x.shape[-2:]
        pooled_h = x.mean(3, keepdim=True)  # (N, C, H, 1)
        pooled_w = x.mean(2, keepdim=True).transpose(2, 3)  # (N, C, W, 1)
        y = self.act(self.bn(self.conv(torch.cat((pooled_h, pooled_w), dim=2))))
        y_h, y_w = y.split((h, w), dim=2)
        a_h = self.gate(self.conv_h(y_h))
        a_w = self.gate(self.conv_w(y_w.transpose(2, 3)))
        # the first product is this module's own tensor, so the second may always go in place
        return apply_gate(apply_gate(x, a_h, self.inplace), a_w, inplace=True)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}"


@register_attention("scoord", paper="Coordinate Attention for Efficient Mobile Network Design", year=2021)
class SimpleCoordinateAttention(nn.Module):
    """Simple Coordinate Attention: timm's ``SimpleCoordAttn``, a simplification by timm of Coordinate Attention
    (Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021; not in the paper).

    Average-pool along W and along H; one shared biased 1x1 conv ``C -> mid`` + ``act`` (SiLU) on each strip, no
    normalisation; a biased 1x1 conv ``mid -> C`` per direction; the two maps are added *before* one sigmoid:
    ``y = x * sigmoid(a_h + a_w)`` with ``a_h`` (N, C, H, 1) and ``a_w`` (N, C, 1, W), so the ``gate`` output is
    (N, C, H, W). ``mid = channels // reduction`` (``self.hidden``); timm uses ``channels / 6`` rounded to a
    multiple of 8 (64 -> 16, here 10), so the parity test passes attnlab's ``mid`` to timm.
    Parameters: ``3*C*mid + mid + 2*C``. ``inplace=True`` scales the input in place at inference (see
    :func:`apply_gate`).
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: float = 6,
        act: str | nn.Module = "swish",
        inplace: bool = False,
    ):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.reduction = reduction
        self.hidden = reduced_channels(channels, reduction)
        self.inplace = inplace
        self.conv = nn.Conv2d(channels, self.hidden, 1)
        self.act = create_act(act)
        self.conv_h = nn.Conv2d(self.hidden, channels, 1)
        self.conv_w = nn.Conv2d(self.hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        a_h = self.conv_h(self.act(self.conv(x.mean(3, keepdim=True))))  # (N, C, H, 1)
        a_w = self.conv_w(self.act(self.conv(x.mean(2, keepdim=True))))  # (N, C, 1, W)
        return apply_gate(x, self.gate(a_h + a_w), self.inplace)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}"


@register_attention("strip", paper="Strip Pooling: Rethinking Spatial Pooling for Scene Parsing", year=2020)
class StripAttention(nn.Module):
    """Strip attention: timm's minimal ``StripAttn``, a gate built on the strip pooling of Hou, Zhang, Cheng,
    Feng, "Strip Pooling: Rethinking Spatial Pooling for Scene Parsing", CVPR 2020 (the paper's strip pooling
    module adds a 1x1 fusion conv; this gate, as timm's, does not).

    Average-pool along W and along H, refine each strip with a depthwise conv of kernel ``(k, 1)`` resp.
    ``(1, k)`` without bias (``use_conv=False``: no refinement, no parameters), and gate with the broadcast sum:
    ``y = x * sigmoid(dwconv_h(mean_w(x)) + dwconv_w(mean_h(x)))``; the ``gate`` output is (N, C, H, W).
    Parameters: ``2*k*C`` (0 without the convs). ``inplace=True`` scales the input in place at inference (see
    :func:`apply_gate`).
    """

    def __init__(self, channels: int, *, kernel_size: int = 3, use_conv: bool = True, inplace: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.kernel_size = check_odd_kernel("kernel_size", kernel_size)
        self.use_conv = use_conv
        self.inplace = inplace
        k, pad = kernel_size, kernel_size // 2
        self.conv_h = (
            nn.Conv2d(channels, channels, (k, 1), padding=(pad, 0), groups=channels, bias=False)
            if use_conv
            else nn.Identity()
        )
        self.conv_w = (
            nn.Conv2d(channels, channels, (1, k), padding=(0, pad), groups=channels, bias=False)
            if use_conv
            else nn.Identity()
        )
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        a = self.conv_h(x.mean(3, keepdim=True)) + self.conv_w(x.mean(2, keepdim=True))
        return apply_gate(x, self.gate(a), self.inplace)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, use_conv={self.use_conv}"
