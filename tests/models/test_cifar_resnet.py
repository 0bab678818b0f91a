import pytest
import torch

from attnlab.attention.eca import eca_kernel_size
from attnlab.models import attention_layers, create_model, default_input_size
from attnlab.models.cifar_resnet import CifarResNet, ZeroPadShortcut

WIDTHS = (16, 32, 64)


def cifar_resnet_params(depth: int, num_classes: int) -> int:
    """He et al. 2016, Sec. 4.2: 3x3 stem to 16, 3 stages of n two-conv blocks, option-A (free) shortcuts."""
    n = (depth - 2) // 6
    total = 9 * 3 * 16 + 2 * 16  # stem conv + BN
    in_channels = 16
    for width in WIDTHS:
        total += 9 * in_channels * width + 9 * width * width + 4 * width  # first block: two convs, two BNs
        total += (n - 1) * (18 * width * width + 4 * width)
        in_channels = width
    return total + 64 * num_classes + num_classes


@pytest.mark.parametrize(
    "name, depth, published", [("resnet20", 20, 269_722), ("resnet32", 32, 464_154), ("resnet56", 56, 853_018)]
)
def test_parameter_counts(name, depth, published):
    model = create_model(name, num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == cifar_resnet_params(depth, 10) == published


def test_stage_shapes_and_output():
    model = create_model("resnet20", num_classes=10)
    shapes = {}
    for stage in ("layer1", "layer2", "layer3"):
        getattr(model, stage).register_forward_hook(lambda m, i, o, s=stage: shapes.__setitem__(s, tuple(o.shape)))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert shapes == {"layer1": (2, 16, 32, 32), "layer2": (2, 32, 16, 16), "layer3": (2, 64, 8, 8)}
    assert default_input_size(model) == (3, 32, 32)
    assert [len(getattr(model, s)) for s in ("layer1", "layer2", "layer3")] == [3, 3, 3]


def test_odd_input_sizes_and_channels():
    model = create_model("resnet20", num_classes=4, in_chans=1)
    assert model(torch.randn(2, 1, 33, 31)).shape == (2, 4)
    assert default_input_size(model) == (1, 32, 32)


def test_option_a_shortcut_subsamples_and_zero_pads():
    shortcut = create_model("resnet20").layer2[0].downsample
    assert isinstance(shortcut, ZeroPadShortcut) and list(shortcut.parameters()) == []
    x = torch.randn(2, 16, 9, 7)
    y = shortcut(x)
    assert y.shape == (2, 32, 5, 4)
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0


@pytest.mark.parametrize("attention", ["se", "eca"])
def test_attention_variants(attention):
    model = create_model(f"{attention}_resnet20", num_classes=10)
    layers = attention_layers(model)
    assert [layer["channels"] for layer in layers] == [w for w in WIDTHS for _ in range(3)]
    if attention == "eca":
        assert [layer["k_size"] for layer in layers] == [eca_kernel_size(w) for w in WIDTHS for _ in range(3)]
        assert {eca_kernel_size(w) for w in WIDTHS} == {3}  # |(log2 C + 1) / 2|_odd for C = 16, 32, 64
        added = 9 * 3
    else:
        added = 3 * sum(2 * w * (w // 16) + w // 16 + w for w in WIDTHS)
    assert sum(p.numel() for p in model.parameters()) == 269_722 + added
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert len(attention_layers(create_model(f"{attention}_resnet56"))) == 3 * 9


def test_attention_stages():
    layers = attention_layers(create_model("resnet32", attention="se", attention_stages=[3]))
    assert [layer["path"] for layer in layers] == [f"layer3.{b}.attention" for b in range(5)]
    with pytest.raises(ValueError, match=r"stages are 1..3"):
        create_model("resnet20", attention="se", attention_stages=[4])


def test_bad_depth_and_preset_conflict():
    with pytest.raises(ValueError, match="depth must be 6n \\+ 2"):
        CifarResNet(21)
    with pytest.raises(ValueError, match="already comes with attention 'eca'"):
        create_model("eca_resnet20", attention="se")
    with pytest.raises(ValueError, match="cannot shrink"):
        ZeroPadShortcut(32, 16, 2)
