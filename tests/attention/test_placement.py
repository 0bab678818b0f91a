import pytest
import torch
from torch import nn

from attnlab.attention import (
    AttentionFactory,
    AttentionPlacement,
    attention_layers,
    attention_stages,
    create_attention,
    tag_stage,
)


def test_attention_factory_switches_stages():
    factory = AttentionFactory(AttentionPlacement("se", {"reduction": 4}, stages=(2,)), num_stages=3)
    assert factory.gate(16, 1) is None and factory.gate(16, 2).fc1.out_channels == 4
    assert factory.conv(16, 16, 1, 2) is None  # 'se' is a gate, not a conv replacement
    psa = AttentionFactory("psa", num_stages=4, kinds=("gate", "conv")).conv(64, 64, 2, 1)
    assert psa(torch.randn(1, 64, 8, 8)).shape == (1, 64, 4, 4)
    assert AttentionFactory(None, num_stages=4).gate(64, 1) is None
    per_stage = AttentionFactory(AttentionPlacement("eca", stage_kwargs=({"k_size": 1}, {"k_size": 3})), 2)
    assert [per_stage.gate(64, s).k_size for s in (1, 2)] == [1, 3]
    overridden = AttentionFactory(AttentionPlacement("eca", {"k_size": 5}, stage_kwargs=({"k_size": 1}, {})), 2)
    assert overridden.gate(64, 1).k_size == 5
    with pytest.raises(ValueError, match="one dict per stage"):
        AttentionFactory(AttentionPlacement("eca", stage_kwargs=({},)), num_stages=2)


def test_factory_errors_name_the_model_and_the_stages():
    with pytest.raises(ValueError, match="'psa' is a 'conv' module, which AlexNet cannot take"):
        AttentionFactory("psa", 5, "AlexNet")
    with pytest.raises(ValueError, match=r"attention_stages \(0, 4\) has \[0, 4\]: stages are 1..3"):
        AttentionFactory(AttentionPlacement("se", stages=(0, 4)), 3)


def test_modules_carry_the_stage_they_were_built_for():
    factory = AttentionFactory("eca", num_stages=3)
    model = nn.Sequential(factory.gate(8, 1), nn.Sequential(factory.gate(8, 3)), create_attention("eca", 8))
    assert attention_stages(model) == {"0": 1, "1.0": 3}  # the untagged module has no stage
    assert [layer["stage"] for layer in attention_layers(model)] == [1, 3, None]
    assert tag_stage(model[2], 2) is model[2] and attention_stages(model)["2"] == 2


def test_placement_of_names_and_none():
    assert AttentionPlacement.of(None) is None
    assert AttentionPlacement.of("se") == AttentionPlacement("se")
    placement = AttentionPlacement("eca", stages=(1,))
    assert AttentionPlacement.of(placement) is placement
