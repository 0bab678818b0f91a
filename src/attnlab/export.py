"""Export to ONNX or TorchScript and check the exported model against PyTorch on random inputs."""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attnlab.engine.inference import checkpoint_path, load_model
from attnlab.models import default_input_size
from attnlab.utils import check_int, check_writable_folder, max_error

EXPORT_FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


def require_onnx() -> None:
    """ValueError with the install line when the ``onnx`` extra (onnx, onnxscript, onnxruntime) is missing."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise ValueError(
                f"ONNX export needs {module}, which is not installed: pip install 'attnlab[onnx]'"
            ) from None


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: str | Path, *, opset: int = 18, dynamic_batch: bool = False
) -> Path:
    """Export ``model`` (in eval mode) traced on ``example`` to an ONNX file at ``path``."""
    path = Path(path)
    model = model.eval()
    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    try:
        program = torch.onnx.export(
            model, (example,), dynamo=True, opset_version=opset, dynamic_shapes=dynamic_shapes, verbose=False
        )
    except Exception as err:  # torch.onnx raises its own error types for an opset or op it cannot export
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"ONNX export at opset {opset} failed: {reason}; try the default --opset 18") from err
    program.save(str(path))
    return path


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Trace ``model`` (in eval mode) on ``example`` and save the TorchScript module at ``path``.

    Tracing rather than scripting: it records what runs, forward hooks (``attnlab.attach``) included; the batch
    size stays free because shapes are read at run time.
    """
    path = Path(path)
    with _quiet_jit():
        # The input checks (``if x.shape[1] != channels``) become constants in the trace; they hold for any input
        # of the traced channel count, which is all the traced model accepts anyway.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # Traced with autograd on, so gates record their out-of-place product and the module also runs under
        # autograd; torch's own check re-runs it under no_grad, where in-place gates take the other branch, so it
        # is off: the export is checked against eager PyTorch on fresh inputs instead.
        traced = torch.jit.trace(model.eval(), example, check_trace=False)
    traced.save(str(path))
    return path


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch.jit's deprecation notices: TorchScript is what C++ and mobile runtimes still load."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r"`torch\.jit\.")
        yield


def _reference(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(inputs)


def onnx_max_error(path: str | Path, model: nn.Module, inputs: torch.Tensor) -> tuple[float, float]:
    """:func:`max_error` of onnxruntime running ``path`` vs ``model(inputs)`` in eval mode."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: inputs.numpy()})[0])
    return max_error(got, _reference(model, inputs))


def torchscript_max_error(path: str | Path, model: nn.Module, inputs: torch.Tensor) -> tuple[float, float]:
    """:func:`max_error` of the TorchScript module at ``path`` vs ``model(inputs)`` in eval mode."""
    with torch.no_grad(), _quiet_jit():
        got = torch.jit.load(str(path), map_location="cpu")(inputs)
    return max_error(got, _reference(model, inputs))


@dataclass(frozen=True)
class ExportResult:
    """An exported file and how closely it reproduces PyTorch on random inputs of ``check_shape``."""

    path: Path
    format: str
    check_shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    atol: float

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= self.atol

    def __str__(self) -> str:
        verdict = "within" if self.ok else "OVER"
        return (
            f"wrote {self.path} ({self.format}, {self.path.stat().st_size / 2**20:.1f} MiB); vs PyTorch on a "
            f"{self.check_shape} batch: max abs error {self.max_abs_error:.3g} ({verdict} atol {self.atol:g}), "
            f"max rel error {self.max_rel_error:.3g}"
        )


def export_model(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    path: str | Path,
    format: str = "onnx",
    *,
    opset: int = 18,
    dynamic_batch: bool = False,
    atol: float = 1e-4,
    seed: int = 0,
) -> ExportResult:
    """Export ``model`` for (C, H, W) inputs to ``path`` and measure the error of the exported file.

    Traced on a batch of 2; checked on fresh random inputs, of batch 3 where the batch size is free
    (``dynamic_batch`` ONNX, TorchScript), so a batch size baked into the graph shows up as an error.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    if format == "onnx":
        require_onnx()
        check_int("opset", opset, 7)
    if atol <= 0:
        raise ValueError(f"atol must be > 0, got {atol}")
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("export_model checks the export on the CPU in float32; pass model.cpu().float()")
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(2, *input_shape, generator=generator)
    check_batch = 3 if dynamic_batch or format == "torchscript" else 2
    inputs = torch.randn(check_batch, *input_shape, generator=generator)
    if format == "onnx":
        export_onnx(model, example, path, opset=opset, dynamic_batch=dynamic_batch)
        errors = onnx_max_error(path, model, inputs)
    else:
        export_torchscript(model, example, path)
        errors = torchscript_max_error(path, model, inputs)
    return ExportResult(Path(path), format, tuple(inputs.shape), *errors, atol)


def export_checkpoint(
    run_or_ckpt: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    *,
    opset: int = 18,
    dynamic_batch: bool = False,
    atol: float = 1e-4,
    overwrite: bool = False,
) -> ExportResult:
    """Export the model of a run directory or checkpoint (``attnlab train`` output) at its training image size.

    ``out`` defaults to the checkpoint's path with ``.onnx`` or ``.torchscript.pt`` for its suffix; an existing
    file there is a ValueError unless ``overwrite``.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    out = Path(out) if out else checkpoint_path(run_or_ckpt).with_suffix(SUFFIXES[format])
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists already; pass --overwrite to replace it, or choose another --out")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file path")
    check_writable_folder(out.parent, "the folder of --out")
    model, metadata = load_model(run_or_ckpt, "cpu")
    channels, height, width = default_input_size(model)
    size = metadata.get("preprocess", {}).get("img_size") or metadata.get("img_size")
    input_shape = (channels, size, size) if size else (channels, height, width)
    return export_model(model, input_shape, out, format, opset=opset, dynamic_batch=dynamic_batch, atol=atol)
