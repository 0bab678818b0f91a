import pytest
import torch
from plain_ops import conv2d, num_params, randomize

from attnlab.attention import create_attention
from attnlab.attention.ema import EfficientMultiScaleAttention


def plain_ema(x, m):
    """The paper's EMA, one sub-feature (sample, group) at a time."""
    n, channels, h, w = x.shape
    c = channels // m.groups
    w1, b1 = m.conv1x1.weight[:, :, 0, 0], m.conv1x1.bias
    out = torch.empty_like(x)
    for b in range(n):
        for g in range(m.groups):
            xs = x[b, g * c : (g + 1) * c]  # (c, H, W)
            a_h = torch.sigmoid(w1 @ xs.mean(2) + b1[:, None])  # 1D pooling along W, shared 1x1 conv: (c, H)
            a_w = torch.sigmoid(w1 @ xs.mean(1) + b1[:, None])  # along H: (c, W)
            y = xs * a_h[:, :, None] * a_w[:, None, :]
            mu = y.mean((1, 2), keepdim=True)  # GroupNorm, one group per channel
            var = ((y - mu) ** 2).mean((1, 2), keepdim=True)
            x1 = (y - mu) / torch.sqrt(var + m.norm.eps) * m.norm.weight[:, None, None] + m.norm.bias[:, None, None]
            x2 = conv2d(xs[None], m.conv3x3.weight, m.conv3x3.bias)[0]
            s1 = torch.softmax(x1.mean((1, 2)), 0)  # 2D global pooling + softmax over the c channels
            s2 = torch.softmax(x2.mean((1, 2)), 0)
            weights = torch.einsum("c,chw->hw", s1, x2) + torch.einsum("c,chw->hw", s2, x1)
            out[b, g * c : (g + 1) * c] = xs * torch.sigmoid(weights)
    return out


@pytest.mark.parametrize("size", [(5, 7), (1, 1)])
def test_matches_paper_equations(size):
    ema = randomize(EfficientMultiScaleAttention(24, groups=4))
    x = torch.randn(2, 24, *size, dtype=torch.float64)
    torch.testing.assert_close(ema(x), plain_ema(x, ema), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("channels, groups", [(64, 32), (256, 32), (512, 16)])
def test_parameter_count(channels, groups):
    c = channels // groups
    # 1x1 conv (c*c + c), 3x3 conv (9*c*c + c), GroupNorm affine (2c), shared by all groups
    assert num_params(EfficientMultiScaleAttention(channels, groups=groups)) == 10 * c * c + 4 * c


def test_default_groups_is_the_official_factor():
    assert EfficientMultiScaleAttention(64).groups == 32


def test_gate_sees_one_map_per_group():
    ema = create_attention("ema", 64)
    seen = []
    ema.gate.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    ema(torch.randn(2, 64, 3, 5))
    assert seen == [(2, 32, 1, 3, 5)]


@pytest.mark.parametrize(
    "channels, groups, match",
    [
        (48, 32, "got channels=48, groups=32; use groups=24"),
        (32, 32, "at least 2 channels per group, got channels=32, groups=32; use groups=16"),
        (1, 32, "place it after a layer with at least 2 channels"),
        (64, 0, "groups must be an integer >= 1"),
    ],
)
def test_bad_groups(channels, groups, match):
    with pytest.raises(ValueError, match=match):
        EfficientMultiScaleAttention(channels, groups=groups)
