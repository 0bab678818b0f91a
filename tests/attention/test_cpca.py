import pytest
import torch
from plain_ops import conv2d, num_params, randomize

from attnlab.attention import create_attention
from attnlab.attention.cpca import ChannelPriorConvAttention


def plain_cpca(x, m):
    def mlp(v):  # (N, C) -> (N, C)
        hidden = torch.relu(torch.einsum("nc,kc->nk", v, m.fc1.weight[:, :, 0, 0]) + m.fc1.bias)
        return torch.einsum("nk,ck->nc", hidden, m.fc2.weight[:, :, 0, 0]) + m.fc2.bias

    # channel prior, as the official code: a sigmoid per pooled path, then their sum
    attention = torch.sigmoid(mlp(x.mean((2, 3)))) + torch.sigmoid(mlp(x.amax((2, 3))))
    prior = x * attention[:, :, None, None]
    c = x.shape[1]
    base = conv2d(prior, m.dw5.weight, m.dw5.bias, groups=c)
    total = base.clone()
    for strip in m.strips:
        horizontal, vertical = strip
        total += conv2d(
            conv2d(base, horizontal.weight, horizontal.bias, groups=c), vertical.weight, vertical.bias, groups=c
        )
    spatial = torch.einsum("nchw,oc->nohw", total, m.mix.weight[:, :, 0, 0]) + m.mix.bias[None, :, None, None]
    return spatial * prior


@pytest.mark.parametrize("size", [(6, 7), (1, 1)])
def test_matches_paper_equations(size):
    cpca = randomize(ChannelPriorConvAttention(8))
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    torch.testing.assert_close(cpca(x), plain_cpca(x, cpca), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("channels", [64, 256])
def test_parameter_count(channels):
    h = channels // 4
    mlp = 2 * channels * h + h + channels
    depthwise = (25 + 1) * channels + sum(2 * (k + 1) * channels for k in (7, 11, 21))  # = 110 C
    assert depthwise == 110 * channels
    assert num_params(ChannelPriorConvAttention(channels)) == mlp + depthwise + channels * channels + channels


def test_gate_sees_both_pooled_paths():
    cpca = create_attention("cpca", 16)
    seen = []
    cpca.gate.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    cpca(torch.randn(2, 16, 3, 5))
    assert seen == [(2, 16, 1, 1), (2, 16, 1, 1)]


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction=32 leaves 0 hidden units"):
        ChannelPriorConvAttention(16, reduction=32)
