"""Export to ONNX and check the exported graph against PyTorch with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: str | Path, *, opset: int = 18, dynamic_batch: bool = False
) -> Path:
    """Export ``model`` (in eval mode) traced on ``example`` to an ONNX file at ``path``."""
    path = Path(path)
    model = model.eval()
    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    program = torch.onnx.export(
        model, (example,), dynamo=True, opset_version=opset, dynamic_shapes=dynamic_shapes, verbose=False
    )
    program.save(str(path))
    return path


def onnx_max_error(path: str | Path, model: nn.Module, inputs: torch.Tensor) -> tuple[float, float]:
    """(max abs error, max relative error) of onnxruntime on ``path`` vs ``model(inputs)`` in eval mode."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: inputs.numpy()})[0])
    with torch.no_grad():
        want = model.eval()(inputs).float()
    abs_err = (got - want).abs()
    return abs_err.max().item(), (abs_err / want.abs().clamp_min(1e-6)).max().item()
