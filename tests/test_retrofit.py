import copy

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

import attnlab
from attnlab.retrofit import attached_paths, load_original_weights

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def outputs(model: nn.Module, x: torch.Tensor = X) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def small_resnet(block: type[nn.Module] = BasicBlock) -> ResNet:
    """torchvision's ResNet class with one block per stage."""
    return ResNet(block, [1, 1, 1, 1], num_classes=10)


def eca_k(channels: int) -> int:
    """ECA's kernel size |log2(C)/2 + 1/2|_odd."""
    t = int((torch.tensor(float(channels)).log2().item() + 1) / 2)
    return t if t % 2 else t + 1


def test_residual_resnet18_after_bn2_with_exact_identity_blend():
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    original = outputs(model)
    report = attnlab.attach(model, "eca", example=X)
    paths = [f"layer{stage}.{block}.bn2" for stage in (1, 2, 3, 4) for block in (0, 1)]
    assert [p.path for p in report.points] == paths
    assert [p.channels for p in report.points] == [64 * 2 ** (s - 1) for s in (1, 2, 3, 4) for _ in (0, 1)]
    assert [p.stage for p in report.points] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert {p.start for p in report.points} == {"blend"}  # a sigmoid gate is never the identity
    assert [p.params for p in report.points] == [eca_k(p.channels) + 1 for p in report.points]  # conv + blend scale
    assert torch.equal(outputs(model), original)
    assert report.max_abs_diff == 0 and report.max_rel_diff == 0
    lines = str(report).splitlines()
    assert len(lines) == len(paths) + 2 and lines[1].startswith("layer1.0.bn2")


def test_residual_bottleneck_after_bn3():
    report = attnlab.attach(small_resnet(Bottleneck), "se", example=X)
    assert [(p.path, p.channels) for p in report.points] == [
        (f"layer{s}.0.bn3", 256 * 2 ** (s - 1)) for s in (1, 2, 3, 4)
    ]


def test_blend_scale_gets_a_gradient_at_init():
    model = small_resnet()
    attnlab.attach(model, "eca", example=X)
    model.train()(X).sum().backward()
    scales = [model.get_submodule(path).attention_scale for path in attached_paths(model)]
    assert len(scales) == 4 and all(s.grad is not None and s.grad.item() != 0 for s in scales)


def test_state_dict_of_the_original_loads_with_only_attention_keys_missing():
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    state = copy.deepcopy(model.state_dict())
    report = attnlab.attach(model, "eca", example=X)
    result = model.load_state_dict(state, strict=False)
    assert result.unexpected_keys == []
    # ECA has one tensor (its 1D conv); each blended point adds its scale
    expected = {f"{p.path}.attention.conv.weight" for p in report.points} | {
        f"{p.path}.attention_scale" for p in report.points
    }
    assert set(result.missing_keys) == expected and len(expected) == 16


def test_gc_is_an_exact_identity_without_a_blend():
    model = small_resnet()
    original = outputs(model)
    report = attnlab.attach(model, "gc", init=None, example=X)
    assert {p.start for p in report.points} == {"identity"}
    assert not any(k.endswith("attention_scale") for k in model.state_dict())
    assert torch.equal(outputs(model), original)


@pytest.mark.parametrize("name", attnlab.list_attentions("gate"))
def test_every_gate_starts_as_the_identity(name):
    model = small_resnet()
    original = outputs(model)
    report = attnlab.attach(model, name, example=X)
    # exact by their own init: GC/GCA and the non-local block add a zero-initialised term, GCT gates by 1 + tanh(0)
    expected = "identity" if name in ("gc", "gca", "gct", "nl") else "blend"
    assert {p.start for p in report.points} == {expected}
    assert torch.equal(outputs(model), original)


def test_init_none_reports_how_far_the_outputs_moved():
    model = small_resnet()
    original = outputs(model, X[:1])
    report = attnlab.attach(model, "eca", init=None, example=X[:1])
    moved = outputs(model, X[:1])
    assert {p.start for p in report.points} == {"changed"}
    assert report.max_abs_diff == pytest.approx((moved - original).abs().max().item())
    assert report.max_rel_diff == pytest.approx(report.max_abs_diff / original.abs().max().item())
    assert report.max_abs_diff > 0


def test_detach_restores_the_original():
    model = small_resnet()
    keys, original = list(model.state_dict()), outputs(model)
    report = attnlab.attach(model, "se", init=None, reduction=4, example=X)
    assert not torch.equal(outputs(model), original)
    assert attnlab.detach(model) == [p.path for p in report.points]
    assert torch.equal(outputs(model), original)
    assert list(model.state_dict()) == keys
    assert attnlab.detach(model) == []
    attnlab.attach(model, "eca", example=X)  # attachable again


