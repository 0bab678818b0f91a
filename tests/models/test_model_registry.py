import pytest
import torch
from torch import nn

import attnlab
from attnlab.attention import AttentionPlacement, attention_stages, is_attention
from attnlab.models import create_model, default_input_size, get_model_info, list_models, register_model

NAMED = {
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    *(f"{a}_resnet{d}" for a in ("se", "eca") for d in (18, 34, 50, 101, 152)),
    "cbam_resnet18",
    "cbam_resnet34",
    "cbam_resnet50",
    "se_resnext50_32x4d",
    "eca_resnext50_32x4d",
    *(f"{a}resnet{d}" for a in ("", "se_", "eca_") for d in (20, 32, 56)),
    "epsanet50",
    "epsanet101",
}


def test_named_builders_are_registered():
    assert set(list_models()) >= NAMED and attnlab.list_models() == list_models()
    assert list_models() == sorted(list_models())


def test_filter_by_preset_attention():
    eca = list_models(attention="eca")
    assert {"eca_resnet50", "eca_resnet20", "eca_resnext50_32x4d"} <= set(eca)
    assert all("eca" in name for name in eca) and "alexnet_eca" in eca
    assert {"epsanet50", "epsanet101"} <= set(list_models(attention="psa"))


def test_create_model_records_name_and_input_size():
    model = create_model("resnet20", num_classes=10)
    assert model.model_name == "resnet20" and default_input_size(model) == (3, 32, 32)
    assert get_model_info("resnet18").input_size == (3, 224, 224)
    assert default_input_size(create_model("resnet18", in_chans=4)) == (4, 224, 224)
    assert create_model("resnet18", num_classes=5).fc.out_features == 5


def test_preset_attention_given_again_is_accepted():
    model = create_model("se_resnet20", attention="se", attention_kwargs={"reduction": 8})
    assert model.layer1[0].attention.fc1.out_channels == 16 // 8


def test_errors():
    with pytest.raises(ValueError, match="unknown model 'resnet2'.*Did you mean.*'resnet20'"):
        create_model("resnet2")
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1, got 0"):
        create_model("resnet20", num_classes=0)
    with pytest.raises(ValueError, match="in_chans must be an integer >= 1, got 0"):
        create_model("resnet20", in_chans=0)
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet18")(lambda **kw: nn.Identity())
    with pytest.raises(
        ValueError, match=r"already comes with attention 'se'.*create_model\('resnet18', attention='eca'\)"
    ):
        create_model("se_resnet18", attention="eca")
    with pytest.raises(ValueError, match=r"create_model\('alexnet', attention='se'\)"):
        create_model("alexnet_eca", attention="se")


@pytest.mark.parametrize("attention", ["se", "eca", "cbam"])
def test_backbone_gates_scale_in_place_at_inference_only(attention):
    model = create_model("resnet20", num_classes=10, attention=attention).eval()
    assert all(m.inplace for m in model.modules() if is_attention(m))
    reference = create_model("resnet20", num_classes=10, attention=attention, attention_kwargs={"inplace": False})
    reference.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference.eval()(x))
    model.train()(x).sum().backward()  # autograd falls back to out-of-place products


def test_placement_object_and_registry_presets():
    placement = AttentionPlacement("eca", {"k_size": 3}, stages=(2,))
    model = create_model("resnet20", num_classes=10, attention=placement)
    assert set(attention_stages(model).values()) == {2}
    assert all(layer["k_size"] == 3 for layer in attnlab.attention_layers(model))
    # the name's preset (the ECA paper's fixed k per AlexNet layer) survives attention_stages
    layers = attnlab.attention_layers(create_model("alexnet_eca", attention_stages=(1, 5)))
    assert [(layer["stage"], layer["k_size"]) for layer in layers] == [(1, 3), (5, 3)]
    assert get_model_info("alexnet_eca").attention.stage_kwargs[2] == {"k_size": 5}


def test_unknown_builder_keyword_is_a_clear_error():
    with pytest.raises(ValueError, match="model 'resnet20': .*unexpected keyword argument 'widht'"):
        create_model("resnet20", widht=2)
