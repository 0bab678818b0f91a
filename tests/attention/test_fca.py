import math

import pytest
import torch

from attnlab.attention import create_attention
from attnlab.attention.fca import FrequencyChannelAttention, dct_basis, select_frequencies


def dct_1d(pos: int, freq: float, size: int) -> float:
    """The paper's DCT-II basis: cos(pi f (i + 1/2) / L) / sqrt(L), times sqrt(2) for f != 0."""
    value = math.cos(math.pi * freq * (pos + 0.5) / size) / math.sqrt(size)
    return value if freq == 0 else value * math.sqrt(2)


def direct_pooling(x: torch.Tensor, freqs_h: list[float], freqs_w: list[float]) -> torch.Tensor:
    """(N, C, H, W) -> (N, C): channel group f summed against the 2D basis of (freqs_h[f], freqs_w[f])."""
    n, c, h, w = x.shape
    part = c // len(freqs_h)
    filters = torch.zeros(c, h, w)
    for f, (u, v) in enumerate(zip(freqs_h, freqs_w)):
        for i in range(h):
            for j in range(w):
                filters[f * part : (f + 1) * part, i, j] = dct_1d(i, u, h) * dct_1d(j, v, w)
    return (x * filters).sum((2, 3))


def excite(fca: FrequencyChannelAttention, pooled: torch.Tensor) -> torch.Tensor:
    hidden = torch.relu(pooled @ fca.fc1.weight[:, :, 0, 0].T)
    return torch.sigmoid(hidden @ fca.fc2.weight[:, :, 0, 0].T)[:, :, None, None]


@pytest.mark.parametrize(
    "channels, reduction, expected", [(64, 16, 2 * 64 * 4), (256, 16, 2 * 256 * 16), (512, 8, 2 * 512 * 64)]
)
def test_parameter_count_is_two_bias_free_fcs(channels, reduction, expected):
    assert sum(p.numel() for p in FrequencyChannelAttention(channels, reduction=reduction).parameters()) == expected


def test_frequency_selections():
    assert select_frequencies("top4") == ((0, 0), (0, 1), (6, 0), (0, 5))
    assert select_frequencies("low4") == ((0, 0), (0, 1), (1, 0), (1, 1))
    assert select_frequencies("bot2") == ((6, 6), (1, 4))
    for ranking in ("top", "low", "bot"):
        full = select_frequencies(f"{ranking}32")
        assert len(set(full)) == 32 and all(0 <= u < 7 and 0 <= v < 7 for u, v in full)
    assert (0, 0) not in select_frequencies("bot32")
    assert FrequencyChannelAttention(64).num_freq == 16


def test_dct_basis_is_orthonormal_on_integer_frequencies():
    basis = dct_basis(torch.arange(7.0), 7)
    torch.testing.assert_close(basis @ basis.T, torch.eye(7))


@pytest.mark.parametrize("freq_sel", ["top16", "low16", "bot16"])
def test_7x7_matches_paper_dct_pooling(freq_sel):
    fca = FrequencyChannelAttention(32, freq_sel=freq_sel, reduction=4)
    x = torch.randn(2, 32, 7, 7)
    u, v = zip(*select_frequencies(freq_sel))
    torch.testing.assert_close(fca(x), x * excite(fca, direct_pooling(x, list(u), list(v))))


def test_14x14_uses_frequencies_doubled_as_the_official_imagenet_layers():
    """The official code builds its 14x14 layers with frequencies u * (14 // 7)."""
    fca = FrequencyChannelAttention(16, freq_sel="top16", reduction=4)
    x = torch.randn(2, 16, 14, 14)
    u, v = zip(*select_frequencies("top16"))
    want = x * excite(fca, direct_pooling(x, [2 * f for f in u], [2 * f for f in v]))
    torch.testing.assert_close(fca(x), want)


@pytest.mark.parametrize("size", [(5, 3), (1, 1), (16, 9)])
def test_any_size_scales_frequencies_by_size_over_7(size):
    h, w = size
    fca = FrequencyChannelAttention(8, freq_sel="top8", reduction=2)
    x = torch.randn(2, 8, h, w)
    u, v = zip(*select_frequencies("top8"))
    want = x * excite(fca, direct_pooling(x, [f * h / 7 for f in u], [f * w / 7 for f in v]))
    torch.testing.assert_close(fca(x), want)


def test_dc_group_pools_mean_times_sqrt_hw():
    fca = create_attention("fca", 16, freq_sel="top1", reduction=4)  # one frequency: DC for all channels
    x = torch.randn(2, 16, 6, 4)
    seen = []
    fca.fc1.register_forward_hook(lambda m, a, out: seen.append(a[0]))
    fca(x)
    torch.testing.assert_close(seen[0][:, :, 0, 0], x.mean((2, 3)) * math.sqrt(24))


@pytest.mark.parametrize(
    "channels, kwargs, match",
    [
        (64, {"freq_sel": "top33"}, "freq_sel must be 'top', 'low' or 'bot' followed by 1..32"),
        (64, {"freq_sel": "top0"}, "freq_sel must be"),
        (64, {"freq_sel": "mid16"}, "freq_sel must be"),
        (64, {"freq_sel": 16}, "freq_sel must be"),
        (24, {}, "channels=24 must split evenly into the 16 frequencies of 'top16'; .* freq_sel='top8'"),
        (64, {"reduction": 128}, "use reduction <= 64"),
    ],
)
def test_bad_hyper_parameters(channels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        FrequencyChannelAttention(channels, **kwargs)


def test_resolved_attributes_and_repr():
    fca = FrequencyChannelAttention(64, freq_sel="low8")
    assert fca.hidden == 4 and fca.num_freq == 8
    assert "freq_sel='low8', hidden=4" in repr(fca)
    assert not any("freq" in k for k in fca.state_dict())  # frequencies are not checkpoint state
