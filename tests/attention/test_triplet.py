import pytest
import torch
import torch.nn.functional as F

from attnlab.attention.triplet import TripletAttention


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("kernel_size, no_spatial, branches", [(7, False, 3), (7, True, 2), (3, False, 3)])
def test_parameter_count(kernel_size, no_spatial, branches):
    per_branch = 2 * kernel_size**2 + 2  # bias-free conv 2 -> 1 plus BN affine
    assert num_params(TripletAttention(64, kernel_size=kernel_size, no_spatial=no_spatial)) == branches * per_branch


def randomize_bn(module: torch.nn.Module) -> None:
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.5, 0.5)


def branch_scale(branch: torch.nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    """sigmoid(BN_eval(conv(pooled))) for a (N, 2, A, B) max/mean pair."""
    bn = branch.bn
    z = F.conv2d(pooled, branch.conv.weight, padding=branch.conv.kernel_size[0] // 2)
    return torch.sigmoid((z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias)


@pytest.mark.parametrize("no_spatial", [False, True])
def test_matches_three_branch_formula(no_spatial):
    triplet = TripletAttention(6, kernel_size=3, no_spatial=no_spatial).eval()
    randomize_bn(triplet)
    x = torch.randn(2, 6, 4, 5)
    # C-W branch: pool over H, conv on the (C, W) plane.
    s_cw = branch_scale(triplet.cw, torch.stack((x.amax(2), x.mean(2)), 1))  # (N, 1, C, W)
    # H-C branch: pool over W, conv on the (H, C) plane (the official orientation).
    s_hc = branch_scale(triplet.hc, torch.stack((x.amax(3), x.mean(3)), 1).transpose(2, 3))  # (N, 1, H, C)
    outs = [x * s_cw[:, 0, :, None, :], x * s_hc[:, 0].transpose(1, 2)[:, :, :, None]]
    if not no_spatial:
        s_hw = branch_scale(triplet.hw, torch.stack((x.amax(1), x.mean(1)), 1))  # (N, 1, H, W)
        outs.append(x * s_hw)
    torch.testing.assert_close(triplet(x), sum(outs) / len(outs))


def test_gate_sees_each_branch():
    triplet = TripletAttention(6)
    seen = []
    triplet.gate.register_forward_hook(lambda m, a, out: seen.append(tuple(out.shape)))
    triplet(torch.randn(2, 6, 4, 5))
    assert seen == [(2, 1, 6, 5), (2, 1, 4, 6), (2, 1, 4, 5)]


def test_no_spatial_drops_the_branch():
    assert TripletAttention(8, no_spatial=True).hw is None
    assert "kernel_size=5, no_spatial=True" in repr(TripletAttention(8, kernel_size=5, no_spatial=True))


@pytest.mark.parametrize("kernel_size", [0, 4, 7.0, True])
def test_bad_kernel_size(kernel_size):
    with pytest.raises(ValueError, match="kernel_size must be an odd integer >= 1"):
        TripletAttention(8, kernel_size=kernel_size)
