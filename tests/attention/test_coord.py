import pytest
import torch
import torch.nn.functional as F

from attnlab.attention import create_attention
from attnlab.attention.coord import CoordinateAttention


@pytest.mark.parametrize("channels, mid", [(64, 8), (128, 8), (512, 16), (1024, 32)])
def test_mid_width_and_parameter_count(channels, mid):
    ca = CoordinateAttention(channels)
    assert ca.hidden == mid  # max(8, C // 32)
    # shared 1x1 conv C -> mid with bias, BN(mid), two 1x1 convs mid -> C with bias
    expected = (channels * mid + mid) + 2 * mid + 2 * (mid * channels + channels)
    assert sum(p.numel() for p in ca.parameters()) == expected


def test_matches_direct_formula():
    torch.manual_seed(0)
    c, h, w = 16, 3, 5
    ca = CoordinateAttention(c, reduction=4, min_hidden=2)
    with torch.no_grad():
        for p in ca.parameters():
            p.normal_(0, 0.5)
        ca.bn.running_mean.normal_()
        ca.bn.running_var.uniform_(0.5, 2)
    ca.eval()
    x = torch.randn(2, c, h, w)
    z_h, z_w = x.mean(3), x.mean(2)  # (N, C, H), (N, C, W): pooled along W, along H

    def shared(z):  # conv1 + BN + h-swish on (N, C, L) -> (N, mid, L)
        y = torch.einsum("ncl,mc->nml", z, ca.conv.weight[:, :, 0, 0]) + ca.conv.bias[:, None]
        y = (y - ca.bn.running_mean[:, None]) / torch.sqrt(ca.bn.running_var[:, None] + 1e-5)
        y = y * ca.bn.weight[:, None] + ca.bn.bias[:, None]
        return y * torch.clamp(y + 3, 0, 6) / 6

    def attend(f, conv):
        return torch.sigmoid(torch.einsum("nml,cm->ncl", f, conv.weight[:, :, 0, 0]) + conv.bias[:, None])

    a_h, a_w = attend(shared(z_h), ca.conv_h), attend(shared(z_w), ca.conv_w)
    torch.testing.assert_close(ca(x), x * a_h[:, :, :, None] * a_w[:, :, None, :])


def test_train_mode_bn_pools_statistics_over_both_directions():
    ca = CoordinateAttention(8, reduction=1, act="relu")
    x = torch.randn(2, 8, 4, 6)
    seen = []
    ca.bn.register_forward_hook(lambda m, a, out: seen.append((a[0], out.clone())))  # act is in place
    ca.train()(x)
    bn_in, bn_out = seen[0]
    assert bn_in.shape == (2, 8, 4 + 6, 1)
    torch.testing.assert_close(bn_in[:, :, :4], ca.conv(x.mean(3, keepdim=True)))
    torch.testing.assert_close(bn_in[:, :, 4:], ca.conv(x.mean(2, keepdim=True)).transpose(2, 3))
    torch.testing.assert_close(bn_out, F.batch_norm(bn_in, None, None, ca.bn.weight, ca.bn.bias, training=True))


def test_gate_sees_both_directional_maps():
    ca = create_attention("coord", 64)
    seen = []
    ca.gate.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    ca(torch.randn(2, 64, 6, 9))
    assert seen == [(2, 64, 6, 1), (2, 64, 1, 9)]


def test_activation_and_repr():
    assert isinstance(CoordinateAttention(32).act, torch.nn.Hardswish)
    assert isinstance(CoordinateAttention(32, act="swish").act, torch.nn.SiLU)
    assert "channels=256, hidden=8" in repr(CoordinateAttention(256))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"reduction": 0}, "reduction must be > 0"),
        ({"min_hidden": 0}, "min_hidden must be an integer >= 1"),
        ({"act": "hswish"}, "unknown activation 'hswish'"),
    ],
)
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CoordinateAttention(64, **kwargs)


def test_scoord_parameter_count_and_formula():
    from attnlab.attention.coord import SimpleCoordinateAttention

    c, mid = 64, 10  # 64 // 6
    sca = SimpleCoordinateAttention(c)
    assert sca.hidden == mid
    assert sum(p.numel() for p in sca.parameters()) == 3 * c * mid + mid + 2 * c == 2058
    x = torch.randn(2, c, 5, 7)
    a_h = sca.conv_h(F.silu(sca.conv(x.mean(3, keepdim=True))))
    a_w = sca.conv_w(F.silu(sca.conv(x.mean(2, keepdim=True))))
    torch.testing.assert_close(sca(x), x * torch.sigmoid(a_h + a_w))


@pytest.mark.parametrize("use_conv, expected", [(True, 2 * 3 * 64), (False, 0)])
def test_strip_parameter_count(use_conv, expected):
    strip = create_attention("strip", 64, use_conv=use_conv)
    assert sum(p.numel() for p in strip.parameters()) == expected
    x = torch.randn(2, 64, 5, 7)
    if not use_conv:
        torch.testing.assert_close(strip(x), x * torch.sigmoid(x.mean(3, keepdim=True) + x.mean(2, keepdim=True)))


def test_strip_even_kernel_is_refused():
    with pytest.raises(ValueError, match="kernel_size must be an odd integer"):
        create_attention("strip", 64, kernel_size=4)
