"""Export to ONNX, torch.export (``.pt2``), TorchScript or OpenVINO, with the model's metadata in the file.

Every format leaves the batch size and the image height and width free unless ``dynamic=False``; a model that
cannot run at other sizes is refused with :class:`ExportRefused` naming what fixed the size.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import json
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

EXPORT_FORMATS = ("onnx", "pt2", "torchscript", "openvino")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".torchscript.pt", "openvino": ".xml"}
# the extra that provides each optional format, and the modules it brings
EXTRAS = {"onnx": ("onnx", "onnxscript", "onnxruntime"), "openvino": ("openvino",)}
INPUT_NAME, OUTPUT_NAME = "images", "logits"
EXTRA_FILE = "attnlab.json"  # the metadata of .pt2 and TorchScript files, which have no key/value properties
METADATA_KEYS = ("attnlab_version", "model", "classes", "mean", "std", "input_size", "preprocess")


class ExportRefused(ValueError):
    """The model cannot be exported as asked (e.g. it fixes the image size); the message says why and what to do."""


def require_extra(extra: str, modules: tuple[str, ...] | None = None) -> None:
    """ValueError with the one-line install command when a module of the optional ``extra`` is missing."""
    for module in modules or EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            raise ValueError(f"this needs {module}, which is not installed: pip install 'attnlab[{extra}]'") from None


def require_onnx() -> None:
    """ValueError with the install line when the ``onnx`` extra (onnx, onnxscript, onnxruntime) is missing."""
    require_extra("onnx")


def file_metadata(metadata: dict, input_shape: tuple[int, int, int]) -> dict[str, str]:
    """The string key/value pairs an exported file carries: checkpoint ``metadata`` (model, classes, preprocess)
    plus the attnlab version and the (C, H, W) input size; JSON for lists and mappings."""
    preprocess = metadata.get("preprocess") or {}
    values = {
        "attnlab_version": _attnlab_version(),
        "model": metadata.get("model"),
        "classes": metadata.get("classes"),
        "mean": preprocess.get("mean"),
        "std": preprocess.get("std"),
        "input_size": list(input_shape),
        "preprocess": preprocess or None,
    }
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items() if v is not None}


def read_file_metadata(values: dict[str, str]) -> dict:
    """Inverse of :func:`file_metadata`: a checkpoint-like metadata dict (model, classes, preprocess, img_size)."""
    decoded = {}
    for key in METADATA_KEYS:
        if key in values:
            decoded[key] = values[key] if key in ("attnlab_version", "model") else json.loads(values[key])
    if "input_size" in decoded:
        decoded["img_size"] = decoded["input_size"][-1]
    return decoded


def _attnlab_version() -> str:
    try:
        return importlib.metadata.version("attnlab")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


def _dynamic_shapes(dynamic: bool):
    return (
        ({0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC},) if dynamic else None
    )


def _first_line(err: BaseException) -> str:
    text = str(err).split("For more information")[0].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:3])[:400] if lines else type(err).__name__


def export_program(model: nn.Module, example: torch.Tensor, *, dynamic: bool = True) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` (eval mode) on ``example`` (N, C, H, W), with the batch size, height and width
    left free when ``dynamic``; ExportRefused when something in the model fixes one of them."""
    try:
        program = torch.export.export(model.eval(), (example,), dynamic_shapes=_dynamic_shapes(dynamic))
        if dynamic:
            # a size the model fixes can also end as a guard of the program rather than an export error
            _, channels, height, width = example.shape
            with torch.no_grad():
                program.module()(example.new_zeros(1, channels, height + height // 2, width + width // 4))
        return program
    except Exception as err:  # torch.export raises many error types (UserError, GuardOnDataDependent, ...)
        if dynamic:
            raise ExportRefused(
                f"{type(model).__name__} cannot be exported with a free batch size and image size: "
                f"{_first_line(err)}; export at the fixed size with --static"
            ) from err
        raise ExportRefused(f"torch.export failed: {_first_line(err)}") from err


def export_pt2(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    *,
    dynamic: bool = True,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Save the :func:`export_program` of ``model`` (an ExportedProgram, ``torch.export.load`` reads it)."""
    path = Path(path)
    extra = {EXTRA_FILE: json.dumps(metadata or {})}
    torch.export.save(export_program(model, example, dynamic=dynamic), str(path), extra_files=extra)
    return path


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    *,
    opset: int = 18,
    dynamic: bool = False,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Export ``model`` (eval mode) traced on ``example`` to ONNX at ``path``: input ``images``, output
    ``logits``, ``metadata`` in the model's metadata_props; batch size, height and width free when ``dynamic``."""
    return save_onnx(export_program(model, example, dynamic=dynamic), path, opset=opset, metadata=metadata)


def save_onnx(
    program: torch.export.ExportedProgram, path: str | Path, *, opset: int = 18, metadata: dict[str, str] | None = None
) -> Path:
    """Translate an :func:`export_program` to ONNX at ``path`` (see :func:`export_onnx`)."""
    require_onnx()
    path = Path(path)
    try:
        onnx_program = torch.onnx.export(
            program,
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            verbose=False,
        )
    except Exception as err:  # torch.onnx raises its own error types for an opset or op it cannot export
        raise ExportRefused(
            f"ONNX export at opset {opset} failed: {_first_line(err)}; try the default --opset 18"
        ) from err
    onnx_program.model.metadata_props.update(metadata or {})
    onnx_program.save(str(path))
    return path


def export_torchscript(
    model: nn.Module, example: torch.Tensor, path: str | Path, *, metadata: dict[str, str] | None = None
) -> Path:
    """Trace ``model`` (in eval mode) on ``example`` and save the TorchScript module at ``path``.

    Tracing rather than scripting: it records what runs, forward hooks (``attnlab.attach``) included; the batch
    size and image size stay free where shapes are read at run time, which the checks at other sizes verify.
    """
    path = Path(path)
    with quiet_jit():
        # The input checks (``if x.shape[1] != channels``) become constants in the trace; they hold for any input
        # of the traced channel count, which is all the traced model accepts anyway.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # Traced with autograd on, so gates record their out-of-place product and the module also runs under
        # autograd; torch's own check re-runs it under no_grad, where in-place gates take the other branch, so it
        # is off: the export is checked against eager PyTorch on fresh inputs instead.
        traced = torch.jit.trace(model.eval(), example, check_trace=False)
    traced.save(str(path), _extra_files={EXTRA_FILE: json.dumps(metadata or {})})
    return path


def export_openvino(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    *,
    opset: int = 18,
    dynamic: bool = True,
    metadata: dict[str, str] | None = None,
) -> Path:
    """OpenVINO IR (``path`` .xml + .bin beside it) converted from the ONNX export, ``metadata`` in its rt_info."""
    require_extra("openvino")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(
            model, example, Path(tmp) / "model.onnx", opset=opset, dynamic=dynamic, metadata=metadata
        )
        return onnx_to_openvino(onnx_path, path)


def onnx_to_openvino(onnx_path: str | Path, path: str | Path) -> Path:
    """Convert an ONNX file (fp32, or INT8 QDQ) to OpenVINO IR at ``path``, its metadata_props into rt_info."""
    require_extra("openvino")
    import onnx
    import openvino as ov

    path = Path(path)
    converted = ov.convert_model(str(onnx_path))
    for prop in onnx.load(str(onnx_path), load_external_data=False).metadata_props:
        converted.set_rt_info(prop.value, ["attnlab", prop.key])
    ov.save_model(converted, str(path), compress_to_fp16=False)
    return path


@contextlib.contextmanager
def quiet_jit() -> Iterator[None]:
    """Silence torch.jit's deprecation notices: TorchScript is what C++ and mobile runtimes still load."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r"`torch\.jit\.")
        yield


def write_export(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    format: str,
    *,
    opset: int = 18,
    dynamic: bool = True,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``model`` traced on ``example`` in ``format`` (one of :data:`EXPORT_FORMATS`) to ``path``."""
    if format == "onnx":
        return export_onnx(model, example, path, opset=opset, dynamic=dynamic, metadata=metadata)
    if format == "openvino":
        return export_openvino(model, example, path, opset=opset, dynamic=dynamic, metadata=metadata)
    if format == "pt2":
        return export_pt2(model, example, path, dynamic=dynamic, metadata=metadata)
    if format == "torchscript":
        return export_torchscript(model, example, path, metadata=metadata)
    raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
