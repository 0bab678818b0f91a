import pytest
import torch
from plain_ops import num_params, randomize

from attnlab.attention import create_attention
from attnlab.attention.sge import SpatialGroupEnhance


def plain_sge(x, weight, bias, groups, eps):
    """The paper's equations, group by group and sample by sample."""
    n, c, h, w = x.shape
    per = c // groups
    out = torch.empty_like(x)
    for b in range(n):
        for g in range(groups):
            xs = x[b, g * per : (g + 1) * per]  # (C/G, H, W): x_i at every position i
            descriptor = xs.mean((1, 2))  # g = mean_i x_i
            c_i = torch.einsum("c,chw->hw", descriptor, xs)  # c_i = g . x_i
            mu = c_i.mean()
            sigma = torch.sqrt(((c_i - mu) ** 2).mean())  # divisor m = H*W, as the paper
            a_i = weight[g] * (c_i - mu) / (sigma + eps) + bias[g]
            out[b, g * per : (g + 1) * per] = xs * torch.sigmoid(a_i)
    return out


@pytest.mark.parametrize("size", [(5, 7), (1, 1), (16, 16)])
def test_matches_paper_equations(size):
    sge = randomize(SpatialGroupEnhance(32, groups=8))
    x = torch.randn(2, 32, *size, dtype=torch.float64)
    want = plain_sge(x, sge.weight.flatten(), sge.bias.flatten(), 8, sge.eps)
    torch.testing.assert_close(sge(x), want, rtol=1e-10, atol=1e-12)


def test_parameter_count_and_official_init():
    sge = SpatialGroupEnhance(256)
    assert sge.groups == 64 and num_params(sge) == 2 * 64  # gamma, beta per group
    assert torch.equal(sge.weight, torch.zeros(1, 64, 1, 1)) and torch.equal(sge.bias, torch.ones(1, 64, 1, 1))


def test_single_position_is_finite_with_finite_gradients():
    sge = SpatialGroupEnhance(64).train()
    x = torch.randn(2, 64, 1, 1, requires_grad=True)
    y = sge(x)
    torch.testing.assert_close(y, x * torch.sigmoid(torch.tensor(1.0)))  # c_hat = 0, a = beta = 1
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(sge.weight.grad).all()


def test_gate_sees_one_map_per_group():
    sge = create_attention("sge", 128, groups=16)
    seen = []
    sge.gate.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    sge(torch.randn(2, 128, 3, 5))
    assert seen == [(2, 16, 3, 5)]


@pytest.mark.parametrize(
    "channels, kwargs, match",
    [
        (96, {"groups": 64}, r"channels=96 is not divisible by groups=64; use a divisor of 96 such as groups=48"),
        (64, {"groups": 0}, "groups must be an integer >= 1"),
        (64, {"eps": 0}, "eps must be > 0"),
    ],
)
def test_bad_settings(channels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpatialGroupEnhance(channels, **kwargs)


def test_resnet50_parameter_count_as_the_paper():
    """The paper lists SGE-ResNet50 at 25.56M parameters like ResNet-50: 2G = 128 per bottleneck, 16 of them."""
    import attnlab

    base = num_params(attnlab.create_model("resnet50"))
    with_sge = num_params(attnlab.create_model("resnet50", attention="sge"))
    assert with_sge - base == 16 * 2 * 64
    assert round(with_sge / 1e6, 2) == round(base / 1e6, 2) == 25.56
