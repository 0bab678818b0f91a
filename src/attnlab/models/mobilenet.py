"""MobileNetV2 (Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
CVPR 2018), attention-ready, with torchvision's architecture and state-dict keys.

Stages are the seven bottleneck rows (t, c, n, s) of the paper's Table 2; at width 1.0 their output channels and
block counts are 16 (1), 24 (2), 32 (3), 64 (4), 96 (3), 160 (3), 320 (1). The stem conv and the final 1x1 conv
are outside the stages and get no attention.

Where attention goes (ECA-MobileNetV2 of Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional
Neural Networks", CVPR 2020, and its official code): a gate module on each inverted residual's output, after the
projection (linear 1x1) BN and before the residual addition, as the block submodule ``attention``. It sits beside
``conv``, not inside it, so without attention the state dict has exactly torchvision's keys and torchvision-format
weights load with only the attention keys missing.

The ECA paper's configurations are the named builders: ``eca_mobilenet_v2`` fixes k = 1 in the stages of fewer
than 96 channels and k = 3 from 96 on (the official code's ``c < 96`` rule, +31 parameters; another revision of
that file has ``c <= 96``), with the official code's dropout of 0.25; ``se_mobilenet_v2`` uses SE with reduction
8, the setting of the paper's MobileNetV2 comparison. ``create_model('mobilenet_v2', attention='eca')`` uses the
adaptive k instead.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from attnlab.attention import AttentionFactory, AttentionPlacement, gated_batch_norm
from attnlab.utils import check_input

from ._registry import register_model
from .resnet import init_resnet_weights, linear_head

# (expansion t, output channels c, blocks n, first stride s) of each stage: the paper's Table 2
MOBILENET_V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
ECA_MOBILENET_V2_KWARGS = tuple({"k_size": 1 if c < 96 else 3} for _, c, _, _ in MOBILENET_V2_STAGES)
SE_MOBILENET_V2_KWARGS = ({"reduction": 8},) * len(MOBILENET_V2_STAGES)


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never more than 10% below it (the channel rounding
    of the width multiplier in the TensorFlow and torchvision MobileNets)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    """Inverted residual with linear bottleneck: (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride).

    1x1 expansion to ``expand_ratio * in_channels`` (BN, ReLU6; skipped when the ratio is 1), 3x3 depthwise conv
    with the stride (BN, ReLU6), linear 1x1 projection (BN), then ``attention``, then the input is added when
    stride is 1 and the channel counts match.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, expand_ratio: int, attention: nn.Module | None = None
    ):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride!r}")
        hidden = int(round(in_channels * expand_ratio))
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(in_channels, hidden, kernel_size=1, activation_layer=nn.ReLU6))
        layers += [
            Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden, activation_layer=nn.ReLU6),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.attention = attention
        self.stride = stride
        self.out_channels = out_channels
        self.use_res_connect = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.attention is not None:
            # the projection BN, gate and addition in one step that keeps nothing extra for backward
            out = self.conv[:-1](x)
            return gated_batch_norm(self.conv[-1], out, self.attention, x if self.use_res_connect else None)
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class MobileNetV2(nn.Module):
    """MobileNetV2: (N, in_chans, H, W) -> (N, num_classes) logits.

    Stem 3x3 conv (32 channels, stride 2), the seven stages of inverted residuals, 1x1 conv to 1280 channels,
    global average pooling, dropout, linear head; channels scale with ``width_mult`` (rounded to multiples of 8).
    ``attention`` (an :class:`AttentionPlacement`, or a registry name or class for every stage) goes into the
    blocks of its stages. timm's interface: ``forward_features`` (the (N, 1280, H/32, W/32) map of the last 1x1
    conv), ``forward_head``, ``reset_classifier``, ``feature_info`` (the last block of each of the seven stages).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        *,
        attention: AttentionPlacement | str | type[nn.Module] | None = None,
        in_chans: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.2,
    ):
        super().__init__()
        if not width_mult > 0:
            raise ValueError(f"width_mult must be > 0 (1.0 is the standard MobileNetV2), got {width_mult!r}")
        self.in_chans = in_chans
        gate = AttentionFactory(attention, len(MOBILENET_V2_STAGES), "MobileNetV2").gate
        channels = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [Conv2dNormActivation(in_chans, channels, stride=2, activation_layer=nn.ReLU6)]
        reduction, self.feature_info = 2, []
        for stage, (expand_ratio, c, blocks, first_stride) in enumerate(MOBILENET_V2_STAGES, 1):
            out_channels = make_divisible(c * width_mult)
            for i in range(blocks):
                stride = first_stride if i == 0 else 1
                features.append(
                    InvertedResidual(channels, out_channels, stride, expand_ratio, gate(out_channels, stage))
                )
                channels = out_channels
            reduction *= first_stride
            self.feature_info.append(
                {"num_chs": out_channels, "reduction": reduction, "module": f"features.{len(features) - 1}"}
            )
        features.append(Conv2dNormActivation(channels, self.last_channel, kernel_size=1, activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.num_features = self.last_channel
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        init_resnet_weights(self)
        self._init_classifier()

    def _init_classifier(self) -> None:
        if isinstance(self.classifier[1], nn.Linear):
            nn.init.normal_(self.classifier[1].weight, 0, 0.01)
            nn.init.zeros_(self.classifier[1].bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> the last 1x1 conv's (N, 1280, H/32, W/32) map."""
        check_input(x, self.in_chans, "in_chans")
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling, then dropout and the linear classifier (or the pooled (N, 1280) with
        ``pre_logits``)."""
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return x if pre_logits else self.classifier(x)

    def reset_classifier(self, num_classes: int) -> None:
        """A new linear classifier for ``num_classes`` (0: none), initialised as torchvision does."""
        self.classifier[1] = linear_head(self.num_features, num_classes)
        self._init_classifier()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("mobilenet_v2")
@register_model("eca_mobilenet_v2", attention="eca", stage_kwargs=ECA_MOBILENET_V2_KWARGS, dropout=0.25)
@register_model("se_mobilenet_v2", attention="se", stage_kwargs=SE_MOBILENET_V2_KWARGS)
def mobilenet_v2(**kwargs: Any) -> MobileNetV2:
    """MobileNetV2 1.0 (Sandler et al., CVPR 2018): 3,504,872 parameters at 1000 classes; ``kwargs`` go to
    :class:`MobileNetV2` (num_classes, attention, in_chans, width_mult, dropout)."""
    return MobileNetV2(**kwargs)
