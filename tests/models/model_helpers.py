"""Parameter counting shared by the model tests."""

import torch
from torch import nn

from attnlab.models import create_model


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_params(name: str, **kwargs) -> int:
    """Parameters of ``create_model(name, **kwargs)``, built on the meta device (no memory, no init time)."""
    with torch.device("meta"):
        return num_params(create_model(name, **kwargs))


def se_params(channels: int, reduction: int = 16) -> int:
    """SE's count from the paper's formula: two biased 1x1 convs C -> C/r -> C."""
    hidden = channels // reduction
    return 2 * channels * hidden + hidden + channels
