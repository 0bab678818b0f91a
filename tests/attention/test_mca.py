import pytest
import torch
from plain_ops import num_params, randomize

from attnlab.attention import create_attention
from attnlab.attention.mca import MultidimensionalCollaborativeAttention, mca_kernel_size


def plain_gate(v, branch):
    """One MCA gate on an (N, D, A, B) view, with the 1D conv as an explicit sum over taps."""
    n, d = v.shape[:2]
    flat = v.reshape(n, d, -1)
    avg = flat.mean(2)
    std = torch.sqrt(((flat - avg[:, :, None]) ** 2).mean(2))  # population std (divisor A*B)
    alpha, beta = torch.sigmoid(branch.weight)
    squeezed = 0.5 * (avg + std) + alpha * avg + beta * std  # (N, D)
    taps = branch.conv.weight[0, 0]
    pad = len(taps) // 2
    excited = torch.zeros(n, d, dtype=v.dtype)
    for i in range(d):
        for j, tap in enumerate(taps):
            if 0 <= i + j - pad < d:
                excited[:, i] += tap * squeezed[:, i + j - pad]
    return v * torch.sigmoid(excited)[:, :, None, None]


def plain_mca(x, m):
    x_h = plain_gate(x.permute(0, 2, 1, 3), m.h).permute(0, 2, 1, 3)
    x_w = plain_gate(x.permute(0, 3, 2, 1), m.w).permute(0, 3, 2, 1)
    if m.c is None:
        return (x_h + x_w) / 2
    return (x_h + x_w + plain_gate(x, m.c)) / 3


@pytest.mark.parametrize("no_spatial", [False, True])
@pytest.mark.parametrize("size", [(5, 7), (1, 1)])
def test_matches_paper_equations(size, no_spatial):
    mca = randomize(MultidimensionalCollaborativeAttention(32, no_spatial=no_spatial))
    x = torch.randn(2, 32, *size, dtype=torch.float64)
    torch.testing.assert_close(mca(x), plain_mca(x, mca), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("channels, k", [(2, 1), (4, 1), (64, 3), (128, 3), (256, 5), (512, 5), (2048, 7)])
def test_adaptive_kernel(channels, k):
    assert mca_kernel_size(channels) == k


def test_parameter_count():
    # per gate: k conv taps + 2 mixing weights; kernels 3 (H), 3 (W), adaptive (C)
    assert num_params(MultidimensionalCollaborativeAttention(64)) == 3 * (3 + 2)
    assert num_params(MultidimensionalCollaborativeAttention(256)) == (3 + 2) * 2 + (5 + 2)
    assert num_params(MultidimensionalCollaborativeAttention(256, no_spatial=True)) == (3 + 2) * 2


def test_single_position_gradients_are_finite():
    mca = MultidimensionalCollaborativeAttention(64).train()
    x = torch.randn(2, 64, 1, 1, requires_grad=True)
    mca(x).sum().backward()
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in mca.parameters())


def test_gate_sees_each_branch():
    mca = create_attention("mca", 64)
    seen = []
    mca.gate.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    mca(torch.randn(2, 64, 3, 5))
    assert seen == [(2, 3, 1, 1), (2, 5, 1, 1), (2, 64, 1, 1)]


def test_bad_kernel():
    with pytest.raises(ValueError, match="kernel_size must be an odd integer"):
        MultidimensionalCollaborativeAttention(64, kernel_size=4)