def test_deepcopy_runs_its_own_attention():
    model = small_resnet()
    attnlab.attach(model, "eca", init=None, example=X)
    before = outputs(model)
    clone = copy.deepcopy(model)  # what EMA does
    for path in attached_paths(clone):
        nn.init.zeros_(clone.get_submodule(path).attention.conv.weight)  # gate 0.5 everywhere
    assert torch.equal(outputs(model), before)
    assert not torch.equal(outputs(clone), before)
    attnlab.detach(clone)
    assert len(attached_paths(model)) == 4


def test_blend_holds_when_the_gates_are_switched_to_in_place():
    """Ultralytics sets ``inplace = True`` on every module that has the attribute when it loads a checkpoint."""
    model = small_resnet()
    attnlab.attach(model, "cbam", example=X)
    for path in attached_paths(model):
        nn.init.constant_(model.get_submodule(path).attention_scale, 0.5)
    before = outputs(model)
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = True
    torch.testing.assert_close(outputs(model), before)


def test_mobilenet_v2_after_every_conv_bn_pair():
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=10)
    bns = {path: m.num_features for path, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    report = attnlab.attach(model, "se", where="conv", reduction=4, example=X)
    # stem + 2 BNs in the t=1 block + 3 in each of the other 16 blocks + the last 1x1 conv
    assert len(report.points) == 1 + 2 + 3 * 16 + 1 == len(bns)
    assert {p.path: p.channels for p in report.points} == bns
    assert report.points[0].stage == 1 and report.points[-1].stage == 5  # 16, 8, 4, 2, 1 px
    assert report.max_abs_diff == 0


def test_mobilenet_v2_residual_is_the_projection_bn():
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=10)
    report = attnlab.attach(model, "eca", example=X)
    assert [p.path for p in report.points] == ["features.1.conv.2"] + [f"features.{i}.conv.3" for i in range(2, 18)]


@pytest.mark.parametrize(
    "where, paths",
    [
        ("residual", [f"layer{s}.{b}.bn2" for s in (1, 2, 3, 4) for b in (0, 1)]),
        (["layer4.*.bn2"], ["layer4.0.bn2", "layer4.1.bn2"]),
        (["layer2"], ["layer2.1"]),  # a Sequential: after its last layer, the BasicBlock
    ],
)
def test_timm_resnet18(where, paths):
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet18", pretrained=False, num_classes=10)
    original = outputs(model)
    report = attnlab.attach(model, "eca", where=where, example=X)
    assert [p.path for p in report.points] == paths
    assert torch.equal(outputs(model), original)


def test_timm_resnet18_conv_pairs():
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet18", pretrained=False, num_classes=10)
    report = attnlab.attach(model, "eca", where="conv", example=X)
    assert len(report.points) == 1 + 8 * 2 + 3  # stem, two per block, three downsample shortcuts


def test_channels_from_the_dry_run_for_any_module():
    report = attnlab.attach(small_resnet(), "eca", where=["avgpool"], example=X)
    assert [(p.path, p.channels) for p in report.points] == [("avgpool", 512)]


def test_stages_select_resolution_groups():
    report = attnlab.attach(small_resnet(), "eca", stages=[2, 4], example=X)
    assert [p.path for p in report.points] == ["layer2.0.bn2", "layer4.0.bn2"]
    with pytest.raises(ValueError, match=r"stages \(5,\) has \[5\]"):
        attnlab.attach(small_resnet(), "eca", stages=[5], example=X)


@pytest.mark.parametrize(
    "where, message",
    [
        ("residuals", r"where must be 'residual', 'conv' or a list.*\['residuals'\]"),
        (["layer9.*"], "matches no module path"),
        (["layer1.0.relu"], "called 2 times"),  # torchvision's BasicBlock calls its relu twice
        (["fc"], r"outputs \(2, 10\)"),
    ],
)
def test_bad_where(where, message):
    with pytest.raises(ValueError, match=message):
        attnlab.attach(small_resnet(), "eca", where=where, example=X)


def test_no_residual_blocks():
    plain = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    with pytest.raises(ValueError, match="found no residual blocks"):
        attnlab.attach(plain, "eca", example=X)
    assert len(attnlab.attach(plain, "eca", where="conv", example=X).points) == 1


