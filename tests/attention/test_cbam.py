import pytest
import torch

from attnlab.attention.cbam import CBAM, LightCBAM


def test_parameter_count():
    c, r, k = 64, 16, 7
    mlp = (c * (c // r) + c // r) + (c // r * c + c)
    spatial = 2 * k * k + 2  # bias-free conv + BN affine
    assert sum(p.numel() for p in CBAM(c).parameters()) == mlp + spatial


def test_channel_then_spatial_without_residual():
    cbam = CBAM(32, reduction=8).eval()
    x = torch.randn(2, 32, 5, 6)
    mc = torch.sigmoid(cbam.mlp(x.mean((2, 3), keepdim=True)) + cbam.mlp(x.amax((2, 3), keepdim=True)))
    xc = x * mc
    pooled = torch.cat([xc.max(1, keepdim=True).values, xc.mean(1, keepdim=True)], 1)
    ms = torch.sigmoid(cbam.spatial_bn(cbam.spatial_conv(pooled)))
    torch.testing.assert_close(cbam(x), xc * ms)


def test_spatial_gate_hook_shape():
    cbam = CBAM(32, reduction=8)
    seen = {}
    for key, gate in (("channel", cbam.gate), ("spatial", cbam.spatial_gate)):
        gate.register_forward_hook(lambda m, a, out, key=key: seen.update({key: out.shape}))
    cbam(torch.randn(2, 32, 5, 6))
    assert seen == {"channel": (2, 32, 1, 1), "spatial": (2, 1, 5, 6)}


@pytest.mark.parametrize("kwargs", [{"spatial_kernel": 4}, {"spatial_kernel": 0}, {"reduction": 64}])
def test_bad_hyper_parameters(kwargs):
    with pytest.raises(ValueError):
        CBAM(32, **kwargs)


@pytest.mark.parametrize("bias, expected", [(True, 631), (False, 563)])
def test_lcbam_parameter_count(bias, expected):
    c, r, k = 64, 16, 7
    h = c // r
    hand = 2 * c * h + (h + c if bias else 0) + k * k + 2  # MLP, 1 -> 1 spatial conv without bias, BN affine
    assert hand == expected
    assert sum(p.numel() for p in LightCBAM(c, bias=bias).parameters()) == expected


def test_lcbam_matches_direct_formula():
    lcbam = LightCBAM(16, reduction=4).eval()
    x = torch.randn(2, 16, 5, 6)
    mc = torch.sigmoid(lcbam.mlp(0.5 * x.mean((2, 3), keepdim=True) + 0.5 * x.amax((2, 3), keepdim=True)))
    y = x * mc
    pooled = 0.5 * y.mean(1, keepdim=True) + 0.5 * y.amax(1, keepdim=True)
    ms = torch.sigmoid(lcbam.spatial_bn(lcbam.spatial_conv(pooled)))
    torch.testing.assert_close(lcbam(x), y * ms)


def test_cbam_bias_option():
    assert CBAM(64, bias=False).mlp[0].bias is None
    assert (
        sum(p.numel() for p in CBAM(64).parameters()) - sum(p.numel() for p in CBAM(64, bias=False).parameters()) == 68
    )
