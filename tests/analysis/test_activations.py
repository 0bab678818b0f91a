import csv

import pytest
import torch

from attnlab.analysis.activations import (
    default_classes,
    excitation_statistics,
    sample_channels,
    write_excitation_report,
)
from attnlab.analysis.gates import attention_stage_map, gate_values, last_block_per_stage, record_gates
from attnlab.models import create_model

NUM_CLASSES, IMAGES_PER_CLASS = 3, 4  # the conftest's tiny_batches

SE_KWARGS = {"num_classes": NUM_CLASSES}
PSA_KWARGS = {"num_classes": NUM_CLASSES, "attention": "psa", "attention_kwargs": {"groups": [1] * 4, "reduction": 4}}


def se_model():
    torch.manual_seed(0)
    return create_model("se_resnet20", **SE_KWARGS).eval()


def test_stage_map_and_last_blocks():
    stages = attention_stage_map(create_model("se_resnet20", **SE_KWARGS))
    assert stages == {f"layer{s}.{b}.attention": s for s in (1, 2, 3) for b in range(3)}
    last = ["layer1.2.attention", "layer2.2.attention", "layer3.2.attention"]
    assert last_block_per_stage(stages, se_model()) == last


def test_stage_map_needs_attention():
    with pytest.raises(ValueError, match="no attention modules"):
        attention_stage_map(create_model("resnet20", num_classes=3))


def test_sampling_helpers():
    assert sample_channels(16, 5) == [0, 4, 8, 11, 15]  # round(linspace(0, 15, 5)), 7.5 rounds to even
    assert sample_channels(3, 50) == [0, 1, 2]
    assert default_classes(17) == [0, 5, 11, 16]
    assert default_classes(2) == [0, 1]


def test_statistics_match_the_se_formula(tiny_batches):
    model = se_model()
    path = "layer3.2.attention"
    se = model.get_submodule(path)
    inputs = []
    # a pre-hook: at inference the backbone's gates scale their input in place
    handle = se.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].detach().clone()))
    (block,) = excitation_statistics(model, tiny_batches, NUM_CLASSES, [path], images_per_class=IMAGES_PER_CLASS)
    handle.remove()
    x = torch.cat(inputs)
    labels = torch.cat([labels for _, labels in tiny_batches])
    # SE excitation written out: sigmoid(W2 relu(W1 mean_hw(x))).
    pooled = x.mean((2, 3))
    hidden = torch.relu(pooled @ se.fc1.weight.flatten(1).T + se.fc1.bias)
    gates = torch.sigmoid(hidden @ se.fc2.weight.flatten(1).T + se.fc2.bias)
    for k in range(NUM_CLASSES):
        torch.testing.assert_close(block.mean[k], gates[labels == k].mean(0))
        torch.testing.assert_close(block.std[k], gates[labels == k].std(0, correction=0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(block.overall_mean, gates.mean(0))
    class_means = torch.stack([gates[labels == k].mean(0) for k in range(NUM_CLASSES)])
    assert block.specificity == pytest.approx(class_means.std(0, correction=0).mean().item(), rel=1e-4)
    assert block.saturation == pytest.approx(gates.mean().item(), rel=1e-5)
    assert block.counts.tolist() == [IMAGES_PER_CLASS] * NUM_CLASSES


def test_images_per_class_caps_the_sample(tiny_batches):
    (block,) = excitation_statistics(se_model(), tiny_batches, NUM_CLASSES, ["layer1.2.attention"], images_per_class=1)
    assert block.counts.tolist() == [1, 1, 1]


def test_report_csv_shape_and_range(tiny_batches, tmp_path):
    model = se_model()
    stages = attention_stage_map(create_model("se_resnet20", **SE_KWARGS))
    blocks = last_block_per_stage(stages, model)
    results = excitation_statistics(model, tiny_batches, NUM_CLASSES, blocks, stages, IMAGES_PER_CLASS)
    report = write_excitation_report(results, ["a", "b", "c"], [0, 2], 5, tmp_path)
    rows = list(csv.DictReader((tmp_path / "activations.csv").read_text().splitlines()))
    # 3 blocks x 5 sampled channels (of 16, 32, 64) x (2 chosen classes + 'all')
    assert len(rows) == 3 * 5 * 3
    assert {r["class"] for r in rows} == {"a", "c", "all"}
    assert sorted({int(r["channel"]) for r in rows if r["block"] == "layer3.2.attention"}) == sample_channels(64, 5)
    assert all(0 <= float(r["mean"]) <= 1 and float(r["std"]) >= 0 for r in rows)
    assert [b["stage"] for b in report["blocks"]] == [1, 2, 3]
    assert (tmp_path / "activations.png").stat().st_size > 0


def test_psa_branch_weights_are_a_softmax(tiny_batches):
    torch.manual_seed(0)
    model = create_model("resnet20", **PSA_KWARGS).eval()
    stages = attention_stage_map(create_model("resnet20", **PSA_KWARGS))
    path = last_block_per_stage(stages, model)[-1]
    assert path == "layer3.2.conv1"
    (block,) = excitation_statistics(model, tiny_batches, NUM_CLASSES, [path], stages)
    # 4 branches x 16 channels per branch, branch-major; the weights of a channel sum to 1 over the branches.
    assert block.mean.shape == (NUM_CLASSES, 64)
    torch.testing.assert_close(block.mean.reshape(NUM_CLASSES, 4, 16).sum(1), torch.ones(NUM_CLASSES, 16))


def test_spatial_gates_are_averaged_over_space():
    out = torch.arange(16.0).reshape(1, 1, 4, 4)
    torch.testing.assert_close(gate_values(out), torch.tensor([[7.5]]))


@pytest.mark.parametrize(
    "path, message", [("layer1.0.bn1", "no `gate` submodule"), ("layer9.attention", "has no module")]
)
def test_bad_block_is_refused(path, message):
    with pytest.raises(ValueError, match=message), record_gates(se_model(), [path]):
        pass
