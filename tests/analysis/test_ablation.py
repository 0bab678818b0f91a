import pytest
import torch

from attnlab.analysis.ablation import ablate_stages, ablation_markdown
from attnlab.analysis.gates import attention_stage_map, attention_switched_off, gates_fixed, mean_gate_outputs
from attnlab.engine.evaluate import evaluate
from attnlab.models import create_model

NUM_CLASSES = 3  # the conftest's tiny_batches


def trained_like(name: str, **kwargs) -> torch.nn.Module:
    """A model whose BN statistics are not the identity, so switching attention off changes its outputs."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES, **kwargs)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("attention", ["se", "gc"])
@pytest.mark.parametrize("stages_off", [(3,), (1, 2, 3)])
def test_switched_off_equals_model_built_without_it(attention, stages_off, tiny_batches):
    kwargs = {"attention": attention}
    if attention == "gc":  # a non-zero last conv, so the additive context is not zero from the start
        kwargs["attention_kwargs"] = {"zero_init_last": False}
    model = trained_like("resnet20", **kwargs)
    kept = tuple(s for s in (1, 2, 3) if s not in stages_off)
    without = create_model(
        "resnet20", num_classes=NUM_CLASSES, attention_stages=kept or None, **(kwargs if kept else {})
    ).eval()
    missing, unexpected = without.load_state_dict(model.state_dict(), strict=False)
    assert missing == [] and unexpected and all(".attention." in key for key in unexpected)
    images = tiny_batches[0][0]
    stages = attention_stage_map(create_model("resnet20", num_classes=NUM_CLASSES, **kwargs))
    paths = [p for p, s in stages.items() if s in stages_off]
    with torch.no_grad():
        full = model(images)
        with attention_switched_off(model, paths):
            ablated = model(images)
        restored = model(images)
        torch.testing.assert_close(ablated, without(images))
        assert not torch.allclose(full, ablated, atol=1e-4)
        torch.testing.assert_close(restored, full)


def test_psa_switched_off_weights_branches_equally():
    torch.manual_seed(0)
    kwargs = {"attention": "psa", "attention_kwargs": {"groups": [1] * 4, "reduction": 4}}
    model = trained_like("resnet20", **kwargs)
    psa = model.get_submodule("layer2.0.conv1")
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad(), attention_switched_off(model, ["layer2.0.conv1"]):
        out = psa(x)
        branches = [branch(x) for branch in psa.branches]
    # softmax replaced by its uniform 1/S; concatenated last branch first, as PSA does
    torch.testing.assert_close(out, torch.cat(branches[::-1], dim=1) / 4)


def test_ablation_rows(tiny_batches):
    model = trained_like("se_resnet20")
    stages = attention_stage_map(create_model("se_resnet20", num_classes=NUM_CLASSES))
    rows = ablate_stages(model, stages, lambda: tiny_batches, NUM_CLASSES)
    settings = ["stage 1", "stage 2", "stage 3", "all"]
    assert [(r.switched_off, r.mode) for r in rows] == [
        ("none", "-"),
        *((s, "identity") for s in settings),
        *((s, "mean") for s in settings),
    ]
    assert [r.blocks for r in rows] == [0, 3, 3, 3, 9, 3, 3, 3, 9]
    without_last = create_model("se_resnet20", num_classes=NUM_CLASSES, attention_stages=(1, 2)).eval()
    without_last.load_state_dict(model.state_dict(), strict=False)
    expected = evaluate(without_last, tiny_batches, NUM_CLASSES, torch.device("cpu"))
    assert rows[3].top1 == expected.top1 and rows[3].loss == pytest.approx(expected.loss)
    assert rows[3].delta_top1 == pytest.approx(100 * (rows[3].top1 - rows[0].top1))
    table = ablation_markdown(rows)
    assert table.count("\n") == 2 + len(rows)
    assert f"| stage 3 | identity (gate = 1) | 3 | {100 * expected.top1:.2f} |" in table
    with pytest.raises(ValueError, match="ablation modes must be among identity, mean"):
        ablate_stages(model, stages, lambda: tiny_batches, NUM_CLASSES, modes=["zero"])


@pytest.mark.parametrize("attention", ["se", "coord"])
def test_mean_gate_of_identical_images_changes_nothing(attention, tiny_batches):
    # With every image the same, each gate's average over the images is its value on each image; coord
    # attention runs its gate twice per pass (height and width), so this also checks the per-call values.
    model = trained_like("resnet20", attention=attention)
    stages = attention_stage_map(create_model("resnet20", num_classes=NUM_CLASSES, attention=attention))
    images = tiny_batches[0][0][:1].expand(4, -1, -1, -1)
    means = mean_gate_outputs(model, list(stages), [(images, torch.zeros(4, dtype=torch.long))])
    assert len(means["layer1.0.attention"]) == (2 if attention == "coord" else 1)
    with torch.no_grad():
        full = model(images)
        with gates_fixed(model, means):
            fixed = model(images)
    torch.testing.assert_close(fixed, full)


def test_mean_gate_is_the_average_over_images(tiny_batches):
    model = trained_like("se_resnet20")
    se = model.get_submodule("layer2.1.attention")
    outputs = []
    handle = se.gate.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    means = mean_gate_outputs(model, ["layer2.1.attention"], tiny_batches)
    handle.remove()
    (mean,) = means["layer2.1.attention"]
    assert mean.shape == (32, 1, 1)
    torch.testing.assert_close(mean, torch.cat(outputs).mean(0))
