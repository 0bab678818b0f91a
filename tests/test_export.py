import pytest
import torch
from torch import nn

import attnlab
from attnlab.cli import main
from attnlab.engine.checkpoint import save_weights
from attnlab.export import export_model
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


@pytest.mark.parametrize("fmt, dynamic_batch", [("onnx", True), ("torchscript", False)])
def test_attached_model_round_trips(tmp_path, fmt, dynamic_batch):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    result = export_model(tiny_cnn(), (3, 16, 16), tmp_path / "tiny", fmt, dynamic_batch=dynamic_batch)
    assert result.check_shape == (3, 3, 16, 16)  # another batch size than the traced one (2)
    assert result.ok and result.max_abs_error < 1e-5 and result.path.stat().st_size > 0


def test_a_wrong_export_fails_the_tolerance(tmp_path):
    result = export_model(BatchBaking(), (3, 4, 4), tmp_path / "baked.pt", "torchscript")
    # traced at batch 2, checked at batch 3: the export gives 2 * mean where PyTorch gives 3 * mean
    assert not result.ok
    assert result.max_rel_error == pytest.approx(1 / 3)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="format must be one of onnx, torchscript"):
        export_model(tiny_cnn(), (3, 16, 16), tmp_path / "x", "tflite")
    with pytest.raises(ValueError, match="atol must be > 0"):
        export_model(tiny_cnn(), (3, 16, 16), tmp_path / "x", "onnx", atol=0)


def write_checkpoint(tmp_path, name: str, img_size: int) -> str:
    model = attnlab.create_model(name, num_classes=3)
    metadata = {"model": name, "model_kwargs": {"num_classes": 3}, "classes": ["a", "b", "c"], "img_size": img_size}
    return str(save_weights(tmp_path / "best.safetensors", model.state_dict(), metadata))


@pytest.mark.slow
def test_cli_exports_eca_resnet20_to_onnx(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    ckpt = write_checkpoint(tmp_path, "eca_resnet20", 32)
    assert main(["export", ckpt, "--format", "onnx", "--dynamic-batch"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'best.onnx'} (onnx" in out and "(3, 3, 32, 32) batch" in out and "within atol" in out


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
