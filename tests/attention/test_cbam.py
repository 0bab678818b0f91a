import pytest
import torch

from attnlab.attention.cbam import CBAM


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
