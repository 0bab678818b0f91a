import pytest
import torch
import torchvision
from model_helpers import meta_params, num_params, se_params
from torch import nn

from attnlab.attention import AttentionPlacement
from attnlab.attention.eca import eca_kernel_size
from attnlab.models import attention_layers, create_model, default_input_size
from attnlab.models.mobilenet import InvertedResidual, MobileNetV2, make_divisible

MOBILENET_V2_PARAMS = 3_504_872  # torchvision's published count, 1000 classes
# the paper's Table 2: (output channels, blocks) of the seven bottleneck stages
STAGES = [(16, 1), (24, 2), (32, 3), (64, 4), (96, 3), (160, 3), (320, 1)]
BLOCK_CHANNELS = [c for c, blocks in STAGES for _ in range(blocks)]


def official_eca_k(channels: int) -> int:
    return 1 if channels < 96 else 3  # official ECA-MobileNetV2 code


def attention_calls(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """How often each attention module (by path) runs in one forward of ``x``."""
    calls = {layer["path"]: 0 for layer in attention_layers(model)}
    handles = [
        model.get_submodule(path).register_forward_hook(lambda *_, path=path: calls.__setitem__(path, calls[path] + 1))
        for path in calls
    ]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return calls


def test_parameter_counts():
    assert len(BLOCK_CHANNELS) == 17
    assert meta_params("mobilenet_v2") == MOBILENET_V2_PARAMS
    assert meta_params("mobilenet_v2", num_classes=10) == MOBILENET_V2_PARAMS - 1281 * 990
    official_k = sum(official_eca_k(c) for c in BLOCK_CHANNELS)
    assert official_k == 10 * 1 + 7 * 3
    assert meta_params("eca_mobilenet_v2") == MOBILENET_V2_PARAMS + official_k == 3_504_903
    adaptive_k = sum(eca_kernel_size(c) for c in BLOCK_CHANNELS)
    assert adaptive_k == 13 * 3 + 4 * 5
    assert meta_params("mobilenet_v2", attention="eca") == MOBILENET_V2_PARAMS + adaptive_k
    se_r8 = sum(se_params(c, 8) for c in BLOCK_CHANNELS)
    assert meta_params("se_mobilenet_v2") == MOBILENET_V2_PARAMS + se_r8 == 3_563_492
    se_r16 = sum(se_params(c, 16) for c in BLOCK_CHANNELS)
    assert meta_params("mobilenet_v2", attention="se") == MOBILENET_V2_PARAMS + se_r16


def test_eca_mobilenet_v2_uses_the_official_kernels_and_dropout():
    model = create_model("eca_mobilenet_v2")
    layers = attention_layers(model)
    assert [layer["path"] for layer in layers] == [f"features.{i}.attention" for i in range(1, 18)]
    assert [layer["channels"] for layer in layers] == BLOCK_CHANNELS
    assert [layer["k_size"] for layer in layers] == [official_eca_k(c) for c in BLOCK_CHANNELS]
    assert model.classifier[0].p == 0.25 and create_model("mobilenet_v2").classifier[0].p == 0.2
    generic = attention_layers(create_model("mobilenet_v2", attention="eca"))
    assert [layer["k_size"] for layer in generic] == [eca_kernel_size(c) for c in BLOCK_CHANNELS]


def test_explicit_attention_kwargs_override_the_presets():
    eca = create_model("eca_mobilenet_v2", attention_kwargs={"k_size": 5})
    assert {layer["k_size"] for layer in attention_layers(eca)} == {5}
    se = create_model("se_mobilenet_v2", attention_kwargs={"reduction": 4})
    assert [layer["reduction"] for layer in attention_layers(se)] == [4] * 17
    assert se.features[17].attention.fc1.out_channels == 320 // 4


def test_loads_torchvision_weights_and_matches_its_output():
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v2(weights=None).eval()
    model = create_model("mobilenet_v2").eval()
    assert list(model.state_dict()) == list(reference.state_dict())
    model.load_state_dict(reference.state_dict())  # strict: identical key names and shapes
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["eca_mobilenet_v2", "se_mobilenet_v2"])
def test_torchvision_weights_leave_only_attention_keys_missing(name):
    reference = torchvision.models.mobilenet_v2(weights=None)
    result = create_model(name).load_state_dict(reference.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(".attention." in key for key in result.missing_keys)
    assert {key.split(".attention.")[0] for key in result.missing_keys} == {f"features.{i}" for i in range(1, 18)}


def test_gate_runs_once_between_projection_bn_and_residual_add():
    torch.manual_seed(0)
    model = create_model("se_mobilenet_v2", num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    assert attention_calls(model, x) == {f"features.{i}.attention": 1 for i in range(1, 18)}
    block = model.features[3]  # second block of stage 2: stride 1, 24 -> 24, so it has the residual add
    assert isinstance(block, InvertedResidual) and block.use_res_connect
    seen = {}
    block.conv[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("bn", o.clone()))
    block.attention.register_forward_pre_hook(lambda m, i: seen.__setitem__("att_in", i[0].clone()))
    block.attention.register_forward_hook(lambda m, i, o: seen.__setitem__("att_out", o.clone()))
    block.register_forward_hook(lambda m, i, o: seen.update(block_in=i[0].clone(), out=o.clone()))
    with torch.no_grad():
        model(x)
    assert isinstance(block.conv[-1], nn.BatchNorm2d)
    torch.testing.assert_close(seen["att_in"], seen["bn"])
    torch.testing.assert_close(seen["out"], seen["block_in"] + seen["att_out"])
    assert not torch.allclose(seen["att_out"], seen["att_in"])  # the gate does change the features


def test_plain_model_has_no_attention():
    model = create_model("mobilenet_v2")
    assert attention_layers(model) == [] and all(block.attention is None for block in model.features[1:18])


def test_conv_kind_attention_is_refused():
    with pytest.raises(ValueError, match="'psa' is a 'conv' module, which MobileNetV2 cannot take.*'gate'"):
        create_model("mobilenet_v2", attention="psa")
    with pytest.raises(ValueError, match="'sk' is a 'conv' module, which MobileNetV2 cannot take"):
        create_model("mobilenet_v2", attention="sk")


@pytest.mark.parametrize("stages", [(5, 6, 7), (1,), (2, 4)])
def test_attention_stages_remove_modules(stages):
    with torch.device("meta"):
        model = create_model("eca_mobilenet_v2", attention_stages=stages)
    layers = attention_layers(model)
    kept = [(c, blocks) for stage, (c, blocks) in enumerate(STAGES, 1) if stage in stages]
    assert len(layers) == sum(blocks for _, blocks in kept)
    assert {layer["channels"] for layer in layers} == {c for c, _ in kept}
    assert num_params(model) == MOBILENET_V2_PARAMS + sum(official_eca_k(c) * blocks for c, blocks in kept)
    with pytest.raises(ValueError, match=r"stages are 1..7"):
        create_model("mobilenet_v2", attention="se", attention_stages=(8,))


def test_forward_shapes_width_and_channels():
    model = create_model("mobilenet_v2", num_classes=7, in_chans=1)
    assert model(torch.randn(2, 1, 40, 33)).shape == (2, 7)
    assert default_input_size(model) == (1, 224, 224)
    half = MobileNetV2(num_classes=10, width_mult=0.5, attention="eca")
    assert half(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with torch.device("meta"):
        plain_half = MobileNetV2(width_mult=0.5)
        assert num_params(plain_half) == num_params(torchvision.models.mobilenet_v2(width_mult=0.5))
    assert [make_divisible(c * 0.5) for c, _ in STAGES] == [8, 16, 16, 32, 48, 80, 160]


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"needs one dict per stage \(7\), got 2"):
        MobileNetV2(attention=AttentionPlacement("se", stage_kwargs=({}, {})))
    with pytest.raises(ValueError, match="width_mult must be > 0"):
        MobileNetV2(width_mult=0)
    with pytest.raises(ValueError, match=r"expected a 4D input \(N, 3, H, W\), got a 3D tensor.*add a batch dimension"):
        create_model("mobilenet_v2")(torch.randn(3, 32, 32))
