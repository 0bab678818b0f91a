"""ResNet and ResNeXt for ImageNet, attention-ready, with torchvision's layer names.

ResNet: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
ResNeXt: Xie, Girshick, Dollar, Tu, He, "Aggregated Residual Transformations for Deep Neural Networks", CVPR 2017.

Where attention goes (the placement of the SE, ECA and CBAM papers): a gate module sits on the residual branch
after the block's last BN and before the addition, as the block submodule ``attention``. A conv-kind module
(``psa``, ``sk``) replaces the block's 3x3 conv that carries the stride: ``conv2`` of a Bottleneck, ``conv1`` of
a BasicBlock (as in timm's SKNet basic block), keeping that submodule name. Without attention the state dict
has exactly torchvision's keys, so torchvision-format weights load with only the attention keys missing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from attnlab.attention import AttentionFactory, AttentionPlacement, gated_batch_norm
from attnlab.utils import check_input

from ._registry import register_model


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding, no bias (a BN follows)."""
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias (a BN follows)."""
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


def strided_conv3x3(
    factory: AttentionFactory | None, stage: int, in_planes: int, out_planes: int, stride: int, groups: int = 1
) -> nn.Module:
    """The block's strided 3x3 conv, or the conv-kind attention module (PSA, SK) that replaces it."""
    module = factory.conv(in_planes, out_planes, stride, stage) if factory is not None else None
    return module if module is not None else conv3x3(in_planes, out_planes, stride, groups)


