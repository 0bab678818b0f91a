import pytest
import torch

from attnlab.attention import create_attention
from attnlab.attention.se import EffectiveSqueezeExcite, SqueezeExcite


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "channels, reduction, bias, expected", [(24, 4, True, 318), (512, 16, False, 32_768), (256, 16, True, 8_464)]
)
def test_se_parameter_counts(channels, reduction, bias, expected):
    assert num_params(SqueezeExcite(channels, reduction=reduction, bias=bias)) == expected


def test_se_matches_direct_formula():
    se = SqueezeExcite(8, reduction=2, act="swish")
    x = torch.randn(3, 8, 4, 5)
    squeeze = x.mean((2, 3))
    hidden = torch.nn.functional.silu(squeeze @ se.fc1.weight.flatten(1).T + se.fc1.bias)
    excite = torch.sigmoid(hidden @ se.fc2.weight.flatten(1).T + se.fc2.bias)
    torch.testing.assert_close(se(x), x * excite[:, :, None, None])


def test_se_activation_choice():
    assert isinstance(SqueezeExcite(32, act="swish").act, torch.nn.SiLU)
    assert isinstance(SqueezeExcite(32).act, torch.nn.ReLU)
    with pytest.raises(ValueError, match="unknown activation 'swishh'"):
        SqueezeExcite(32, act="swishh")


def test_se_bad_reduction_names_the_fix():
    with pytest.raises(ValueError, match="reduction=16 leaves 0 hidden units for channels=8; use reduction <= 8"):
        SqueezeExcite(8)
    with pytest.raises(ValueError, match="reduction must be > 0"):
        SqueezeExcite(8, reduction=0)


def test_ese_is_one_fc_with_hard_sigmoid():
    ese = EffectiveSqueezeExcite(16)
    assert num_params(ese) == 16 * 16 + 16
    x = torch.randn(2, 16, 3, 3)
    weights = torch.nn.functional.hardsigmoid(ese.fc(x.mean((2, 3), keepdim=True)))
    torch.testing.assert_close(ese(x), x * weights)


def test_registry_builds_se_with_kwargs():
    se = create_attention("se", 64, reduction=4, bias=False)
    assert isinstance(se, SqueezeExcite) and se.hidden == 16 and se.fc1.bias is None
