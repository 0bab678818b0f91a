import pytest
import torch
import torchvision
from model_helpers import meta_params, num_params, se_params
from torch import nn

import attnlab
from attnlab.attention import AttentionPlacement, attention_kind, get_attention_info
from attnlab.attention.eca import eca_kernel_size
from attnlab.models import attention_layers, create_model
from attnlab.models.resnet import BasicBlock, Bottleneck, ResNet

# ResNet-50 stages: (blocks, output channels)
RESNET50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]


@pytest.mark.parametrize(
    "name, expected",
    [  # torchvision's published counts
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet50", 25_557_032),
        ("resnet101", 44_549_160),
        ("resnet152", 60_192_808),
        ("resnext50_32x4d", 25_028_904),
    ],
)
def test_parameter_counts_match_torchvision(name, expected):
    assert meta_params(name) == expected


def test_se_resnet50_adds_one_se_per_block():
    added = sum(blocks * se_params(c) for blocks, c in RESNET50_STAGES)
    assert added == 2_530_992
    assert meta_params("se_resnet50") == 25_557_032 + added == 28_088_024


def test_eca_resnet50_adds_k_weights_per_block():
    added = sum(blocks * eca_kernel_size(c) for blocks, c in RESNET50_STAGES)
    assert added == 3 * 5 + 4 * 5 + 6 * 5 + 3 * 7
    assert meta_params("eca_resnet50") == 25_557_032 + added == 25_557_118
    assert meta_params("eca_resnet50", num_classes=17) == 25_557_118 - 2049 * (1000 - 17) == 23_542_951


def test_eca_kernels_recorded_per_layer():
    with torch.device("meta"):
        layers = attention_layers(create_model("eca_resnet50"))
    assert [layer["k_size"] for layer in layers] == [5] * 13 + [7] * 3
    assert [layer["channels"] for layer in layers] == [c for blocks, c in RESNET50_STAGES for _ in range(blocks)]
    assert layers[0]["path"] == "layer1.0.attention" and layers[-1]["path"] == "layer4.2.attention"


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_loads_torchvision_weights_and_matches_its_output(name):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    model = create_model(name).eval()
    model.load_state_dict(reference.state_dict())  # strict: identical key names and shapes
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))


@pytest.mark.parametrize("name", ["se_resnet18", "cbam_resnet50", "eca_resnext50_32x4d"])
def test_torchvision_weights_leave_only_attention_keys_missing(name):
    reference = getattr(torchvision.models, name.split("_", 1)[1])(weights=None)
    model = create_model(name)
    result = model.load_state_dict(reference.state_dict(), strict=False)
    # BatchNorm fills in a missing num_batches_tracked itself, so torch never reports it missing
    attention_keys = {k for k in model.state_dict() if ".attention." in k and "num_batches_tracked" not in k}
    assert attention_keys and set(result.missing_keys) == attention_keys
    assert result.unexpected_keys == []


def test_gate_sits_between_last_bn_and_the_addition():
    model = create_model("se_resnet50", num_classes=10).eval()
    block = model.layer2[0]
    seen = {}
    block.bn3.register_forward_hook(lambda m, i, o: seen.__setitem__("bn3", o.clone()))
    block.attention.register_forward_pre_hook(lambda m, i: seen.__setitem__("att_in", i[0].clone()))
    block.attention.register_forward_hook(lambda m, i, o: seen.__setitem__("att_out", o.clone()))
    block.downsample.register_forward_hook(lambda m, i, o: seen.__setitem__("identity", o.clone()))
    block.register_forward_hook(lambda m, i, o: seen.__setitem__("out", o.clone()))
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(seen["att_in"], seen["bn3"])
    torch.testing.assert_close(seen["out"], torch.relu(seen["att_out"] + seen["identity"]))


def test_basic_block_gate_after_bn2():
    model = create_model("se_resnet18")
    block = model.layer3[0]
    assert isinstance(block, BasicBlock) and block.attention.channels == 256
    assert list(dict(block.named_children())).index("attention") > list(dict(block.named_children())).index("bn2")


def test_conv_attention_replaces_the_strided_3x3_conv():
    psa_cls = get_attention_info("psa").cls
    bottleneck = create_model("resnet50", attention="psa").layer2[0]
    assert isinstance(bottleneck, Bottleneck) and isinstance(bottleneck.conv2, psa_cls)
    assert (bottleneck.conv2.in_channels, bottleneck.conv2.out_channels, bottleneck.conv2.stride) == (128, 128, 2)
    assert bottleneck.attention is None
    basic = create_model("resnet18", attention="psa").layer2[0]
    assert isinstance(basic.conv1, psa_cls) and isinstance(basic.conv2, nn.Conv2d)
    assert (basic.conv1.in_channels, basic.conv1.out_channels, basic.conv1.stride) == (64, 128, 2)