class BasicBlock(nn.Module):
    """Two 3x3 convs, (N, inplanes, H, W) -> (N, planes, H/stride, W/stride) (ResNet-18/34 and CIFAR ResNets).

    ``downsample`` maps the identity to the output shape where it differs. ``factory`` and ``stage`` give the
    block its attention: a gate ``attention`` after ``bn2``, or a conv-kind module as ``conv1``.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        factory: AttentionFactory | None = None,
        stage: int = 1,
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(
                f"BasicBlock only supports groups=1 and width_per_group=64, got {groups} and {base_width}; "
                "use Bottleneck for ResNeXt"
            )
        self.conv1 = strided_conv3x3(factory, stage, inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.attention = factory.gate(planes, stage) if factory is not None else None
        self.downsample = downsample
        self.stride = stride

    def zero_init_last(self) -> None:
        """Zero the last BN's scale so the block starts as the identity (Goyal et al., 2017)."""
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        if self.attention is not None:
            # gate, addition and ReLU in one step that keeps nothing extra for backward (attention.fused)
            return gated_batch_norm(self.bn2, self.conv2(out), self.attention, identity, relu=True)
        out = self.bn2(self.conv2(out))
        out += identity  # in place, as torchvision and timm: one (N, C, H, W) allocation less per block
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt, strided as in torchvision's "ResNet v1.5"), 1x1 expand:
    (N, inplanes, H, W) -> (N, 4 * planes, H/stride, W/stride).

    ``factory`` and ``stage`` give the block its attention: a gate ``attention`` after ``bn3``, or a conv-kind
    module as ``conv2`` (with the block's stride; the ResNeXt grouping then belongs to that module).
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        factory: AttentionFactory | None = None,
        stage: int = 1,
    ):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = strided_conv3x3(factory, stage, width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.attention = factory.gate(planes * self.expansion, stage) if factory is not None else None
        self.downsample = downsample
        self.stride = stride

    def zero_init_last(self) -> None:
        """Zero the last BN's scale so the block starts as the identity (Goyal et al., 2017)."""
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        if self.attention is not None:
            # gate, addition and ReLU in one step that keeps nothing extra for backward (attention.fused)
            return gated_batch_norm(self.bn3, self.conv3(out), self.attention, identity, relu=True)
        out = self.bn3(self.conv3(out))
        out += identity  # in place, as torchvision and timm: one (N, C, H, W) allocation less per block
        return self.relu(out)


def linear_head(in_features: int, num_classes: int) -> nn.Module:
    """``nn.Linear(in_features, num_classes)``, or ``nn.Identity`` for ``num_classes=0`` (timm's convention for a
    model without a classifier)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be an integer >= 0 (0: no classifier), got {num_classes!r}")
    return nn.Linear(in_features, num_classes) if num_classes else nn.Identity()


def _backbone_modules(module: nn.Module) -> Iterator[nn.Module]:
    """Every submodule except those inside gate attention modules."""
    for child in module.children():
        if getattr(child, "attention_kind", None) == "gate":
            continue
        yield child
        yield from _backbone_modules(child)


def init_resnet_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """He-normal (fan-out) convs and unit BNs, as torchvision does; conv-kind attention modules are convs of the
    backbone and get the same, while gate modules keep the initialisation their paper specifies.
    ``zero_init_residual`` zeroes each block's last BN scale."""
    for m in _backbone_modules(model):
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                m.zero_init_last()


class PooledLinearHead:
    """timm's head interface for networks that end in global average pooling (``avgpool``) and a linear ``fc`` on
    ``num_features`` channels; the network supplies ``forward_features``."""

    avgpool: nn.Module
    fc: nn.Module
    num_features: int

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling, then the classifier: (N, num_features, h, w) -> (N, num_classes), or the pooled
        (N, num_features) with ``pre_logits``."""
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised head for ``num_classes`` (0: none, ``forward`` returns pooled features)."""
        self.fc = linear_head(self.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class ResNet(PooledLinearHead, nn.Module):
    """ImageNet ResNet/ResNeXt: 7x7 stem, max-pool, four stages of blocks, global pooling, linear head.

    (N, in_chans, H, W) -> (N, num_classes) logits. ``attention`` (an :class:`AttentionPlacement`, or a registry
    name or class for every stage) goes into the blocks of its stages (``layer1``-``layer4``). timm's interface:
    ``forward_features`` (N, num_features, H/32, W/32), ``forward_head``, ``reset_classifier``, ``feature_info``.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        *,
        attention: AttentionPlacement | str | type[nn.Module] | None = None,
        in_chans: int = 3,
        groups: int = 1,
        width_per_group: int = 64,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        if len(layers) != 4 or any(not isinstance(n, int) or n < 1 for n in layers):
            raise ValueError(f"layers must be 4 block counts >= 1 (e.g. [3, 4, 6, 3]), got {layers!r}")
        self.in_chans = in_chans
        self.groups = groups
        self.base_width = width_per_group
        factory = AttentionFactory(attention, num_stages=4, model="ResNet", kinds=("gate", "conv"))
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_chans, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, factory, stage=1)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, factory, stage=2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, factory, stage=3)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, factory, stage=4)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = 512 * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)
        self.feature_info = [
            {"num_chs": planes * block.expansion, "reduction": reduction, "module": f"layer{stage}"}
            for stage, (planes, reduction) in enumerate(((64, 4), (128, 8), (256, 16), (512, 32)), 1)
        ]
        init_resnet_weights(self, zero_init_residual)

    def _make_layer(
        self,
        block: type[BasicBlock | Bottleneck],
        planes: int,
        blocks: int,
        stride: int,
        factory: AttentionFactory,
        stage: int,
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion)
            )
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, factory, stage)]
        self.inplanes = planes * block.expansion
        layers += [
            block(self.inplanes, planes, groups=self.groups, base_width=self.base_width, factory=factory, stage=stage)
            for _ in range(1, blocks)
        ]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> the last stage's (N, num_features, H/32, W/32) map."""
        check_input(x, self.in_chans, "in_chans")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


@register_model("resnet18")
@register_model("se_resnet18", attention="se")
@register_model("eca_resnet18", attention="eca")
@register_model("cbam_resnet18", attention="cbam")
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18 (He et al., CVPR 2016); ``kwargs`` go to :class:`ResNet` (num_classes, attention, ...)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model("resnet34")
@register_model("se_resnet34", attention="se")
@register_model("eca_resnet34", attention="eca")
@register_model("cbam_resnet34", attention="cbam")
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34 (He et al., CVPR 2016); ``kwargs`` go to :class:`ResNet`."""
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model("resnet50")
@register_model("se_resnet50", attention="se")
@register_model("eca_resnet50", attention="eca")
@register_model("cbam_resnet50", attention="cbam")
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 (He et al., CVPR 2016; stride on the 3x3 conv as torchvision); ``kwargs`` go to :class:`ResNet`."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model("resnet101")
@register_model("se_resnet101", attention="se")
@register_model("eca_resnet101", attention="eca")
def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101 (He et al., CVPR 2016); ``kwargs`` go to :class:`ResNet`."""
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model("resnet152")
@register_model("se_resnet152", attention="se")
@register_model("eca_resnet152", attention="eca")
def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152 (He et al., CVPR 2016); ``kwargs`` go to :class:`ResNet`."""
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


@register_model("resnext50_32x4d")
@register_model("se_resnext50_32x4d", attention="se")
@register_model("eca_resnext50_32x4d", attention="eca")
def resnext50_32x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-50 32x4d (Xie et al., CVPR 2017): 32 groups of width 4 in the first stage; ``kwargs`` go to
    :class:`ResNet`."""
    return ResNet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4, **kwargs)
