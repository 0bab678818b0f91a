"""Inception-v3 (Szegedy, Vanhoucke, Ioffe, Shlens, Wojna, "Rethinking the Inception Architecture for Computer
Vision", CVPR 2016) and SE-Inception-v3 (Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018),
with torchvision's layer names, built from torchvision's Inception blocks.

Stages are the three grids of the Inception blocks' outputs: 1 = 35x35 (``Mixed_5b``-``Mixed_5d``, InceptionA),
2 = 17x17 (``Mixed_6a`` grid reduction, ``Mixed_6b``-``Mixed_6e``, InceptionC), 3 = 8x8 (``Mixed_7a`` grid
reduction, ``Mixed_7b``-``Mixed_7c``, InceptionE); the sizes are those of a 299x299 input.

Where attention goes (the SE-Inception module, SENet paper Fig. 2): a gate module on the output of each of the 11
Inception blocks, the concatenation of its branches. The gates live in the ModuleDict ``attention`` keyed by block
name (``attention.Mixed_5b``, ...) and ``forward`` applies each right after its block, so the blocks keep
torchvision's keys and torchvision-format weights load with only the attention keys missing. The auxiliary
classifier reads the gated output of ``Mixed_6e``. torchvision's ``transform_input`` is not offered: normalise
the inputs instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models.inception import (
    BasicConv2d,
    InceptionA,
    InceptionAux,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
    InceptionOutputs,
)

from attnlab.attention import AttentionFactory, AttentionPlacement
from attnlab.utils import check_input

from ._registry import register_model
from .resnet import linear_head

INCEPTION_INPUT_SIZE = (3, 299, 299)
# Smallest input sides: below 75, Mixed_7a's 3x3 stride-2 convs meet a map smaller than 3x3; below 299, the
# auxiliary classifier's 5x5 conv meets a map smaller than 5x5 (after its 5x5 stride-3 pooling of Mixed_6e).
MIN_INPUT_SIZE = 75
MIN_INPUT_SIZE_AUX = 299

# (block name, output channels, stage), in forward order
INCEPTION_BLOCKS = (
    ("Mixed_5b", 256, 1),
    ("Mixed_5c", 288, 1),
    ("Mixed_5d", 288, 1),
    ("Mixed_6a", 768, 2),
    ("Mixed_6b", 768, 2),
    ("Mixed_6c", 768, 2),
    ("Mixed_6d", 768, 2),
    ("Mixed_6e", 768, 2),
    ("Mixed_7a", 1280, 3),
    ("Mixed_7b", 2048, 3),
    ("Mixed_7c", 2048, 3),
)


class Inception3(nn.Module):
    """Inception-v3: (N, in_chans, H, W) -> (N, num_classes) logits, H and W >= 75 (299 as designed).

    Stem of five convs and two max-pools, the 11 Inception blocks, global average pooling, dropout, linear head.
    With ``aux_logits`` the auxiliary classifier on the 17x17 grid is built, and in training mode ``forward``
    returns torchvision's ``InceptionOutputs(logits, aux_logits)`` (inputs then need H, W >= 299).
    ``attention`` (an :class:`AttentionPlacement`, or a registry name or class for every stage) goes after every
    block of its stages. timm's interface: ``forward_features`` (the gated (N, 2048, 8, 8) map of ``Mixed_7c``
    at 299 px), ``forward_head``, ``reset_classifier``, ``feature_info`` (the last block of each grid; its gate
    applies after it).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        *,
        attention: AttentionPlacement | str | type[nn.Module] | None = None,
        in_chans: int = 3,
        aux_logits: bool = False,
        dropout: float = 0.5,
    ):
        super().__init__()
        gate = AttentionFactory(attention, 3, "Inception-v3").gate
        self.in_chans = in_chans
        self.aux_logits = aux_logits
        self.Conv2d_1a_3x3 = BasicConv2d(in_chans, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.num_features = 2048
        self.fc = nn.Linear(self.num_features, num_classes)
        self.feature_info = [
            {"num_chs": 288, "reduction": 8, "module": "Mixed_5d"},
            {"num_chs": 768, "reduction": 16, "module": "Mixed_6e"},
            {"num_chs": 2048, "reduction": 32, "module": "Mixed_7c"},
        ]
        self._init_backbone_weights()
        gates = {name: gate(channels, stage) for name, channels, stage in INCEPTION_BLOCKS}
        self.attention = nn.ModuleDict({name: module for name, module in gates.items() if module is not None})

    def _init_backbone_weights(self) -> None:
        """torchvision's init: truncated normal convs and linears (std 0.1, or a module's ``stddev``: 0.01 and 0.001
        in the auxiliary classifier), unit BNs. Runs before the gates exist, which keep their own init."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=float(getattr(m, "stddev", 0.1)), a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        check_input(x, self.in_chans, "in_chans")
        needs_aux = self.training and self.AuxLogits is not None
        minimum = MIN_INPUT_SIZE_AUX if needs_aux else MIN_INPUT_SIZE
        if min(x.shape[-2:]) < minimum:
            raise ValueError(
                f"Inception-v3 needs inputs of at least {minimum}x{minimum}"
                f"{' when training with aux_logits' if needs_aux else ''} (designed for 299x299), "
                f"got {x.shape[-2]}x{x.shape[-1]}; resize the images"
            )

    def _features_and_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the gated output of the last block, the auxiliary logits when training with ``aux_logits``, else None)."""
        self._check_input(x)
        x = self.maxpool1(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        aux = None
        for name, _, _ in INCEPTION_BLOCKS:
            x = getattr(self, name)(x)
            if name in self.attention:
                x = self.attention[name](x)
            if name == "Mixed_6e" and self.training and self.AuxLogits is not None:
                aux = self.AuxLogits(x)
        return x, aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> the gated (N, 2048, h, w) output of ``Mixed_7c``."""
        return self._features_and_aux(x)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling, dropout and the linear classifier (or the pooled (N, 2048) with ``pre_logits``)."""
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(self.dropout(x))

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised head for ``num_classes`` (0: none); the auxiliary classifier keeps its own."""
        self.fc = linear_head(self.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | InceptionOutputs:
        x, aux = self._features_and_aux(x)
        logits = self.forward_head(x)
        return InceptionOutputs(logits, aux) if aux is not None else logits


@register_model("inception_v3", input_size=INCEPTION_INPUT_SIZE)
@register_model("se_inception_v3", input_size=INCEPTION_INPUT_SIZE, attention="se")
def inception_v3(**kwargs: Any) -> Inception3:
    """Inception-v3 (Szegedy et al., CVPR 2016), auxiliary classifier off unless ``aux_logits=True``; ``kwargs`` go
    to :class:`Inception3` (num_classes, attention, in_chans, aux_logits, dropout)."""
    return Inception3(**kwargs)