def test_refuses_models_with_attention():
    with pytest.raises(ValueError, match="already has 9 attention modules"):
        attnlab.attach(attnlab.create_model("eca_resnet20", num_classes=10), "se", example=X)
    model = small_resnet()
    attnlab.attach(model, "eca", example=X)
    with pytest.raises(ValueError, match=r"detach\(model\) first"):
        attnlab.attach(model, "se", example=X)
    with pytest.raises(ValueError, match="conv-replacement"):
        attnlab.attach(small_resnet(), "psa", example=X)


def test_failure_leaves_the_model_untouched():
    model = small_resnet()
    with pytest.raises(ValueError, match="cannot build 'se' for 'layer1.0.bn2' \\(64 channels\\)"):
        attnlab.attach(model, "se", reduction=128, example=X)  # 64 // 128 = 0 hidden units
    assert attached_paths(model) == [] and attnlab.attention_layers(model) == []


def test_plain_attnlab_model_accepts_attach():
    model = attnlab.create_model("resnet20", num_classes=10)
    report = attnlab.attach(model, "eca", example=X)
    assert len(report.points) == 9 and report.points[-1].path == "layer3.2.bn2"


def test_load_original_weights_with_a_new_head():
    pretrained = small_resnet()
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=3)
    attnlab.attach(model, "eca", example=X)
    attention_before = copy.deepcopy(model.layer1[0].bn2.attention.state_dict())
    assert load_original_weights(model, pretrained.state_dict()) == ["fc.weight", "fc.bias"]
    assert torch.equal(model.conv1.weight, pretrained.conv1.weight)
    assert torch.equal(model.layer1[0].bn2.attention.conv.weight, attention_before["conv.weight"])
    with pytest.raises(ValueError, match="1 unexpected keys"):
        load_original_weights(model, {**pretrained.state_dict(), "head.weight": torch.zeros(1)})


def test_fine_tuning_starts_from_the_original_outputs():
    pretrained = small_resnet()
    model = small_resnet()
    attnlab.attach(model, "cbam", example=X)
    assert load_original_weights(model, pretrained.state_dict()) == []
    assert torch.equal(outputs(model), outputs(pretrained))


def test_load_model_attaches_as_the_checkpoint_records(tmp_path):
    from attnlab.engine.checkpoint import save_weights
    from attnlab.engine.inference import load_model

    model = attnlab.create_model("resnet20", num_classes=3)
    spec = {"attention": "eca", "where": ["layer3.*.bn2"], "attention_kwargs": {"k_size": 3}}
    attnlab.attach(model, spec["attention"], spec["where"], **spec["attention_kwargs"])
    metadata = {"model": "resnet20", "model_kwargs": {"num_classes": 3}, "attach": spec}
    loaded, _ = load_model(save_weights(tmp_path / "best.safetensors", model.state_dict(), metadata))
    assert [(layer["path"], layer["k_size"]) for layer in attnlab.attention_layers(loaded)] == [
        (f"layer3.{b}.bn2.attention", 3) for b in range(3)
    ]
    assert torch.equal(outputs(loaded), outputs(model))


@pytest.mark.slow
def test_train_attach_init_from(tmp_path):
    from attnlab.engine.config import resolve_config
    from attnlab.engine.inference import load_model
    from attnlab.engine.trainer import Trainer, train

    tiny = {"img_size": 8, "batch_size": 64, "device": "cpu", "epochs": 1}  # ResNet-20, 8 px digits
    train(resolve_config("fast", **tiny, out=str(tmp_path / "plain")))
    pretrained, _ = load_model(tmp_path / "plain")
    config = resolve_config(
        "fast", **tiny, attach="eca", init_from=str(tmp_path / "plain" / "best.safetensors"), out=str(tmp_path / "eca")
    )
    trainer = Trainer(config)
    x = torch.randn(4, 3, 8, 8)
    assert torch.equal(outputs(trainer.model, x), outputs(pretrained, x))
    trainer.fit()
    model, metadata = load_model(tmp_path / "eca")
    assert metadata["attach"] == {"attention": "eca", "where": "residual", "attention_kwargs": {}}
    assert len(attnlab.attention_layers(model)) == 9


def test_create_model_with_torchvision_prefix_round_trips():
    model = attnlab.create_model("torchvision:resnet18", num_classes=7, attention="se", attention_stages=[4])
    assert [layer["path"] for layer in attnlab.attention_layers(model)] == [
        "layer4.0.bn2.attention",
        "layer4.1.bn2.attention",
    ]
    again = attnlab.create_model("torchvision:resnet18", num_classes=7, attention="se", attention_stages=[4])
    again.load_state_dict(model.state_dict())  # strict: the same structure
    assert torch.equal(outputs(again), outputs(model)) and outputs(model).shape == (2, 7)
