import pytest
import torch

from attnlab.attention.eca import EfficientChannelAttention, eca_kernel_size

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
