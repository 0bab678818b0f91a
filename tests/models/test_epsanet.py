import pytest
import torch

from attnlab.attention import get_attention_info
from attnlab.models import attention_layers, create_model
from attnlab.models.epsanet import epsanet50

KERNELS, GROUPS = (3, 5, 7, 9), (1, 4, 8, 16)


def psa_params(planes: int) -> int:
    """EPSANet's PSA on ``planes`` channels: 4 grouped convs to planes/4 each, one shared SE (r=16, biased)."""
    split = planes // 4
    branches = sum(planes * split * k * k // g for k, g in zip(KERNELS, GROUPS))
    hidden = split // 16
    return branches + 2 * split * hidden + hidden + split


def epsanet_params(resnet_params: int, blocks: list[int]) -> int:
    """A ResNet's count with each bottleneck's 3x3 conv (planes -> planes) swapped for a PSA module."""
    planes = (64, 128, 256, 512)
    return resnet_params + sum(n * (psa_params(p) - 9 * p * p) for n, p in zip(blocks, planes))


def test_epsanet50_parameters():
    with torch.device("meta"):
        model = create_model("epsanet50")
    params = sum(p.numel() for p in model.parameters())
    assert params == epsanet_params(25_557_032, [3, 4, 6, 3]) == 22_561_715
    bn_stats = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    assert params + bn_stats == 22_614_835


def test_epsanet101_parameters():
    with torch.device("meta"):
        model = create_model("epsanet101")
    assert sum(p.numel() for p in model.parameters()) == epsanet_params(44_549_160, [3, 4, 23, 3]) == 38_900_279


def test_every_bottleneck_conv2_is_psa_with_the_block_stride():
    psa_cls = get_attention_info("psa").cls
    with torch.device("meta"):
        model = create_model("epsanet50")
    layers = attention_layers(model)
    assert [layer["path"] for layer in layers] == [
        f"layer{s}.{b}.conv2" for s, n in enumerate([3, 4, 6, 3], 1) for b in range(n)
    ]
    assert all(isinstance(model.get_submodule(layer["path"]), psa_cls) for layer in layers)
    assert all(layer["kernels"] == list(KERNELS) and layer["groups"] == list(GROUPS) for layer in layers)
    strides = [layer["stride"] for layer in layers]
    assert strides == [1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1]


def test_forward_and_direct_builder():
    model = create_model("epsanet50", num_classes=10, attention_stages=(4,))
    assert len(attention_layers(model)) == 3
    assert model(torch.randn(2, 3, 64, 48)).shape == (2, 10)
    assert len(attention_layers(epsanet50(num_classes=10))) == 16  # calling the builder directly keeps PSA


def test_preset_attention_cannot_be_swapped():
    with pytest.raises(ValueError, match="already comes with attention 'psa'"):
        create_model("epsanet50", attention="se")
