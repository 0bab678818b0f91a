"""Exported files used as models: predict and eval on .onnx / OpenVINO .xml with the metadata they carry, INT8
quantization with the fp32 vs int8 report, and bench --runtime."""

import json

import pytest
import torch
from PIL import Image

import attnlab
from attnlab.cli import main
from attnlab.engine.checkpoint import save_weights
from attnlab.export import ExportedModel, export_checkpoint, is_exported_model
from attnlab.export.quantize import attention_nodes, quantize_onnx

pytest.importorskip("onnxruntime", reason="install the 'onnx' extra to test exported models")
pytest.importorskip("onnxscript", reason="install the 'onnx' extra to test exported models")

DIGITS = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A random SE-ResNet-20 checkpoint with the metadata of a run trained on the embedded digits at 16 px."""
    folder = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    model = attnlab.create_model("se_resnet20", num_classes=10)
    preprocess = {"augment": "fast", "img_size": 16, "cache_size": 16, "mean": [0.3] * 3, "std": [0.3] * 3}
    metadata = {
        "model": "se_resnet20",
        "model_kwargs": {"num_classes": 10},
        "classes": DIGITS,
        "preprocess": {**preprocess, "hflip": False},
    }
    save_weights(folder / "best.safetensors", model.state_dict(), metadata)
    return folder


@pytest.fixture(scope="module")
def exported(digits_run):
    result, _ = export_checkpoint(digits_run, "onnx")
    return result.path


def test_the_exported_file_carries_what_predict_and_eval_need(exported):
    assert is_exported_model(exported) and not is_exported_model(exported.parent)
    metadata = ExportedModel(exported).metadata
    assert metadata["classes"] == DIGITS and metadata["model"] == "se_resnet20" and metadata["img_size"] == 16
    assert metadata["preprocess"]["mean"] == [0.3] * 3


def test_predict_on_an_exported_model_equals_predict_on_the_run(exported, digits_run, tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 20), (200, 30, 90)).save(image)
    assert main(["predict", str(digits_run), str(image)]) == 0
    from_run = capsys.readouterr().out
    assert main(["predict", str(exported), str(image)]) == 0
    assert capsys.readouterr().out == from_run


def test_eval_on_an_exported_model(exported, tmp_path, capsys):
    assert main(["eval", str(exported), "--data", "digits", "--out", str(tmp_path)]) == 0
    assert "359 images" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval.json").read_text())["checkpoint"] == str(exported)


def test_eval_without_data_says_what_to_give(exported, tmp_path, capsys):
    assert main(["eval", str(exported), "--out", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err


def test_gate_nodes_are_found_by_module_path(exported):
    nodes = attention_nodes(exported, ["layer1.0.attention"])
    assert nodes
    assert len(attention_nodes(exported, ["layer1.0.attention", "layer1.1.attention"])) == 2 * len(nodes)
    assert attention_nodes(exported, ["no.such.module"]) == []


@pytest.mark.slow
def test_cli_int8_reports_fp32_vs_int8_on_the_validation_split(digits_run, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(digits_run), "--out", str(out), "--int8", "--calib", "digits"]) == 0
    printed = capsys.readouterr().out
    assert "INT8 (static, QDQ, per-channel, 256 calibration images" in printed
    assert "on 359 validation images top-1 fp32" in printed and "top-1 agreement" in printed
    int8 = ExportedModel(tmp_path / "m.int8.onnx")
    assert int8.metadata["classes"] == DIGITS  # the metadata survives quantization
    assert int8(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_int8_needs_calibration_data_and_an_onnx_format(digits_run, tmp_path, capsys):
    assert main(["export", str(digits_run), "--out", str(tmp_path / "a.onnx"), "--int8"]) == 2
    assert "--int8 needs calibration images: add --calib DATA" in capsys.readouterr().err
    args = ["export", str(digits_run), "--format", "pt2", "--out", str(tmp_path / "a.pt2"), "--int8"]
    assert main([*args, "--calib", "digits"]) == 2
    assert "--int8 quantizes ONNX and OpenVINO exports, not pt2" in capsys.readouterr().err


def test_bench_runtime_ort_times_the_export_next_to_pytorch(capsys):
    argv = ["bench", "--runtime", "ort", "--models", "se_resnet20", "--img-size", "16", "--batch-size", "2"]
    assert main([*argv, "--repeats", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "| se_resnet20 | ort | fp32 | 2 |" in out and "| se_resnet20 | torch | fp32 | 2 |" in out


def test_bench_int8_needs_an_onnx_runtime(capsys):
    assert main(["bench", "--int8", "--models", "resnet20"]) == 2
    assert "add --runtime ort or --runtime openvino" in capsys.readouterr().err


@pytest.mark.slow
def test_the_gate_remedy_keeps_attention_nodes_in_fp32_when_it_agrees_better(exported, tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    agreements = iter([0.5, 0.9])  # the fully quantized model agrees badly, the remedied one better
    monkeypatch.setattr("attnlab.export.quantize._agreement", lambda a, b, images: next(agreements))
    calib = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    paths = [f"layer{s}.{b}.attention" for s in (1, 2, 3) for b in range(3)]
    result = quantize_onnx(exported, tmp_path / "q.onnx", calib, paths)
    assert result.calib_agreement == 0.9 and result.fp32_nodes == tuple(attention_nodes(exported, paths))
    assert result.path.is_file() and not (tmp_path / "q.gates-fp32.onnx").exists()
    model = onnx.load(str(result.path))
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    sigmoids = [n for n in model.graph.node if n.op_type == "Sigmoid"]
    assert len(sigmoids) == 9 and not any(set(n.input) & dequantized for n in sigmoids)
