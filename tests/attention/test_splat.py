import pytest
import torch

from attnlab.attention import create_attention
from attnlab.attention.splat import SplitAttention


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("radix, groups, expected", [(2, 1, 86_880), (2, 2, 43_872), (1, 1, 82_400)])
def test_parameter_count(radix, groups, expected):
    cin, cout = 64, 128
    d = max(cin * radix // 4, 32)
    conv = 9 * cin * cout // groups + 2 * radix * cout  # grouped 3x3 conv (groups*radix groups) + BN
    fc1 = cout * d // groups + d + 2 * d  # grouped 1x1 conv with bias + BN
    fc2 = d * radix * cout // groups + radix * cout
    assert conv + fc1 + fc2 == expected
    splat = SplitAttention(cin, cout, radix=radix, groups=groups)
    assert splat.hidden == d and num_params(splat) == expected


def test_weights_sum_to_one_across_the_splits():
    splat = SplitAttention(64, 64, radix=4, groups=2).eval()
    seen = []
    splat.gate.register_forward_hook(lambda mod, args, out: seen.append(out))
    splat(torch.randn(2, 64, 5, 5))
    assert seen[0].shape == (2, 4, 64, 1, 1)
    torch.testing.assert_close(seen[0].sum(1), torch.ones(2, 64, 1, 1))


def test_impossible_groups_are_refused_at_construction():
    with pytest.raises(ValueError, match="groups \\* radix = 4 must divide in_channels=6"):
        create_attention("splat", 6, 64, groups=2)
    with pytest.raises(ValueError, match="groups=3 must divide out_channels=64"):
        create_attention("splat", 48, 64, groups=3, radix=1)
