import pytest
import torch
from model_helpers import num_params

from attnlab.attention import AttentionPlacement
from attnlab.attention.eca import eca_kernel_size
from attnlab.models import attention_layers, create_model, default_input_size
from attnlab.models.alexnet import AlexNet

# (in, out, kernel) of the five convs and the seed experiment's fixed ECA kernels
CONVS = [(3, 48, 11), (48, 128, 5), (128, 192, 3), (192, 192, 3), (192, 128, 3)]
SEED_ECA_K = [3, 3, 5, 5, 3]


def expected_alexnet_params(num_classes: int) -> int:
    convs = sum(c_in * c_out * k * k + c_out for c_in, c_out, k in CONVS)
    classifier = (3 * 3 * 128 + 1) * 2048 + (2048 + 1) * 2048 + (2048 + 1) * num_classes
    return convs + classifier


def test_parameter_counts_of_the_seed_experiment():
    assert num_params(create_model("alexnet", num_classes=10)) == expected_alexnet_params(10) == 7_524_042
    assert num_params(create_model("alexnet_eca", num_classes=10)) == 7_524_042 + sum(SEED_ECA_K) == 7_524_061
    adaptive = [eca_kernel_size(c_out) for _, c_out, _ in CONVS]
    assert adaptive == [3, 5, 5, 5, 5]
    assert num_params(create_model("alexnet", num_classes=10, attention="eca")) == 7_524_042 + sum(adaptive)
    assert num_params(create_model("alexnet")) == expected_alexnet_params(1000)


def test_eca_after_each_conv_with_the_seed_kernels():
    layers = attention_layers(create_model("alexnet_eca", num_classes=10))
    assert [layer["path"] for layer in layers] == [f"features.{i}.attention" for i in range(5)]
    assert [layer["k_size"] for layer in layers] == SEED_ECA_K
    assert [layer["channels"] for layer in layers] == [c_out for _, c_out, _ in CONVS]


def test_gate_runs_once_after_the_conv_and_before_its_relu():
    torch.manual_seed(0)
    model = create_model("alexnet_eca", num_classes=10).eval()
    calls, seen = [], {}
    handles = [
        stage.attention.register_forward_hook(lambda m, i, o, s=s: calls.append(s))
        for s, stage in enumerate(model.features)
    ]
    stage = model.features[1]
    handles += [
        stage.conv.register_forward_hook(lambda m, i, o: seen.__setitem__("conv", o.clone())),
        stage.attention.register_forward_pre_hook(lambda m, i: seen.__setitem__("gate_in", i[0].clone())),
        stage.attention.register_forward_hook(lambda m, i, o: seen.__setitem__("gate_out", o.clone())),
        stage.pool.register_forward_pre_hook(lambda m, i: seen.__setitem__("pool_in", i[0].clone())),
    ]
    with torch.no_grad():
        assert model(torch.randn(2, 3, 128, 128)).shape == (2, 10)
    for handle in handles:
        handle.remove()
    assert calls == [0, 1, 2, 3, 4]  # each gate once, in order
    torch.testing.assert_close(seen["gate_in"], seen["conv"])
    torch.testing.assert_close(seen["pool_in"], torch.relu(seen["gate_out"]))
    assert (seen["gate_in"] < 0).any()  # so the gate really sits before the ReLU


def test_feature_map_sizes_and_pools():
    model = create_model("alexnet", num_classes=10)
    assert [stage.pool is not None for stage in model.features] == [True, True, False, False, True]
    x = torch.randn(1, 3, 128, 128)
    sizes = []
    for stage in model.features:
        x = stage(x)
        sizes.append(tuple(x.shape[1:]))
    # conv1: (128 + 2*5 - 11) // 4 + 1 = 32, pool -> 15; conv2 keeps 15, pool -> 7; pool after conv5 -> 3
    assert sizes == [(48, 15, 15), (128, 7, 7), (192, 7, 7), (192, 7, 7), (128, 3, 3)]
    assert default_input_size(model) == (3, 128, 128)


def test_other_input_sizes_raise_a_clear_error():
    model = create_model("alexnet", num_classes=10, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 121, 152)).shape == (2, 10)  # still 3x3 features
        with pytest.raises(ValueError, match="AlexNet expects 128x128 inputs.*got 224x224, which gives 6x6.*resize"):
            model(torch.randn(1, 1, 224, 224))
        with pytest.raises(ValueError, match="got 120x128, which gives 2x3"):
            model(torch.randn(1, 1, 120, 128))
    with pytest.raises(ValueError, match="expected 1 input channels, got 3.*in_chans=3"):
        model(torch.randn(1, 3, 128, 128))


def test_conv_kind_attention_is_refused():
    with pytest.raises(ValueError, match="'sk' is a 'conv' module, which AlexNet cannot take"):
        create_model("alexnet", attention="sk")


@pytest.mark.parametrize("stages", [(1, 2), (5,), (2, 3, 4)])
def test_attention_stages_remove_modules(stages):
    model = create_model("alexnet_eca", num_classes=10, attention_stages=stages)
    assert [stage.attention is not None for stage in model.features] == [s in stages for s in range(1, 6)]
    assert num_params(model) == 7_524_042 + sum(k for s, k in enumerate(SEED_ECA_K, 1) if s in stages)
    with pytest.raises(ValueError, match=r"stages are 1..5"):
        create_model("alexnet", attention="se", attention_stages=(0,))


def test_other_gates_and_explicit_kwargs():
    se = create_model("alexnet", num_classes=10, attention="se", attention_kwargs={"reduction": 8})
    assert [layer["reduction"] for layer in attention_layers(se)] == [8] * 5
    assert se(torch.randn(2, 3, 128, 128)).shape == (2, 10)
    eca = create_model("alexnet_eca", attention_kwargs={"k_size": 7})
    assert [layer["k_size"] for layer in attention_layers(eca)] == [7] * 5
    with pytest.raises(ValueError, match=r"needs one dict per stage \(5\), got 1"):
        AlexNet(attention=AttentionPlacement("eca", stage_kwargs=({"k_size": 3},)))
