import pytest
import torch
from plain_ops import assert_same_values_and_grads

from attnlab.attention.eca import (
    CircularEfficientChannelAttention,
    EfficientChannelAttention,
    EfficientChannelAttentionMLP,
    conv_over_channels,
    eca_kernel_size,
)

KERNEL_TABLE = {64: 3, 128: 5, 256: 5, 512: 5, 1024: 5, 2048: 7}


@pytest.mark.parametrize("channels, k", KERNEL_TABLE.items())
def test_adaptive_kernel_table(channels, k):
    assert eca_kernel_size(channels) == k
    eca = EfficientChannelAttention(channels)
    assert eca.k_size == k
    assert sum(p.numel() for p in eca.parameters()) == k


def test_kernel_formula_parameters():
    assert eca_kernel_size(1) == 1
    assert eca_kernel_size(256, gamma=1, b=1) == 9  # |8 + 1| = 9, odd
    assert EfficientChannelAttention(64, k_size=9).k_size == 9


@pytest.mark.parametrize("k_size", [0, 2, 4, -3, 3.0])
def test_bad_fixed_kernel(k_size):
    with pytest.raises(ValueError, match="k_size must be an odd integer >= 1"):
        EfficientChannelAttention(64, k_size=k_size)


def test_bad_gamma():
    with pytest.raises(ValueError, match="gamma must be > 0"):
        EfficientChannelAttention(64, gamma=0)


def test_matches_direct_1d_convolution_over_channels():
    eca = EfficientChannelAttention(6, k_size=3)
    x = torch.randn(2, 6, 4, 4)
    w = eca.conv.weight.flatten()
    pooled = torch.nn.functional.pad(x.mean((2, 3)), (1, 1))  # zero padding (k-1)//2 on both ends
    mixed = torch.stack([(pooled[:, i : i + 3] * w).sum(1) for i in range(6)], dim=1)
    torch.testing.assert_close(eca(x), x * torch.sigmoid(mixed)[:, :, None, None])


def test_k_size_in_repr():
    assert "k_size=5" in repr(EfficientChannelAttention(512))


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("channels, hidden, k", [(64, 8, 3), (256, 32, 5)])
def test_ecam_parameter_count(channels, hidden, k):
    ecam = EfficientChannelAttentionMLP(channels)
    assert (ecam.hidden, ecam.k_size) == (hidden, k)
    assert num_params(ecam) == (hidden + hidden) + (k * hidden + 1)  # conv 1 -> hidden, conv k: hidden -> 1


def test_ecam_matches_direct_formula():
    ecam = EfficientChannelAttentionMLP(16, k_size=3, reduction=4)
    x = torch.randn(2, 16, 3, 5)
    s = x.mean((2, 3))[:, None, :]  # (N, 1, C)
    hidden = torch.relu(ecam.conv1.weight.reshape(4, 1) * s + ecam.conv1.bias[:, None])  # (N, 4, C)
    mixed = torch.nn.functional.conv1d(hidden, ecam.conv2.weight, ecam.conv2.bias, padding=1)
    torch.testing.assert_close(ecam(x), x * torch.sigmoid(mixed).reshape(2, 16, 1, 1))


@pytest.mark.parametrize("channels, k", [(64, 3), (256, 5)])
def test_ceca_parameter_count(channels, k):
    assert num_params(CircularEfficientChannelAttention(channels)) == k


def test_ceca_wraps_around_the_channels():
    ceca = CircularEfficientChannelAttention(6, k_size=3)
    x = torch.randn(2, 6, 4, 4)
    w = ceca.conv.weight.flatten()
    pooled = x.mean((2, 3))
    padded = torch.cat((pooled[:, -1:], pooled, pooled[:, :1]), dim=1)  # channel 0's left neighbour is channel 5
    mixed = torch.stack([(padded[:, i : i + 3] * w).sum(1) for i in range(6)], dim=1)
    torch.testing.assert_close(ceca(x), x * torch.sigmoid(mixed)[:, :, None, None])


def test_ceca_kernel_wider_than_the_channels_is_refused():
    with pytest.raises(ValueError, match=r"k_size=7 pads 3 channels circularly .* use k_size <= 5"):
        CircularEfficientChannelAttention(2, k_size=7)


@pytest.mark.parametrize("k_size", [1, 3, 5, 7])
@pytest.mark.parametrize("padded", [True, False])
def test_conv_over_channels_is_the_convolution(k_size, padded):
    conv = torch.nn.Conv1d(1, 1, k_size, padding=(k_size - 1) // 2 if padded else 0, bias=False).double()
    pooled = torch.randn(3, 16, 1, 1, dtype=torch.float64, requires_grad=True)
    got = conv_over_channels(conv, pooled)
    want = conv(pooled.reshape(3, 1, 16)).reshape(got.shape)
    assert_same_values_and_grads(got, want, [pooled, conv.weight])
