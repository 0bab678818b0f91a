"""Export to ONNX, torch.export, TorchScript and OpenVINO with the model's metadata in the file; run exported files
in ONNX Runtime / OpenVINO / PyTorch and check them against eager PyTorch."""

from .check import (
    Agreement,
    ExportResult,
    Int8Report,
    calibration_images,
    checkpoint_input_shape,
    compare_outputs,
    export_checkpoint,
    export_model,
    onnx_max_error,
    validation_images,
)
from .formats import (
    EXPORT_FORMATS,
    SUFFIXES,
    ExportRefused,
    export_onnx,
    export_program,
    export_pt2,
    export_torchscript,
    file_metadata,
    require_extra,
    require_onnx,
    write_export,
)
from .quantize import QuantizeResult, quantize_onnx
from .runtime import RUNTIMES, ExportedModel, exported_format, is_exported_model, load_for_inference

__all__ = [
    "EXPORT_FORMATS",
    "RUNTIMES",
    "QuantizeResult",
    "quantize_onnx",
    "SUFFIXES",
    "Agreement",
    "Int8Report",
    "calibration_images",
    "ExportRefused",
    "ExportResult",
    "ExportedModel",
    "checkpoint_input_shape",
    "compare_outputs",
    "export_checkpoint",
    "export_model",
    "export_onnx",
    "export_program",
    "export_pt2",
    "export_torchscript",
    "exported_format",
    "file_metadata",
    "is_exported_model",
    "load_for_inference",
    "onnx_max_error",
    "require_extra",
    "require_onnx",
    "validation_images",
    "write_export",
]