def test_plain_model_has_no_attention_modules():
    model = create_model("resnet18")
    assert attention_layers(model) == [] and all(block.attention is None for block in model.layer1)
    assert attention_layers(create_model("resnet18", attention=None)) == []


@pytest.mark.parametrize("stages, expected", [((1, 2, 3), 13), ((4,), 3), ((2, 3), 10)])
def test_attention_stages_remove_modules(stages, expected):
    with torch.device("meta"):
        model = create_model("resnet50", attention="se", attention_stages=stages)
    layers = attention_layers(model)
    assert len(layers) == expected
    assert {int(layer["path"][5]) for layer in layers} == set(stages)
    removed = sum(blocks * se_params(c) for stage, (blocks, c) in enumerate(RESNET50_STAGES, 1) if stage not in stages)
    assert num_params(model) == 28_088_024 - removed


@pytest.mark.parametrize("attention", attnlab.list_attentions())
def test_every_attention_builds_into_resnet18_and_runs(attention):
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, attention=attention)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    layers = attention_layers(model)
    assert len(layers) == 8  # one per BasicBlock
    assert {layer["kind"] for layer in layers} == {attention_kind(attention)}
    slot = "conv1" if attention_kind(attention) == "conv" else "attention"
    assert [layer["path"] for layer in layers] == [f"layer{s}.{b}.{slot}" for s in range(1, 5) for b in range(2)]
    assert [layer["stage"] for layer in layers] == [s for s in range(1, 5) for _ in range(2)]


def test_attention_given_as_a_class_and_with_kwargs():
    se_cls = get_attention_info("se").cls
    model = create_model("resnet18", attention=se_cls, attention_kwargs={"reduction": 4})
    assert [layer["reduction"] for layer in attention_layers(model)] == [4] * 8
    assert model.layer1[0].attention.fc1.out_channels == 64 // 4


def test_forward_shapes():
    model = create_model("resnet18").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
    odd = create_model("eca_resnet18", num_classes=7, in_chans=1)
    assert odd(torch.randn(2, 1, 97, 75)).shape == (2, 7)


def test_zero_init_residual_zeroes_last_bn_of_every_block():
    model = create_model("se_resnet50", zero_init_residual=True)
    blocks = [b for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
    assert len(blocks) == 16 and all(torch.count_nonzero(b.bn3.weight) == 0 for b in blocks)
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in create_model("resnet18", zero_init_residual=True).layer1)
    assert torch.count_nonzero(create_model("resnet18").layer1[0].bn2.weight) == 64


def test_gate_modules_keep_their_own_init_and_convs_are_he_normal():
    torch.manual_seed(0)
    model = ResNet(BasicBlock, [1, 1, 1, 1], attention=AttentionPlacement("se", {"reduction": 4}))
    fc1 = model.layer4[0].attention.fc1
    default_bound = 1 / fc1.in_channels**0.5  # PyTorch's default conv init is uniform within this bound
    assert fc1.weight.abs().max() <= default_bound
    he_std = (2 / (9 * 512)) ** 0.5  # He normal, fan-out, of a 3x3 conv with 512 outputs
    assert model.layer4[0].conv2.weight.std().item() == pytest.approx(he_std, rel=0.02)


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'resnet5O'. Did you mean .*'resnet50'"):
        create_model("resnet5O")
    with pytest.raises(ValueError, match="unknown attention 'sse'.*Did you mean"):
        create_model("resnet18", attention="sse")
    with pytest.raises(ValueError, match=r"attention_stages \(0, 5\).*stages are 1..4"):
        create_model("resnet18", attention="se", attention_stages=(0, 5))
    with pytest.raises(
        ValueError, match="already comes with attention 'se'.*create_model\\('resnet50', attention='eca'\\)"
    ):
        create_model("se_resnet50", attention="eca")
    with pytest.raises(ValueError, match="layers must be 4 block counts"):
        ResNet(Bottleneck, [3, 4, 6])
    with pytest.raises(ValueError, match="BasicBlock only supports groups=1"):
        ResNet(BasicBlock, [2, 2, 2, 2], groups=32, width_per_group=4)
    with pytest.raises(ValueError, match="expected 3 input channels, got 1.*in_chans=1"):
        create_model("resnet18")(torch.randn(1, 1, 32, 32))
