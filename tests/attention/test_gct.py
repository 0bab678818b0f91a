import math

import pytest
import torch

from attnlab.attention import create_attention
from attnlab.attention.gct import GatedChannelTransform


@pytest.mark.parametrize("channels", [64, 512])
def test_parameter_count_is_3c(channels):
    assert sum(p.numel() for p in GatedChannelTransform(channels).parameters()) == 3 * channels


def test_official_init_is_identity():
    gct = GatedChannelTransform(8)
    assert (gct.alpha == 1).all() and (gct.gamma == 0).all() and (gct.beta == 0).all()
    x = torch.randn(2, 8, 5, 3)
    torch.testing.assert_close(gct(x), x)


def make_random(channels: int, **kwargs) -> GatedChannelTransform:
    gct = GatedChannelTransform(channels, **kwargs)
    with torch.no_grad():
        gct.alpha.uniform_(0.5, 2)
        gct.gamma.normal_()
        gct.beta.normal_()
    return gct


def test_l2_matches_paper_formula():
    """s_c = alpha_c ||x_c||_2, s_hat_c = sqrt(C) s_c / ||s||_2, y = x (1 + tanh(gamma s_hat + beta))."""
    c, eps = 6, 1e-5
    gct = make_random(c)
    x = torch.randn(3, c, 4, 5)
    alpha, gamma, beta = gct.alpha.flatten(), gct.gamma.flatten(), gct.beta.flatten()
    s = alpha * torch.sqrt((x**2).sum((2, 3)) + eps)
    s_hat = math.sqrt(c) * s / torch.sqrt((s**2).sum(1, keepdim=True) + c * eps)
    gate = 1 + torch.tanh(gamma * s_hat + beta)
    torch.testing.assert_close(gct(x), x * gate[:, :, None, None])


def test_l1_matches_paper_formula():
    c, eps = 4, 1e-5
    gct = make_random(c, mode="l1")
    x = torch.randn(2, c, 3, 3)
    alpha, gamma, beta = gct.alpha.flatten(), gct.gamma.flatten(), gct.beta.flatten()
    s = alpha * x.abs().sum((2, 3))
    s_hat = s / (s.abs().mean(1, keepdim=True) + eps)
    torch.testing.assert_close(gct(x), x * (1 + torch.tanh(gamma * s_hat + beta))[:, :, None, None])


def test_gate_outputs_the_gate_values():
    gct = make_random(8)
    seen = []
    gct.gate.register_forward_hook(lambda m, a, out: seen.append(out))
    x = torch.randn(2, 8, 6, 6)
    y = gct(x)
    assert seen[0].shape == (2, 8, 1, 1)
    assert ((seen[0] > 0) & (seen[0] < 2)).all()
    torch.testing.assert_close(y, x * seen[0])


def test_registry_kwargs_and_repr():
    gct = create_attention("gct", 16, mode="l1", eps=1e-3)
    assert gct.mode == "l1" and "mode='l1', eps=0.001" in repr(gct)


@pytest.mark.parametrize(
    "kwargs, match", [({"mode": "l3"}, "mode must be 'l2' or 'l1'"), ({"eps": 0}, "eps must be > 0")]
)
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GatedChannelTransform(8, **kwargs)
