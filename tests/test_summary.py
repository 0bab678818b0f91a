from torch import nn

from attnlab.attention import create_attention
from attnlab.summary import summary


def tiny_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        create_attention("se", 8, reduction=2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    )


def test_rows_totals_flops_and_memory():
    model = tiny_net().train()
    model[0].weight.requires_grad_(False)
    result = summary(model, (3, 4, 4))
    assert [row.type for row in result.rows] == ["Conv2d", "BatchNorm2d", "SqueezeExcite", "Flatten", "Linear"]
    assert result.rows[0].output_shape == (1, 8, 4, 4) and result.rows[-1].output_shape == (1, 5)
    assert result.rows[2].params == (8 * 4 + 4) + (4 * 8 + 8)  # the SE is one row, children included
    assert sum(row.params for row in result.rows) == result.total_params == sum(p.numel() for p in model.parameters())
    assert result.non_trainable_params == 3 * 8 * 9
    assert result.buffer_elements == 16  # BN running mean and var
    conv_flops = 2 * 8 * 3 * 9 * 16
    se_flops = 2 * (8 * 4 + 4 * 8)
    linear_flops = 2 * 128 * 5
    assert result.flops == conv_flops + se_flops + linear_flops and result.macs == result.flops // 2
    assert result.input_mb == 3 * 16 * 4 / 1024**2
    assert model.training, "summary must restore the training mode"
    text = str(result)
    assert "SqueezeExcite" in text and f"Total params: {result.total_params:,}" in text


def test_to_dict_is_json_ready():
    import json

    data = summary(tiny_net(), (3, 4, 4)).to_dict()
    assert json.loads(json.dumps(data))["total_params"] == data["total_params"]
