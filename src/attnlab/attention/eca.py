"""Efficient Channel Attention, and its MLP (timm's 'ecam') and circular-padding ('ceca') variants."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ._common import (
    ChannelGate,
    check_odd_kernel,
    check_positive_int,
    create_act,
    has_forward_hooks,
    records_graph,
    reduced_channels,
)
from ._registry import register_attention


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """ECA's adaptive kernel size psi(C) = |log2(C)/gamma + b/gamma|_odd (C=64 -> 3, 256 -> 5, 2048 -> 7)."""
    check_positive_int("channels", channels)
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


def conv_over_channels(conv: nn.Conv1d, pooled: torch.Tensor) -> torch.Tensor:
    """``conv`` (ECA's one-channel, bias-free, stride-1 Conv1d) over the channels of (N, C, 1, 1) pooled vectors
    -> (N, C_out, 1, 1). Under autograd, as the product of the (N, C_out, k) windows with the kernel: the same
    maths, 1.5-3x faster on CPU forward + backward at 256-2048 channels (the convolution's fixed cost dominates
    at these sizes). Otherwise (inference, tracing, export), or when ``conv`` has forward hooks, the convolution
    itself runs: exported graphs keep their Conv node, which every exporter and runtime supports."""
    y = pooled.flatten(1)
    if not records_graph() or has_forward_hooks(conv):
        return conv(y.unsqueeze(1)).squeeze(1)[..., None, None]
    (k,), (pad,) = conv.kernel_size, conv.padding
    if pad:
        y = nn.functional.pad(y, (pad, pad))
    return (y.unfold(1, k, 1) @ conv.weight.view(k))[..., None, None]


def _resolve_k_size(channels: int, k_size: int | None, gamma: float, b: float) -> int:
    if k_size is None:
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        return eca_kernel_size(channels, gamma, b)
    return check_odd_kernel("k_size", k_size, why=" (or None for adaptive)")


@register_attention(
    "eca", paper="ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", year=2020
)
class EfficientChannelAttention(ChannelGate):
    """ECA (Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", CVPR 2020).

    Global average pooling, then a bias-free 1D convolution of kernel ``k`` across the channel axis (local
    cross-channel interaction without dimensionality reduction), then a sigmoid:
    ``y = x * sigmoid(conv1d_k(avgpool(x)))``. ``k_size=None`` picks ``k = eca_kernel_size(channels, gamma, b)``;
    the resolved value is ``self.k_size`` (timm's ``EcaModule`` also raises it to at least 3; equal from
    channels=8 up). Parameters: k. The gate output is (N, C, 1, 1). ``inplace=True`` scales
    the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(
        self, channels: int, *, k_size: int | None = None, gamma: float = 2, b: float = 1, inplace: bool = False
    ):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.k_size = k_size = _resolve_k_size(channels, k_size, gamma, b)
        self.conv = nn.Conv1d(1, 1, k_size, padding=(k_size - 1) // 2, bias=False)
        self.gate = nn.Sigmoid()
        self.inplace = inplace

    def excite(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.gate(conv_over_channels(self.conv, pooled))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, k_size={self.k_size}"


@register_attention(
    "ecam", paper="ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", year=2020
)
class EfficientChannelAttentionMLP(ChannelGate):
    """ECA with a per-channel MLP before the channel convolution: timm's ``EcaModule(use_mlp=True)``, an experiment
    of timm built on ECA (Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
    Networks", CVPR 2020); the paper has no such variant.

    Each pooled channel value ``s_c`` is lifted to ``hidden`` features by a biased 1x1 Conv1d (1 -> hidden), passed
    through ``act`` (ReLU), and the biased Conv1d of kernel ``k`` (hidden -> 1) mixes neighbouring channels:
    ``y = x * sigmoid(conv1d_k(act(conv1d_1(avgpool(x)))))``. ``hidden = channels // reduction`` (timm rounds
    ``channels / 8`` to a multiple of 8, at least 8: equal for channels in 64, 128, ...); ``k_size=None`` is ECA's
    adaptive kernel (timm also raises it to at least 3). Parameters: ``2*hidden + k*hidden + 1``.
    The gate output is (N, C, 1, 1). ``inplace=True`` scales the input in place at inference (see
    :func:`apply_gate`).
    """

    def __init__(
        self,
        channels: int,
        *,
        k_size: int | None = None,
        gamma: float = 2,
        b: float = 1,
        reduction: float = 8,
        act: str | nn.Module = "relu",
        inplace: bool = False,
    ):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.k_size = _resolve_k_size(channels, k_size, gamma, b)
        self.reduction = reduction
        self.hidden = reduced_channels(channels, reduction)
        self.conv1 = nn.Conv1d(1, self.hidden, 1)
        self.act = create_act(act)
        self.conv2 = nn.Conv1d(self.hidden, 1, self.k_size, padding=(self.k_size - 1) // 2)
        self.gate = nn.Sigmoid()
        self.inplace = inplace

    def _mix(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(pooled)))

    def excite(self, pooled: torch.Tensor) -> torch.Tensor:
        n, c = pooled.shape[:2]
        y = pooled.reshape(n, 1, c)
        # the (N, hidden, C) lift is hidden / (H * W) activations of the block's size (at 7 x 7 from 512 channels
        # on, more than one): under autograd, recomputed in backward from the (N, 1, C) pool instead of kept
        y = checkpoint(self._mix, y, use_reentrant=False) if records_graph() else self._mix(y)
        return self.gate(y.reshape(n, c, 1, 1))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, k_size={self.k_size}, hidden={self.hidden}"


@register_attention(
    "ceca", paper="ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", year=2020
)
class CircularEfficientChannelAttention(EfficientChannelAttention):
    """Circular ECA: ECA (Wang et al., CVPR 2020, see :class:`EfficientChannelAttention`) whose channel convolution
    pads circularly instead of with zeros, so the first and the last channels are neighbours (timm's
    ``CecaModule``, by Chris Ha; not in the paper): ``y = x * sigmoid(conv1d_k(circular_pad(avgpool(x))))``.
    Channels have no natural order, so no channel needs to see zeros at an edge. Parameters: k (no bias).

    The circular padding ``(k - 1) // 2`` wraps at most once around the channels, so ``k <= 2 * channels + 1``; a
    larger ``k_size`` is a ValueError at construction. The gate output is (N, C, 1, 1). ``inplace=True`` scales the
    input in place at inference (see :func:`apply_gate`).
    """

    def __init__(
        self, channels: int, *, k_size: int | None = None, gamma: float = 2, b: float = 1, inplace: bool = False
    ):
        super().__init__(channels, k_size=k_size, gamma=gamma, b=b, inplace=inplace)
        self.pad = (self.k_size - 1) // 2
        if self.pad > channels:
            raise ValueError(
                f"k_size={self.k_size} pads {self.pad} channels circularly but there are only channels={channels}; "
                f"use k_size <= {2 * channels + 1}"
            )
        self.conv.padding = (0,)

    def excite(self, pooled: torch.Tensor) -> torch.Tensor:
        c = pooled.shape[1]
        if self.pad:  # circular padding written as a concatenation: it exports to ONNX everywhere
            pooled = torch.cat((pooled[:, c - self.pad :], pooled, pooled[:, : self.pad]), dim=1)
        return self.gate(conv_over_channels(self.conv, pooled))
