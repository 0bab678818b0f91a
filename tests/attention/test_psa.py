import pytest
import torch

from attnlab.attention import create_attention
from attnlab.attention.psa import PyramidSplitAttention


def test_published_branch_and_se_counts():
    psa = PyramidSplitAttention(64, 64)
    assert [sum(p.numel() for p in b.parameters()) for b in psa.branches] == [9216, 6400, 6272, 5184]
    assert [p.numel() for p in psa.se[0].parameters()] == [16, 1]  # 17
    assert [p.numel() for p in psa.se[2].parameters()] == [16, 16]  # 32


def test_matches_reference_formulation():
    """Four separate SE calls, softmax over branches, concatenated last branch first."""
    psa = PyramidSplitAttention(32, 32, groups=(1, 2, 4, 8), reduction=4)
    x = torch.randn(2, 32, 6, 6)
    feats = [b(x) for b in psa.branches]
    se = [psa.se(f.mean((2, 3), keepdim=True)) for f in feats]
    weights = torch.softmax(torch.stack(se, 1), dim=1)
    weighted = [f * weights[:, i] for i, f in enumerate(feats)]
    torch.testing.assert_close(psa(x), torch.cat(weighted[::-1], 1))


def test_gate_outputs_softmax_over_branches():
    psa = create_attention("psa", 64, 128, stride=2)
    seen = []
    psa.gate.register_forward_hook(lambda m, a, out: seen.append(out))
    assert psa(torch.randn(2, 64, 8, 8)).shape == (2, 128, 4, 4)
    assert seen[0].shape == (2, 4, 32, 1, 1)
    torch.testing.assert_close(seen[0].sum(1), torch.ones(2, 32, 1, 1))


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((64, 66), {}, "divisible by the 4 branches"),
        ((60, 64), {}, "groups=8 must divide"),
        ((64, 64), {"kernels": (3, 5)}, "same non-zero length"),
        ((64, 64), {"kernels": (3, 4, 7, 9)}, "odd"),
        ((64, 64), {"reduction": 32}, "hidden units"),
    ],
)
def test_bad_hyper_parameters(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        PyramidSplitAttention(*args, **kwargs)
