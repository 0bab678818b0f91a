import pytest
import torch
from plain_ops import batch_norm_eval, conv2d, num_params, randomize

from attnlab.attention import create_attention
from attnlab.attention.gam import GlobalAttentionMechanism


def plain_gam(x, m):
    # channel sub-module: the MLP at every position of the (N, H, W, C) permutation
    hidden = torch.relu(torch.einsum("nchw,kc->nhwk", x, m.fc1.weight) + m.fc1.bias)
    channel = torch.einsum("nhwk,ck->nchw", hidden, m.fc2.weight) + m.fc2.bias[None, :, None, None]
    x = x * torch.sigmoid(channel)
    # spatial sub-module: two kxk convs with BN, ReLU between
    s = torch.relu(batch_norm_eval(conv2d(x, m.conv1.weight, m.conv1.bias), m.bn1))
    s = batch_norm_eval(conv2d(s, m.conv2.weight, m.conv2.bias), m.bn2)
    return x * torch.sigmoid(s)


@pytest.mark.parametrize("size", [(5, 7), (1, 1)])
def test_matches_paper_equations(size):
    gam = randomize(GlobalAttentionMechanism(16))
    x = torch.randn(2, 16, *size, dtype=torch.float64)
    torch.testing.assert_close(gam(x), plain_gam(x, gam), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("channels, reduction, k", [(64, 4, 7), (256, 4, 7), (64, 8, 3)])
def test_parameter_count(channels, reduction, k):
    h = channels // reduction
    mlp = 2 * channels * h + h + channels
    convs = 2 * k * k * channels * h + h + channels
    bns = 2 * h + 2 * channels
    assert num_params(GlobalAttentionMechanism(channels, reduction=reduction, kernel_size=k)) == mlp + convs + bns


def test_gates_see_both_full_maps():
    gam = create_attention("gam", 16)
    seen = []
    gam.gate.register_forward_hook(lambda m, a, out: seen.append(("channel", out.shape)))
    gam.spatial_gate.register_forward_hook(lambda m, a, out: seen.append(("spatial", out.shape)))
    gam(torch.randn(2, 16, 3, 5))
    assert seen == [("channel", (2, 16, 3, 5)), ("spatial", (2, 16, 3, 5))]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"reduction": 32}, "reduction=32 leaves 0 hidden units"), ({"kernel_size": 4}, "kernel_size must be an odd")],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GlobalAttentionMechanism(16, **kwargs)
