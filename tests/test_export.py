import json

import pytest
import torch
from torch import nn

import attnlab
from attnlab.cli import main
from attnlab.engine.checkpoint import save_weights
from attnlab.export import SUFFIXES, ExportedModel, ExportRefused, export_model
from attnlab.models._registry import _MODELS, register_model
from attnlab.utils import max_error


def tiny_cnn() -> nn.Sequential:
    """Two conv-BN-ReLU layers and a linear head, with ECA attached after both BNs."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )
    attnlab.attach(model, "eca", where="conv", init=None, example=torch.randn(1, 3, 16, 16))
    return model


class BatchBaking(nn.Module):
    """Scales by the batch size read as a Python number: a trace bakes the traced batch size in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3)) * float(x.shape[0])


def test_max_error_is_relative_to_the_output_scale():
    assert max_error(torch.tensor([1.0, 9.0]), torch.tensor([2.0, 10.0])) == (1.0, 0.1)


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "torchscript", "openvino"])
def test_attached_model_round_trips_at_other_batch_and_image_sizes(tmp_path, fmt):
    pytest.importorskip({"openvino": "openvino"}.get(fmt, "onnxruntime"))
    path = tmp_path / f"tiny{SUFFIXES[fmt]}"
    result = export_model(tiny_cnn(), (3, 16, 16), path, fmt, metadata={"model": "tiny"})
    # other batch sizes than the traced one (2), and another, non-square image size
    assert result.check_shapes == ((3, 3, 16, 16), (1, 3, 24, 20))
    assert result.ok and result.max_abs_error < 1e-5 and result.path.stat().st_size > 0
    assert ExportedModel(path).metadata["model"] == "tiny"


class FixedSize(nn.Module):
    """Flattens the whole map into a linear layer: works at the one image size it was built for."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_a_model_that_fixes_the_image_size_is_refused_with_the_way_out(tmp_path):
    with pytest.raises(
        ExportRefused, match="FixedSize cannot be exported with a free batch size and image size.*--static"
    ):
        export_model(FixedSize(), (3, 8, 8), tmp_path / "f.pt2", "pt2")
    result = export_model(FixedSize(), (3, 8, 8), tmp_path / "f.pt2", "pt2", dynamic=False)
    assert result.ok and result.check_shapes == ((2, 3, 8, 8),)


def test_a_wrong_export_fails_the_tolerance(tmp_path):
    result = export_model(BatchBaking(), (3, 4, 4), tmp_path / "baked.pt", "torchscript")
    # traced at batch 2, checked at batch 3 (and 1): the export gives 2 * mean where PyTorch gives 3 * mean
    assert not result.ok
    assert result.max_rel_error == pytest.approx(1 / 3)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="format must be one of onnx, pt2, torchscript, openvino"):
        export_model(tiny_cnn(), (3, 16, 16), tmp_path / "x", "tflite")
    with pytest.raises(ValueError, match="atol must be > 0"):
        export_model(tiny_cnn(), (3, 16, 16), tmp_path / "x", "onnx", atol=0)


PREPROCESS = {"augment": "fast", "img_size": 32, "cache_size": 36, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.25]}


def write_checkpoint(tmp_path, name: str, img_size: int) -> str:
    model = attnlab.create_model(name, num_classes=3)
    metadata = {
        "model": name,
        "model_kwargs": {"num_classes": 3},
        "classes": ["a", "b", "c"],
        "img_size": img_size,
        "preprocess": {**PREPROCESS, "img_size": img_size},
    }
    return str(save_weights(tmp_path / "best.safetensors", model.state_dict(), metadata))


@pytest.mark.slow
def test_cli_onnx_has_named_io_free_sizes_and_the_metadata(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    ckpt = write_checkpoint(tmp_path, "eca_resnet20", 32)
    assert main(["export", ckpt, "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'best.onnx'} (onnx" in out and "(3, 3, 32, 32), (1, 3, 48, 40)" in out
    assert "within atol" in out
    model = onnx.load(str(tmp_path / "best.onnx"))
    assert [i.name for i in model.graph.input] == ["images"] and [o.name for o in model.graph.output] == ["logits"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]  # batch, height, width free
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["classes"]) == ["a", "b", "c"] and json.loads(props["mean"]) == [0.5, 0.4, 0.3]
    assert json.loads(props["std"]) == [0.2, 0.2, 0.25] and json.loads(props["input_size"]) == [3, 32, 32]
    assert props["model"] == "eca_resnet20" and props["attnlab_version"]
    metadata = ExportedModel(tmp_path / "best.onnx").metadata
    assert metadata["preprocess"] == {**PREPROCESS, "img_size": 32} and metadata["classes"] == ["a", "b", "c"]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_cli_exports_torchscript_to_out(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path, "eca_resnet20", 32)
    assert main(["export", ckpt, "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    assert scripted(torch.randn(5, 3, 32, 32)).shape == (5, 3)


@pytest.fixture
def batch_baking_model():
    register_model("_test_batch_baking", input_size=(3, 4, 4))(lambda **kwargs: BatchBaking())
    yield "_test_batch_baking"
    del _MODELS["_test_batch_baking"]


def test_cli_fails_over_the_tolerance(tmp_path, capsys, batch_baking_model):
    ckpt = write_checkpoint(tmp_path, batch_baking_model, 4)
    assert main(["export", ckpt, "--format", "torchscript"]) == 2
    err = capsys.readouterr().err
    assert "attnlab export: error: the exported model differs from PyTorch" in err and "> --atol 0.0001" in err


@pytest.fixture
def fixed_size_model():
    register_model("_test_fixed_size", input_size=(3, 8, 8))(lambda **kwargs: FixedSize())
    yield "_test_fixed_size"
    del _MODELS["_test_fixed_size"]


def test_cli_refuses_a_size_fixing_model_with_exit_2_and_exports_it_static(tmp_path, capsys, fixed_size_model):
    ckpt = write_checkpoint(tmp_path, fixed_size_model, 8)
    assert main(["export", ckpt, "--format", "pt2"]) == 2
    err = capsys.readouterr().err
    assert "cannot be exported with a free batch size and image size" in err and "--static" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main(["export", ckpt, "--format", "pt2", "--static", "--overwrite"]) == 0
