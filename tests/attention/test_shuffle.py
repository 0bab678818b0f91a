import pytest
import torch

from attnlab.attention import create_attention
from attnlab.attention.shuffle import ShuffleAttention, shuffle_attention_groups


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "channels, groups, expected_groups", [(256, None, 64), (64, None, 32), (64, 8, 8), (2048, None, 64)]
)
def test_parameter_count(channels, groups, expected_groups):
    sa = ShuffleAttention(channels, groups=groups)
    assert sa.groups == expected_groups
    # cweight, cbias, sweight, sbias and the GroupNorm affine, each C / (2G)
    assert num_params(sa) == 6 * channels // (2 * expected_groups)


@pytest.mark.parametrize("channels, groups", [(2, 1), (6, 3), (64, 32), (96, 48), (128, 64), (256, 64)])
def test_default_groups(channels, groups):
    assert shuffle_attention_groups(channels) == groups


def reference(sa: ShuffleAttention, x: torch.Tensor) -> torch.Tensor:
    """The paper's unit, group by group, then a shuffle written as an index map."""
    n, c, h, w = x.shape
    g, half = sa.groups, c // (2 * sa.groups)
    p = lambda t: t.reshape(1, half, 1, 1)  # noqa: E731
    units = []
    for i in range(g):
        x0, x1 = x[:, 2 * half * i : 2 * half * i + half], x[:, 2 * half * i + half : 2 * half * (i + 1)]
        xc = x0 * torch.sigmoid(p(sa.cweight) * x0.mean((2, 3), keepdim=True) + p(sa.cbias))
        mu, var = x1.mean((2, 3), keepdim=True), x1.var((2, 3), keepdim=True, correction=0)
        gn = (x1 - mu) / torch.sqrt(var + sa.norm.eps) * p(sa.norm.weight) + p(sa.norm.bias)
        xs = x1 * torch.sigmoid(p(sa.sweight) * gn + p(sa.sbias))
        units += [xc, xs]
    out = torch.cat(units, dim=1)
    # shuffle with 2 groups: output channel 2j + k is input channel k * C/2 + j
    return out[:, [k * (c // 2) + j for j in range(c // 2) for k in range(2)]]


def test_matches_grouped_formula_and_shuffle():
    sa = ShuffleAttention(24, groups=3)
    for param in sa.parameters():
        param.data.uniform_(-1.5, 1.5)
    x = torch.randn(2, 24, 4, 5)
    torch.testing.assert_close(sa(x), reference(sa, x))


def test_official_init():
    sa = ShuffleAttention(8, groups=2)
    assert [p.flatten().tolist() for p in (sa.cweight, sa.cbias, sa.sweight, sa.sbias)] == [[0, 0], [1, 1]] * 2
    x = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(sa(x), reference(sa, x))
    torch.testing.assert_close(sa(x), (x * torch.sigmoid(torch.tensor(1.0)))[:, [0, 4, 1, 5, 2, 6, 3, 7]])


def test_zero_init_gradients_flow_after_one_step():
    sa = ShuffleAttention(16, groups=2)
    x, target = torch.randn(2, 16, 5, 5), torch.randn(2, 16, 5, 5)

    def grads() -> dict[str, torch.Tensor]:
        sa.zero_grad()
        ((sa(x) - target) ** 2).mean().backward()
        return {name: p.grad.clone() for name, p in sa.named_parameters()}

    first = grads()
    behind_sweight = {"norm.weight", "norm.bias"}
    assert all(torch.equal(first[name], torch.zeros_like(first[name])) for name in behind_sweight)
    assert all(g.abs().sum() > 0 for name, g in first.items() if name not in behind_sweight)
    torch.optim.SGD(sa.parameters(), lr=0.1).step()
    assert all(g.abs().sum() > 0 for g in grads().values())


def test_gate_sees_full_map():
    sa = create_attention("sa", 16)
    seen = []
    sa.gate.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    sa(torch.randn(2, 16, 3, 5))
    assert seen == [(2, 16, 3, 5)] and "groups=8" in repr(sa)


@pytest.mark.parametrize(
    "channels, groups, match",
    [
        (64, 64, "groups=64 needs channels divisible by 2 \\* groups = 128.*use groups=32 or groups=None"),
        (64, 5, "groups=5 needs channels divisible by 2 \\* groups = 10"),
        (64, 0, "groups must be an integer >= 1"),
        (63, None, "even number of channels .* got channels=63"),
    ],
)
def test_bad_hyper_parameters(channels, groups, match):
    with pytest.raises(ValueError, match=match):
        ShuffleAttention(channels, groups=groups)
