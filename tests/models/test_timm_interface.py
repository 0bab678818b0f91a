"""timm's model interface on every backbone: forward_features / forward_head / reset_classifier / feature_info,
with timm's meaning (and timm's own values where timm has the same architecture)."""

import pytest
import torch

from attnlab.models import attention_layers, create_model

# (model, input side): small inputs, each the smallest the architecture runs at comfortably
FAMILIES = [
    ("resnet18", 64),
    ("resnext50_32x4d", 64),
    ("resnet20", 32),
    ("alexnet", 128),
    ("mobilenet_v2", 64),
    ("inception_v3", 299),
    ("epsanet50", 64),
]


def build(name: str, **kwargs):
    torch.manual_seed(0)
    return create_model(name, num_classes=7, **kwargs).eval()


@pytest.mark.parametrize("name, side", FAMILIES)
def test_forward_is_features_then_head(name, side):
    model = build(name)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        features = model.forward_features(x)
        torch.testing.assert_close(model(x), model.forward_head(features))
        pooled = model.forward_head(features, pre_logits=True)
    assert features.dim() == 4 and pooled.shape == (2, model.num_features)


@pytest.mark.parametrize("name, side", FAMILIES)
def test_reset_classifier(name, side):
    model = build(name)
    x = torch.randn(2, 3, side, side)
    model.reset_classifier(3)
    with torch.no_grad():
        assert model(x).shape == (2, 3)
        model.reset_classifier(0)  # timm: no classifier, forward gives the pre-logits features
        torch.testing.assert_close(model(x), model.forward_head(model.forward_features(x), pre_logits=True))
    with pytest.raises(ValueError, match="num_classes must be an integer >= 0"):
        model.reset_classifier(-1)


@pytest.mark.parametrize("name, side", FAMILIES)
def test_feature_info_names_each_stage_output(name, side):
    model = build(name, attention=None if name == "epsanet50" else "eca")
    outputs = {}
    for info in model.feature_info:
        module = model.get_submodule(info["module"])
        module.register_forward_hook(lambda _m, _i, out, key=info["module"]: outputs.__setitem__(key, out))
    with torch.no_grad():
        model(torch.randn(1, 3, side, side))
    reductions = [info["reduction"] for info in model.feature_info]
    assert reductions == sorted(reductions)
    for info in model.feature_info:
        out = outputs[info["module"]]
        assert out.shape[1] == info["num_chs"]
        assert side / info["reduction"] / 2 < out.shape[-1] <= -(-side // info["reduction"])  # nominal stride
    # one entry per attention stage: what the stage tags count
    stages = {layer["stage"] for layer in attention_layers(model)}
    assert stages == set(range(1, len(model.feature_info) + 1))


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_feature_info_equals_timms(name):
    timm = pytest.importorskip("timm")
    theirs = timm.create_model(name, pretrained=False).feature_info
    ours = build(name).feature_info
    assert ours == [
        {k: info[k] for k in ("num_chs", "reduction", "module")}
        for info in theirs
        if info["module"].startswith("layer")
    ]
