import pytest
import torch
import torch.nn.functional as F

from attnlab.attention import create_attention
from attnlab.attention.ela import EfficientLocalAttention


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_default_parameter_count():
    c, k = 64, 7
    assert num_params(EfficientLocalAttention(c)) == k * c + 2 * c == 576  # shared depthwise conv + GN affine


def test_timm_configuration_parameter_count():
    c, k = 64, 7
    ela = EfficientLocalAttention(c, shared=False, norm_groups=1, act="swish")
    assert num_params(ela) == 2 * k * c + 4 * c == 1152  # a conv and a GN per direction


def test_matches_paper_formula():
    ela = EfficientLocalAttention(32, kernel_size=5, norm_groups=16)
    with torch.no_grad():
        ela.norm_h.weight.uniform_(0.5, 1.5)
        ela.norm_h.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 32, 6, 9)

    def branch(z):
        return torch.sigmoid(F.group_norm(ela.conv_h(z), 16, ela.norm_h.weight, ela.norm_h.bias))

    torch.testing.assert_close(ela(x), x * branch(x.mean(3))[..., None] * branch(x.mean(2))[:, :, None, :])


def test_norm_groups_must_divide_channels():
    with pytest.raises(ValueError, match="norm_groups=16 must divide channels=24"):
        create_attention("ela", 24)
    assert create_attention("ela", 24, norm_groups=8).norm_groups == 8
