import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.attention import create_attention
from attnlab.attention.gather_excite import GatherExcite


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomize(module: torch.nn.Module) -> torch.nn.Module:
    """Random weights and BN statistics, then eval mode, so formulas see non-trivial values."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
        for b in module.buffers():
            if b.is_floating_point():
                b.uniform_(0.5, 1.5)
    return module.eval()


@pytest.mark.parametrize(
    "channels, kwargs, expected",
    [
        (64, {}, 0),
        (16, {"extent": 4, "extra_params": True}, 2 * (9 * 16 + 2 * 16)),  # log2(4) = 2 depthwise conv + BN
        (
            32,
            {"extent": 8, "extra_params": True, "use_mlp": True, "reduction": 4},
            3 * (9 * 32 + 2 * 32) + (32 * 8 + 8) + (8 * 32 + 32),
        ),
        (8, {"extra_params": True, "feat_size": (5, 3)}, 8 * 5 * 3 + 2 * 8),  # global depthwise conv + BN
        (64, {"use_mlp": True}, (64 * 4 + 4) + (4 * 64 + 64)),
    ],
)
def test_parameter_counts(channels, kwargs, expected):
    assert num_params(GatherExcite(channels, **kwargs)) == expected


def test_default_is_global_parameter_free_gate():
    x = torch.randn(2, 6, 4, 3)
    torch.testing.assert_close(GatherExcite(6)(x), x * torch.sigmoid(x.mean((2, 3), keepdim=True)))


@pytest.mark.parametrize("extent", [2, 4])
@pytest.mark.parametrize("size", [(5, 7), (1, 1), (8, 8)])
def test_extent_average_gather_upsampled_nearest(extent, size):
    """Gathered cell (p, q) averages rows p*e-(e-1) .. p*e+(e-1) (inside the map); pixel (i, j) reads cell
    (floor(i * H' / H), floor(j * W' / W))."""
    h, w = size
    x = torch.randn(2, 3, h, w)
    rows, cols = math.ceil(h / extent), math.ceil(w / extent)
    want = torch.empty_like(x)
    for i in range(h):
        for j in range(w):
            p, q = i * rows // h, j * cols // w
            r0, r1 = max(p * extent - extent + 1, 0), min(p * extent + extent, h)
            c0, c1 = max(q * extent - extent + 1, 0), min(q * extent + extent, w)
            want[:, :, i, j] = x[:, :, i, j] * torch.sigmoid(x[:, :, r0:r1, c0:c1].mean((2, 3)))
    torch.testing.assert_close(GatherExcite(3, extent=extent)(x), want)


def test_global_theta_is_full_size_depthwise_conv_and_bn():
    ge = randomize(GatherExcite(4, extra_params=True, feat_size=(3, 5)))
    x = torch.randn(2, 4, 3, 5)
    conv, bn = ge.gather
    z = (x * conv.weight[:, 0]).sum((2, 3))
    z = (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(ge(x), x * torch.sigmoid(z)[:, :, None, None])


def test_theta_strided_depthwise_convs_then_mlp():
    ge = randomize(GatherExcite(8, extent=4, extra_params=True, use_mlp=True, reduction=2, act="swish"))
    x = torch.randn(2, 8, 7, 6)
    conv1, bn1, act, conv2, bn2 = ge.gather
    assert isinstance(act, torch.nn.SiLU) and conv1.stride == (2, 2) and conv1.groups == 8

    def dw_bn(t, conv, bn):
        t = F.conv2d(t, conv.weight, stride=2, padding=1, groups=8)
        return F.batch_norm(t, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps)

    g = dw_bn(F.silu(dw_bn(x, conv1, bn1)), conv2, bn2)
    assert g.shape[-2:] == (2, 2)
    fc1, _, fc2 = ge.mlp
    hidden = F.silu(torch.einsum("nchw,kc->nkhw", g, fc1.weight[:, :, 0, 0]) + fc1.bias[:, None, None])
    g = torch.einsum("nkhw,ck->nchw", hidden, fc2.weight[:, :, 0, 0]) + fc2.bias[:, None, None]
    rows, cols = torch.arange(7) * 2 // 7, torch.arange(6) * 2 // 6
    torch.testing.assert_close(ge(x), x * torch.sigmoid(g[:, :, rows][:, :, :, cols]))


def test_resolved_hidden_and_repr():
    ge = create_attention("ge", 64, extent=2, use_mlp=True, reduction=8)
    assert ge.hidden == 8 and "extent=2" in repr(ge) and "hidden=8" in repr(ge)
    assert GatherExcite(64).hidden is None and "extent=global" in repr(GatherExcite(64))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"extent": 3}, "extent must be 0 \\(global\\) or a power of 2"),
        ({"extent": 1}, "extent must be 0"),
        ({"extent": -2}, "extent must be 0"),
        ({"extent": 2.0}, "extent must be 0"),
        ({"extra_params": True}, "pass feat_size=\\(H, W\\)"),
        ({"extent": 2, "feat_size": 7}, "feat_size is only used by the global GE-theta"),
        ({"extra_params": True, "feat_size": (7, 0)}, "feat_size must be an integer >= 1"),
        ({"use_mlp": True, "reduction": 128}, "use reduction <= 64"),
        ({"use_mlp": True, "act": "relux"}, "unknown activation"),
    ],
)
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GatherExcite(64, **kwargs)


def test_global_theta_rejects_other_sizes():
    ge = GatherExcite(8, extra_params=True, feat_size=7)
    assert ge(torch.randn(2, 8, 7, 7)).shape == (2, 8, 7, 7)
    with pytest.raises(ValueError, match=r"expected a 7x7 feature map .*, got 6x7; build .* feat_size=\(6, 7\)"):
        ge(torch.randn(1, 8, 6, 7))


@pytest.mark.slow
def test_extent_variant_exports_to_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from attnlab.export import export_onnx, onnx_max_error

    ge = randomize(GatherExcite(16, extent=2, extra_params=True, use_mlp=True, reduction=4))
    path = export_onnx(ge, torch.randn(2, 16, 7, 5), tmp_path / "ge.onnx")
    abs_err, _ = onnx_max_error(path, ge, torch.randn(2, 16, 7, 5))
    assert abs_err < 1e-4
