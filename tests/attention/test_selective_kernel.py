import pytest
import torch
import torch.nn.functional as F

from attnlab.attention import attention_kind, create_attention
from attnlab.attention.selective_kernel import SelectiveKernel


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sk_params(cin: int, cout: int, groups: int, d: int, m: int = 2) -> int:
    """M grouped 3x3 convs + BN, fuse FC (no bias) + BN, M select FCs (no bias)."""
    return m * (9 * cin * cout // groups + 2 * cout) + (cout * d + 2 * d) + m * d * cout


@pytest.mark.parametrize(
    "args, kwargs, hidden",
    [
        ((64, 64), {}, 32),  # d = max(64 / 16, L = 32)
        ((256, 256), {}, 32),  # SKNet-50 stage 2: d = max(16, 32)
        ((1024, 1024), {}, 64),  # SKNet-50 stage 4: d = 1024 / 16
        ((64, 128), {"groups": 8, "reduction": 2, "min_hidden": 4}, 64),
    ],
)
def test_hidden_width_and_parameter_count(args, kwargs, hidden):
    sk = SelectiveKernel(*args, **kwargs)
    assert sk.hidden == hidden
    assert num_params(sk) == sk_params(*args, kwargs.get("groups", 32), hidden)


def test_paper_configuration_count():
    # 256 -> 256, G=32, M=2, d=32: 2*(18432 + 512) + (8192 + 64) + 16384
    assert num_params(SelectiveKernel(256, 256)) == 62_528


def test_three_branches_use_dilations_1_2_3():
    sk = SelectiveKernel(32, 32, kernels=(3, 5, 7))
    assert sk.dilations == (1, 2, 3)
    assert [b[0].kernel_size for b in sk.branches] == [(3, 3)] * 3
    assert num_params(sk) == sk_params(32, 32, 32, 32, m=3)


def test_matches_split_fuse_select_formula():
    torch.manual_seed(0)
    sk = SelectiveKernel(8, 12, stride=2, groups=4, reduction=2, min_hidden=4, act="swish")
    with torch.no_grad():
        for p in sk.parameters():
            p.normal_(0, 0.5)
        for b in sk.buffers():
            if b.is_floating_point():
                b.uniform_(0.5, 1.5)
    sk.eval()
    x = torch.randn(3, 8, 7, 6)

    def bn(t, m):
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, eps=m.eps)

    u1 = F.silu(bn(F.conv2d(x, sk.branches[0][0].weight, stride=2, padding=1, groups=4), sk.branches[0][1]))
    u2 = F.silu(bn(F.conv2d(x, sk.branches[1][0].weight, stride=2, padding=2, dilation=2, groups=4), sk.branches[1][1]))
    s = (u1 + u2).mean((2, 3))  # (N, C)
    z = F.silu(bn((s @ sk.fuse[0].weight[:, :, 0, 0].T)[:, :, None, None], sk.fuse[1]))[:, :, 0, 0]  # (N, d)
    a_weight, b_weight = sk.select.weight[:12, :, 0, 0], sk.select.weight[12:, :, 0, 0]  # A, B: (C, d)
    ea, eb = torch.exp(z @ a_weight.T), torch.exp(z @ b_weight.T)
    a, b = ea / (ea + eb), eb / (ea + eb)
    want = u1 * a[:, :, None, None] + u2 * b[:, :, None, None]
    torch.testing.assert_close(sk(x), want)


def test_gate_is_softmax_across_branches():
    sk = create_attention("sk", 64, 128, stride=2)
    assert attention_kind("sk") == "conv"
    seen = []
    sk.gate.register_forward_hook(lambda m, a, out: seen.append(out))
    assert sk(torch.randn(2, 64, 9, 8)).shape == (2, 128, 5, 4)
    assert seen[0].shape == (2, 2, 128, 1, 1)
    torch.testing.assert_close(seen[0].sum(1), torch.ones(2, 128, 1, 1))


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((48, 48), {}, "groups=32 must divide in_channels=48 and out_channels=48; pass groups=16"),
        ((64, 80), {}, "groups=32 must divide in_channels=64 and out_channels=80; pass groups=16"),
        ((64, 64), {"kernels": (3,)}, "at least 2 sizes"),
        ((64, 64), {"kernels": (3, 4)}, "odd integer >= 3"),
        ((64, 64), {"kernels": (1, 3)}, "odd integer >= 3"),
        ((64, 64), {"groups": 0}, "groups must be an integer >= 1"),
        ((64, 64), {"min_hidden": 0}, "min_hidden must be an integer >= 1"),
        ((64, 64), {"reduction": 0}, "reduction must be > 0"),
        ((64, 64, 0), {}, "stride must be an integer >= 1"),
    ],
)
def test_bad_hyper_parameters(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SelectiveKernel(*args, **kwargs)
