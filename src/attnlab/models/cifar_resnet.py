"""CIFAR ResNets (ResNet-20/32/56) of He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition",
CVPR 2016, Section 4.2, attention-ready.

3x3 stem with 16 filters, three stages of ``n`` BasicBlocks with 16, 32 and 64 filters on 32x32, 16x16 and 8x8
maps (depth ``6n + 2``), global average pooling, linear head. Shortcuts are option A, as the paper uses on
CIFAR: identity everywhere; where the shape changes, the input is subsampled by the stride and zero-padded
with the extra channels, so the shortcuts add no parameters (ResNet-20: 0.27M parameters for 10 classes).
Attention goes where it goes in the ImageNet ResNet's BasicBlock (see :mod:`attnlab.models.resnet`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.attention import AttentionFactory, AttentionPlacement
from attnlab.utils import check_input

from ._registry import register_model
from .resnet import BasicBlock, PooledLinearHead, conv3x3, init_resnet_weights

CIFAR_INPUT_SIZE = (3, 32, 32)


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: (N, in_channels, H, W) -> (N, out_channels, ceil(H/stride), ceil(W/stride)) by taking
    every ``stride``-th pixel and appending ``out_channels - in_channels`` zero channels. No parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"a zero-padding shortcut cannot shrink {in_channels} channels to {out_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class CifarResNet(PooledLinearHead, nn.Module):
    """ResNet of depth ``6n + 2`` for 32x32 images: (N, in_chans, H, W) -> (N, num_classes) logits.

    ``attention`` (an :class:`AttentionPlacement`, or a registry name or class for every stage) goes into the
    blocks of its stages (``layer1``-``layer3``); timm's interface as in :class:`~attnlab.models.resnet.ResNet`.
    """

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        *,
        attention: AttentionPlacement | str | type[nn.Module] | None = None,
        in_chans: int = 3,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got {depth!r}")
        blocks_per_stage = (depth - 2) // 6
        self.in_chans = in_chans
        factory = AttentionFactory(attention, num_stages=3, model="CIFAR ResNet", kinds=("gate", "conv"))
        self.conv1 = conv3x3(in_chans, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, 16, blocks_per_stage, 1, factory, stage=1)
        self.layer2 = self._make_layer(16, 32, blocks_per_stage, 2, factory, stage=2)
        self.layer3 = self._make_layer(32, 64, blocks_per_stage, 2, factory, stage=3)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = 64
        self.fc = nn.Linear(self.num_features, num_classes)
        self.feature_info = [
            {"num_chs": channels, "reduction": 2 ** (stage - 1), "module": f"layer{stage}"}
            for stage, channels in enumerate((16, 32, 64), 1)
        ]
        init_resnet_weights(self, zero_init_residual)

    @staticmethod
    def _make_layer(
        inplanes: int, planes: int, blocks: int, stride: int, factory: AttentionFactory, stage: int
    ) -> nn.Sequential:
        shortcut = ZeroPadShortcut(inplanes, planes, stride) if stride != 1 or inplanes != planes else None
        layers = [BasicBlock(inplanes, planes, stride, shortcut, factory=factory, stage=stage)]
        layers += [BasicBlock(planes, planes, factory=factory, stage=stage) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> the last stage's (N, 64, H/4, W/4) map."""
        check_input(x, self.in_chans, "in_chans")
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))


@register_model("resnet20", input_size=CIFAR_INPUT_SIZE)
@register_model("se_resnet20", input_size=CIFAR_INPUT_SIZE, attention="se")
@register_model("eca_resnet20", input_size=CIFAR_INPUT_SIZE, attention="eca")
def resnet20(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-20 (n = 3); ``kwargs`` go to :class:`CifarResNet` (num_classes, attention, ...)."""
    return CifarResNet(20, **kwargs)


@register_model("resnet32", input_size=CIFAR_INPUT_SIZE)
@register_model("se_resnet32", input_size=CIFAR_INPUT_SIZE, attention="se")
@register_model("eca_resnet32", input_size=CIFAR_INPUT_SIZE, attention="eca")
def resnet32(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-32 (n = 5); ``kwargs`` go to :class:`CifarResNet`."""
    return CifarResNet(32, **kwargs)


@register_model("resnet56", input_size=CIFAR_INPUT_SIZE)
@register_model("se_resnet56", input_size=CIFAR_INPUT_SIZE, attention="se")
@register_model("eca_resnet56", input_size=CIFAR_INPUT_SIZE, attention="eca")
def resnet56(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-56 (n = 9); ``kwargs`` go to :class:`CifarResNet`."""
    return CifarResNet(56, **kwargs)
