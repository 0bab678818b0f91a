import pytest
import torch

from attnlab.attention.srm import StyleRecalibration


@pytest.mark.parametrize("channels", [64, 256])
def test_parameter_count_is_2c_cfc_plus_2c_bn(channels):
    srm = StyleRecalibration(channels)
    assert sum(p.numel() for p in srm.parameters()) == 2 * channels + 2 * channels
    assert srm.cfc.shape == (channels, 2)


def test_official_init_gives_half_gate():
    """cfc starts at 0, so z = 0 and a fresh BN in eval passes it through: gate = sigmoid(0) = 1/2."""
    x = torch.randn(2, 8, 5, 4)
    torch.testing.assert_close(StyleRecalibration(8).eval()(x), x / 2)


def make_random(channels: int) -> StyleRecalibration:
    srm = StyleRecalibration(channels)
    with torch.no_grad():
        srm.cfc.normal_()
        srm.bn.weight.normal_()
        srm.bn.bias.normal_()
        srm.bn.running_mean.normal_()
        srm.bn.running_var.uniform_(0.5, 2)
    return srm.eval()


def test_matches_style_pooling_and_integration_formula():
    srm = make_random(6)
    x = torch.randn(3, 6, 4, 7)
    mu = x.mean((2, 3))
    sigma = torch.sqrt(x.var((2, 3), unbiased=False) + 1e-5)
    z = srm.cfc[:, 0] * mu + srm.cfc[:, 1] * sigma
    z = (z - srm.bn.running_mean) / torch.sqrt(srm.bn.running_var + srm.bn.eps) * srm.bn.weight + srm.bn.bias
    torch.testing.assert_close(srm(x), x * torch.sigmoid(z)[:, :, None, None])


def test_train_mode_normalises_z_over_the_batch():
    srm = make_random(4).train()
    x = torch.randn(5, 4, 3, 3)
    z = srm.cfc[:, 0] * x.mean((2, 3)) + srm.cfc[:, 1] * torch.sqrt(x.var((2, 3), unbiased=False) + 1e-5)
    z_hat = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5) * srm.bn.weight + srm.bn.bias
    torch.testing.assert_close(srm(x), x * torch.sigmoid(z_hat)[:, :, None, None])


def test_std_is_sqrt_eps_on_a_1x1_map():
    srm = make_random(4)
    with torch.no_grad():
        srm.cfc.copy_(torch.tensor([[0.0, 1.0]] * 4))  # z = sigma only
    x = torch.randn(2, 4, 1, 1, requires_grad=True)
    y = srm(x)
    z = (torch.full((4,), 1e-5**0.5) - srm.bn.running_mean) / torch.sqrt(srm.bn.running_var + 1e-5)
    torch.testing.assert_close(y, x * torch.sigmoid(z * srm.bn.weight + srm.bn.bias)[None, :, None, None])
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(srm.cfc.grad).all()


@pytest.mark.parametrize("eps", [0, -1e-5])
def test_bad_eps(eps):
    with pytest.raises(ValueError, match="eps must be > 0"):
        StyleRecalibration(8, eps=eps)


def test_repr():
    assert repr(StyleRecalibration(8)).startswith("StyleRecalibration(\n  channels=8, eps=1e-05")
