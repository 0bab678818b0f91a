import pytest
import torch
import torch.nn.functional as F

from attnlab.attention import create_attention
from attnlab.attention.bam import BottleneckAttention


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("channels, reduction", [(64, 16), (256, 16), (32, 4)])
def test_parameter_count(channels, reduction):
    h = channels // reduction
    channel_branch = (channels * h + h) + 2 * h + (h * channels + channels)  # Linear, BN1d, Linear
    spatial_branch = (channels * h + h) + 2 * h + 2 * ((h * h * 9 + h) + 2 * h) + (h + 1)  # 1x1, 2 x 3x3, 1x1
    assert num_params(BottleneckAttention(channels, reduction=reduction)) == channel_branch + spatial_branch


def randomize_bn(module: torch.nn.Module) -> None:
    for bn in module.modules():
        if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.5, 0.5)


def bn_eval(bn: torch.nn.Module, v: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    def s(t):
        return t.reshape(shape)

    return (v - s(bn.running_mean)) / torch.sqrt(s(bn.running_var) + bn.eps) * s(bn.weight) + s(bn.bias)


def test_matches_paper_formula():
    bam = BottleneckAttention(16, reduction=4).eval()
    randomize_bn(bam)
    x = torch.randn(2, 16, 9, 10)
    fc1, bn1, _, fc2 = bam.channel_mlp
    mc = torch.relu(bn_eval(bn1, x.mean((2, 3)) @ fc1.weight.T + fc1.bias, (1, -1))) @ fc2.weight.T + fc2.bias
    s = x
    for i, block in enumerate(bam.spatial_convs[:3]):
        conv, bn = block[0], block[1]
        pad_dil = 0 if i == 0 else 4  # 1x1 reduce, then two 3x3 convs with the paper's dilation 4
        s = F.conv2d(s, conv.weight, conv.bias, padding=pad_dil, dilation=max(pad_dil, 1))
        s = torch.relu(bn_eval(bn, s, (1, -1, 1, 1)))
    ms = F.conv2d(s, bam.spatial_convs[3].weight, bam.spatial_convs[3].bias)
    attention = torch.sigmoid(mc[:, :, None, None] + ms)
    torch.testing.assert_close(bam(x), x + x * attention)


def test_gate_sees_full_map():
    bam = create_attention("bam", 32).eval()
    seen = []
    bam.gate.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    bam(torch.randn(2, 32, 6, 7))
    assert seen == [(2, 32, 6, 7)]


def test_resolved_settings():
    bam = BottleneckAttention(64, dilation=2)
    assert bam.hidden == 4 and bam.spatial_convs[1][0].dilation == (2, 2)
    assert "reduction=16, dilation=2" in repr(bam)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dilation": 0}, "dilation must be an integer >= 1"),
        ({"reduction": 64}, "leaves 0 hidden units for channels=32; use reduction <= 32"),
        ({"reduction": -1}, "reduction must be > 0"),
    ],
)
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BottleneckAttention(32, **kwargs)
