"""INT8 static post-training quantization of an exported ONNX model with ONNX Runtime (QDQ, per-channel weights).

Gates are the known weak spot of INT8 (a sigmoid output in [0, 1] multiplied into every activation, and SE's
tiny pooled MLP): when the fully quantized model agrees with fp32 on less than :data:`GATE_REMEDY_BELOW` of the
calibration images, the attention modules' nodes are kept in fp32 (``nodes_to_exclude``) and that model is kept
if it agrees better.
"""

from __future__ import annotations

import ast
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .formats import require_extra
from .runtime import ExportedModel

GATE_REMEDY_BELOW = 0.99  # top-1 agreement with fp32 on the calibration images
SCOPES_KEY = "pkg.torch.onnx.name_scopes"  # where torch.onnx's exporter records each node's module path


@dataclass(frozen=True)
class QuantizeResult:
    """The INT8 file, its top-1 agreement with fp32 on the calibration images, and the nodes kept in fp32."""

    path: Path
    calib_agreement: float
    fp32_nodes: tuple[str, ...]


def attention_nodes(onnx_path: str | Path, attention_paths: list[str]) -> list[str]:
    """Names of the ONNX nodes that torch.onnx exported from inside the modules at ``attention_paths``."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    prefixes = set(attention_paths)
    names = []
    for node in model.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == SCOPES_KEY), None)
        if scopes and prefixes & set(ast.literal_eval(scopes)):
            names.append(node.name)
    return names


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a tensor of images, in batches."""

    def __init__(self, input_name: str, images: torch.Tensor, batch_size: int = 32):
        self.batches = iter([{input_name: x.numpy()} for x in images.split(batch_size)])

    def get_next(self):
        return next(self.batches, None)


def _quantize(fp32: Path, out: Path, images: torch.Tensor, exclude: list[str]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            _Reader("images", images),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=exclude,
        )
    # the calibration tool drops the model's metadata_props: copy the class names, mean/std etc. over
    import onnx

    props = onnx.load(str(fp32), load_external_data=False).metadata_props
    quantized = onnx.load(str(out))
    onnx.helper.set_model_props(quantized, {p.key: p.value for p in props})
    onnx.save(quantized, str(out))


@torch.no_grad()
def _agreement(a: torch.nn.Module, b: torch.nn.Module, images: torch.Tensor) -> float:
    same = sum((a(x).argmax(1) == b(x).argmax(1)).sum().item() for x in images.split(64))
    return same / len(images)


def quantize_onnx(
    fp32_path: str | Path, out: str | Path, calib_images: torch.Tensor, attention_paths: list[str]
) -> QuantizeResult:
    """Static INT8 quantization of the ONNX model at ``fp32_path`` (input ``images``) calibrated on
    ``calib_images`` (N, C, H, W, prepared as for evaluation), written to ``out``; the gate remedy of the module
    docstring is applied when the model has attention modules (``attention_paths``) and needs it."""
    require_extra("onnx")
    fp32_path, out = Path(fp32_path), Path(out)
    fp32 = ExportedModel(fp32_path)
    _quantize(fp32_path, out, calib_images, [])
    agreement = _agreement(ExportedModel(out), fp32, calib_images)
    gate_nodes = attention_nodes(fp32_path, attention_paths) if attention_paths else []
    if agreement >= GATE_REMEDY_BELOW or not gate_nodes:
        return QuantizeResult(out, agreement, ())
    remedied = out.with_name(out.stem + ".gates-fp32.onnx")
    _quantize(fp32_path, remedied, calib_images, gate_nodes)
    remedied_agreement = _agreement(ExportedModel(remedied), fp32, calib_images)
    if remedied_agreement > agreement:
        remedied.replace(out)
        return QuantizeResult(out, remedied_agreement, tuple(gate_nodes))
    remedied.unlink()
    return QuantizeResult(out, agreement, ())
