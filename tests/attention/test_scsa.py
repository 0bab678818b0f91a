import pytest
import torch
from plain_ops import conv1d, num_params, randomize

from attnlab.attention import create_attention
from attnlab.attention.scsa import SpatialChannelSynergisticAttention


def group_norm(z, groups, norm):
    """GroupNorm of (N, C, ...) from its formula."""
    n, c = z.shape[:2]
    flat = z.reshape(n, groups, -1)
    mu = flat.mean(2, keepdim=True)
    var = ((flat - mu) ** 2).mean(2, keepdim=True)
    normed = ((flat - mu) / torch.sqrt(var + norm.eps)).reshape(z.shape)
    shape = (1, c) + (1,) * (z.dim() - 2)
    return normed * norm.weight.reshape(shape) + norm.bias.reshape(shape)


def plain_scsa(x, m):
    n, c, h, w = x.shape
    quarter = c // 4

    def smsa(z, norm):  # (N, C, L): 4 groups, each its own depthwise 1D kernel, then GN(4) and sigmoid
        parts = [
            conv1d(z[:, i * quarter : (i + 1) * quarter], conv.weight, conv.bias, groups=quarter)
            for i, conv in enumerate(m.dwconvs)
        ]
        return torch.sigmoid(group_norm(torch.cat(parts, 1), 4, norm))

    a_h, a_w = smsa(x.mean(3), m.norm_h), smsa(x.mean(2), m.norm_w)
    x = x * a_h[:, :, :, None] * a_w[:, :, None, :]
    kh, kw = min(m.window_size, h), min(m.window_size, w)
    pooled = torch.empty(n, c, h // kh, w // kw, dtype=x.dtype)
    for i in range(h // kh):
        for j in range(w // kw):
            pooled[:, :, i, j] = x[:, :, i * kh : (i + 1) * kh, j * kw : (j + 1) * kw].mean((2, 3))
    pooled = group_norm(pooled, 1, m.norm).reshape(n, c, -1)  # (N, C, L)
    d = c // m.head_num
    out = torch.empty(n, c, dtype=x.dtype)
    for b in range(n):
        for head in range(m.head_num):
            rows = slice(head * d, (head + 1) * d)
            q, k, v = (pooled[b, rows] * proj.weight[rows, 0, 0, 0][:, None] for proj in (m.q, m.k, m.v))
            attention = torch.softmax(q @ k.T / d**0.5, dim=-1)  # (d, d): across the head's channels
            out[b, rows] = (attention @ v).mean(1)
    return x * torch.sigmoid(out)[:, :, None, None]


@pytest.mark.parametrize("head_num", [1, 2])
@pytest.mark.parametrize("size", [(16, 15), (3, 5), (1, 1), (7, 7)])
def test_matches_paper_equations(size, head_num):
    scsa = randomize(SpatialChannelSynergisticAttention(16, head_num=head_num))
    x = torch.randn(2, 16, *size, dtype=torch.float64)
    torch.testing.assert_close(scsa(x), plain_scsa(x, scsa), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("channels", [64, 256])
def test_parameter_count(channels):
    quarter = channels // 4
    convs = sum(quarter * (k + 1) for k in (3, 5, 7, 9))  # depthwise 1D, biased: 7C
    norms = 2 * (2 * channels) + 2 * channels  # GN_h, GN_w, GN_1 affine
    qkv = 3 * channels  # depthwise 1x1, no bias
    assert convs + norms + qkv == 16 * channels
    assert num_params(SpatialChannelSynergisticAttention(channels)) == 16 * channels


def test_gates():
    scsa = create_attention("scsa", 16)
    seen = []
    scsa.spatial_gate.register_forward_hook(lambda m, a, out: seen.append(("spatial", out.shape)))
    scsa.gate.register_forward_hook(lambda m, a, out: seen.append(("channel", out.shape)))
    scsa(torch.randn(2, 16, 3, 5))
    assert seen == [("spatial", (2, 16, 3)), ("spatial", (2, 16, 5)), ("channel", (2, 16, 1, 1))]


@pytest.mark.parametrize(
    "channels, kwargs, match",
    [
        (18, {}, "multiple of 4"),
        (16, {"head_num": 3}, "head_num=3 must divide channels=16"),
        (16, {"group_kernel_sizes": (3, 5, 7)}, "needs 4 odd kernel sizes"),
        (16, {"group_kernel_sizes": (3, 4, 7, 9)}, "must be an odd integer"),
    ],
)
def test_bad_settings(channels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpatialChannelSynergisticAttention(channels, **kwargs)
