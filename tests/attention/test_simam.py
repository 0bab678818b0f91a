import math

import pytest
import torch

from attnlab.attention import create_attention
from attnlab.attention.simam import SimAM


def test_parameter_free():
    assert sum(p.numel() for p in SimAM(64).parameters()) == 0


@pytest.mark.parametrize("e_lambda", [1e-4, 0.5])
def test_matches_inverse_energy_formula(e_lambda):
    x = torch.randn(2, 3, 4, 5)
    mu = x.mean((2, 3), keepdim=True)
    var = x.var((2, 3), keepdim=True, correction=1)  # sum of squared deviations over the H*W - 1 other neurons
    inv_energy = (x - mu) ** 2 / (4 * (var + e_lambda)) + 0.5
    torch.testing.assert_close(SimAM(3, e_lambda=e_lambda)(x), x * torch.sigmoid(inv_energy))


def test_single_position_is_finite_and_documented():
    x = torch.randn(2, 4, 1, 1)
    torch.testing.assert_close(SimAM(4)(x), x * (1 / (1 + math.exp(-0.5))))


def test_gate_sees_full_map():
    simam = create_attention("simam", 4)
    seen = []
    simam.gate.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    simam(torch.randn(2, 4, 3, 5))
    assert seen == [(2, 4, 3, 5)]


@pytest.mark.parametrize("e_lambda", [0, -1e-4])
def test_bad_e_lambda(e_lambda):
    with pytest.raises(ValueError, match="e_lambda must be > 0"):
        SimAM(8, e_lambda=e_lambda)


def test_e_lambda_in_repr():
    assert "e_lambda=0.01" in repr(SimAM(8, e_lambda=0.01))
