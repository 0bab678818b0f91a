import pytest
import torch
from torch import nn

import attnlab
from attnlab.models import create_model, default_input_size, get_model_info, list_models, register_model
from attnlab.models._registry import AttentionFactory

NAMED = {
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
    *(f"{a}_resnet{d}" for a in ("se", "eca") for d in (18, 34, 50, 101, 152)),
    "cbam_resnet18", "cbam_resnet34", "cbam_resnet50", "se_resnext50_32x4d", "eca_resnext50_32x4d",
    *(f"{a}resnet{d}" for a in ("", "se_", "eca_") for d in (20, 32, 56)),
    "epsanet50", "epsanet101",
}


def test_named_builders_are_registered():
    assert NAMED <= set(list_models()) and attnlab.list_models() == list_models()
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
    with pytest.raises(ValueError, match=r"already comes with attention 'se'.*create_model\('resnet18', attention='none'\)"):
        create_model("se_resnet18", attention="none")
    with pytest.raises(ValueError, match=r"create_model\('alexnet', attention='se'\)"):
        create_model("alexnet_eca", attention="se")


def test_attention_factory_switches_stages():
    factory = AttentionFactory("se", {"reduction": 4}, [2], num_stages=3)
    assert factory.gate(16, 1) is None and factory.gate(16, 2).fc1.out_channels == 4
    assert factory.conv(16, 16, 1, 2) is None  # 'se' is a gate, not a conv replacement
    psa = AttentionFactory("psa", None, None, num_stages=4).conv(64, 64, 2, 1)
    assert psa(torch.randn(1, 64, 8, 8)).shape == (1, 64, 4, 4)
    assert AttentionFactory(None, None, None, num_stages=4).gate(64, 1) is None
    per_stage = AttentionFactory("eca", None, None, num_stages=2, stage_kwargs=[{"k_size": 1}, {"k_size": 3}])
    assert [per_stage.gate(64, s).k_size for s in (1, 2)] == [1, 3]
    overridden = AttentionFactory("eca", {"k_size": 5}, None, num_stages=2, stage_kwargs=[{"k_size": 1}, {}])
    assert overridden.gate(64, 1).k_size == 5
    with pytest.raises(ValueError, match="one dict per stage"):
        AttentionFactory("eca", None, None, num_stages=2, stage_kwargs=[{}])


@pytest.mark.parametrize("attention", ["se", "eca", "cbam"])
def test_backbone_gates_scale_in_place_at_inference_only(attention):
    model = create_model("resnet20", num_classes=10, attention=attention).eval()
    assert all(m.inplace for m in model.modules() if hasattr(m, "attention_kind"))
    reference = create_model("resnet20", num_classes=10, attention=attention, attention_kwargs={"inplace": False})
    reference.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference.eval()(x))
    model.train()(x).sum().backward()  # autograd falls back to out-of-place products
