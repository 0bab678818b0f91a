import json

import pytest

from attnlab.cli import COMPARE_EXCLUDES, build_parser, config_overrides, main
from attnlab.engine.config import OPTIMIZERS, list_recipes

# ResNet-20 multiply-accumulates at 32x32 (He et al. 2016, Sec. 4.2): stem, three stages of six 3x3 convs on
# 32x32 / 16x16 / 8x8 maps (the first conv of stages 2 and 3 strided from half the channels), and the head.
RESNET20_MACS = (
    9 * 3 * 16 * 32 * 32
    + 6 * 9 * 16 * 16 * 32 * 32
    + (9 * 16 * 32 + 5 * 9 * 32 * 32) * 16 * 16
    + (9 * 32 * 64 + 5 * 9 * 64 * 64) * 8 * 8
    + 64 * 10
)


def test_summary_table(capsys):
    assert main(["summary", "resnet20", "--num-classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 269,722" in out
    assert "layer3.2.bn2 (BatchNorm2d)" in out and "[1, 64, 8, 8]" in out and "fc (Linear)" in out
    assert f"Multiply-accumulates: {RESNET20_MACS / 1e9:.3f} G" in out


def test_summary_json_with_attention_img_size_and_in_chans(capsys):
    argv = ["summary", "resnet20", "--num-classes", "10", "--attention", "se", "--json", "--img-size", "40"]
    assert main([*argv, "--in-chans", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    se_params = 3 * sum(2 * w * (w // 16) + w // 16 + w for w in (16, 32, 64))
    assert data["total_params"] == 269_722 + se_params - 2 * 9 * 16  # the stem conv sees 1 channel, not 3
    assert data["input_size"] == [1, 40, 40]
    rows = {row["name"]: row for row in data["layers"]}
    assert rows["layer1.0.attention"]["type"] == "SqueezeExcite"
    assert rows["layer3.2.attention"]["output_shape"] == [1, 64, 10, 10]
    assert rows["fc"]["output_shape"] == [1, 10]


def test_summary_named_attention_model(capsys):
    assert main(["summary", "eca_resnet20", "--num-classes", "10", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_size"] == [3, 32, 32] and data["total_params"] == 269_722 + 9 * 3


def test_unknown_model_exits_2_with_close_match(capsys):
    assert main(["summary", "resnt20"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'resnt20'" in err and "Did you mean 'resnet20'" in err


def test_preset_conflict_exits_2(capsys):
    assert main(["summary", "se_resnet20", "--attention", "eca"]) == 2
    assert "already comes with attention 'se'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "--models", "resnet20", "--model", "resnet20"],  # compare has --models, no --model
        ["demo", "--models", "resnet20", "se_resnet20"],  # lists are comma-separated, not space-separated
        ["train", "--optimizer", "lion"],
        ["analyze", "kernel-sweep", "--amp", "fp8"],
    ],
)
def test_missing_flags_and_bad_choices_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err or "invalid choice" in err


def test_config_flags_help_and_overrides(capsys, monkeypatch):
    args = build_parser().parse_args(["compare", "--models", "a,b", "--seeds", "2", "--epochs", "3", "--no-hflip"])
    assert config_overrides(args, COMPARE_EXCLUDES) == {"hflip": False, "epochs": 3}
    monkeypatch.setenv("COLUMNS", "1000")  # one help line per flag
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"--recipe RECIPE the preset to start from: {', '.join(list_recipes())} or a YAML file" in text
    assert f"--optimizer {{{','.join(OPTIMIZERS)}}} optimizer, one of {', '.join(OPTIMIZERS)}" in text
