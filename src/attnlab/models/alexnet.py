"""The AlexNet variant of the CIFAR-10 ECA seed experiment: a narrowed AlexNet (Krizhevsky, Sutskever, Hinton,
"ImageNet Classification with Deep Convolutional Neural Networks", NeurIPS 2012) for 128x128 inputs, with ECA
(Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", CVPR 2020).

Five convs 3->48 (11x11, stride 4, pad 5), 48->128 (5x5, pad 2), 128->192, 192->192, 192->128 (3x3, pad 1), each
followed by ReLU, with 3x3 stride-2 max-pools after convs 1, 2 and 5: a 128x128 input leaves 128x3x3 features.
Classifier: Linear(1152, 2048), ReLU, Dropout 0.5, Linear(2048, 2048), ReLU, Dropout 0.5, Linear(2048, classes).
10 classes: 7,524,042 parameters.

Stages are the five convs. Where attention goes: a gate module after each conv, before its ReLU, as the stage
submodule ``attention``; ``alexnet_eca`` is the seed experiment's ECA with fixed k = 3, 3, 5, 5, 3 (7,524,061
parameters), while ``create_model('alexnet', attention='eca')`` uses the adaptive k.

Other input sizes: inputs of 121 to 152 px also give 3x3 features and run; any size that does not raises a
ValueError naming the expected 128x128, rather than pooling to 3x3, which would be a different network.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from attnlab.attention import AttentionFactory, AttentionPlacement
from attnlab.utils import check_input

from ._registry import register_model
from .resnet import linear_head

ALEXNET_INPUT_SIZE = (3, 128, 128)
# (out channels, kernel, stride, padding, max-pool after, reduction of the output) of the five convs
ALEXNET_CONVS = (
    (48, 11, 4, 5, True, 8),
    (128, 5, 1, 2, True, 16),
    (192, 3, 1, 1, False, 16),
    (192, 3, 1, 1, False, 16),
    (128, 3, 1, 1, True, 32),
)
FEATURE_SIZE = 3
ALEXNET_ECA_KWARGS = ({"k_size": 3}, {"k_size": 3}, {"k_size": 5}, {"k_size": 5}, {"k_size": 3})


class AlexNetStage(nn.Module):
    """conv -> [attention] -> ReLU -> [3x3 stride-2 max-pool]: (N, in_channels, H, W) -> (N, out_channels, H', W')."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        pool: bool,
        attention: nn.Module | None = None,
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.attention = attention
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.attention is not None:
            x = self.attention(x)
        x = self.relu(x)
        return x if self.pool is None else self.pool(x)


class AlexNet(nn.Module):
    """AlexNet for 128x128 inputs: (N, in_chans, 128, 128) -> (N, num_classes) logits.

    ``attention`` (an :class:`AttentionPlacement`, or a registry name or class for every stage) goes after the
    convs of its stages (the five ``features.i``). timm's interface: ``forward_features`` (N, 128, 3, 3),
    ``forward_head`` (``pre_logits``: the 2048 features before the last linear), ``reset_classifier``,
    ``feature_info``.
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        attention: AttentionPlacement | str | type[nn.Module] | None = None,
        in_chans: int = 3,
        dropout: float = 0.5,
    ):
        super().__init__()
        gate = AttentionFactory(attention, len(ALEXNET_CONVS), "AlexNet").gate
        self.in_chans = in_chans
        stages, channels, self.feature_info = [], in_chans, []
        for stage, (out_channels, kernel, stride, padding, pool, reduction) in enumerate(ALEXNET_CONVS, 1):
            attention_module = gate(out_channels, stage)
            stages.append(AlexNetStage(channels, out_channels, kernel, stride, padding, pool, attention_module))
            self.feature_info.append(
                {"num_chs": out_channels, "reduction": reduction, "module": f"features.{stage - 1}"}
            )
            channels = out_channels
        self.features = nn.Sequential(*stages)
        self.num_features = 2048
        self.classifier = nn.Sequential(
            nn.Linear(channels * FEATURE_SIZE * FEATURE_SIZE, 2048),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(2048, 2048),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(2048, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, 128, 128) -> the fifth conv stage's (N, 128, 3, 3) map."""
        check_input(x, self.in_chans, "in_chans")
        features = self.features(x)
        if features.shape[-2:] != (FEATURE_SIZE, FEATURE_SIZE):
            raise ValueError(
                f"AlexNet expects 128x128 inputs (its classifier takes {FEATURE_SIZE}x{FEATURE_SIZE} feature maps), "
                f"got {x.shape[-2]}x{x.shape[-1]}, which gives {features.shape[-2]}x{features.shape[-1]}; "
                "resize the images to 128x128"
            )
        return features

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The fully connected classifier on the flattened map: (N, num_classes), or the (N, 2048) input of its
        last linear layer with ``pre_logits``."""
        x = torch.flatten(x, 1)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised last linear layer for ``num_classes`` (0: none)."""
        self.classifier[-1] = linear_head(self.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("alexnet", input_size=ALEXNET_INPUT_SIZE)
@register_model("alexnet_eca", input_size=ALEXNET_INPUT_SIZE, attention="eca", stage_kwargs=ALEXNET_ECA_KWARGS)
def alexnet(**kwargs: Any) -> AlexNet:
    """AlexNet of the CIFAR-10 seed experiment; ``kwargs`` go to :class:`AlexNet` (num_classes, attention,
    in_chans, dropout)."""
    return AlexNet(**kwargs)
