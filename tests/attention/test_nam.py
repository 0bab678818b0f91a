import torch
from plain_ops import batch_norm_eval, num_params, randomize

from attnlab.attention import create_attention
from attnlab.attention.nam import NormalizationAttention


def plain_nam(x, bn):
    """y = x * sigmoid(w_c * BN(x)_c), w_c = |gamma_c| / sum_j |gamma_j|, channel by channel."""
    normed = batch_norm_eval(x, bn)
    total = sum(abs(g) for g in bn.weight.tolist())
    out = torch.empty_like(x)
    for c in range(x.shape[1]):
        out[:, c] = x[:, c] * torch.sigmoid(abs(bn.weight[c].item()) / total * normed[:, c])
    return out


def test_matches_paper_equations():
    nam = randomize(NormalizationAttention(16))
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(nam(x), plain_nam(x, nam.bn), rtol=1e-10, atol=1e-12)


def test_parameter_count():
    assert num_params(NormalizationAttention(64)) == 2 * 64  # the BN affine only


def test_weights_carry_no_gradient_as_the_official_code():
    nam = randomize(NormalizationAttention(8)).train()
    x = torch.randn(4, 8, 3, 3, dtype=torch.float64)
    nam(x).sum().backward()
    got = nam.bn.weight.grad.clone()
    # the same forward with the weights w held constant
    w = (nam.bn.weight.abs() / nam.bn.weight.abs().sum()).detach().reshape(1, -1, 1, 1)
    nam.bn.weight.grad = None
    (x * torch.sigmoid(w * nam.bn(x))).sum().backward()
    torch.testing.assert_close(got, nam.bn.weight.grad)


def test_gate_sees_full_map():
    nam = create_attention("nam", 8)
    seen = []
    nam.gate.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    nam(torch.randn(2, 8, 3, 5))
    assert seen == [(2, 8, 3, 5)]
