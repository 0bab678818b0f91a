"""Export a model or a trained run and check the exported file in its runtime against eager PyTorch."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attnlab.data import Batches, Preprocess, load_splits
from attnlab.engine.batches import eval_batches_for
from attnlab.engine.checkpoint import require_metadata
from attnlab.engine.inference import checkpoint_path, load_model
from attnlab.models import attention_layers, default_input_size
from attnlab.utils import check_int, check_positive_int, check_writable_folder, max_error

from .formats import EXPORT_FORMATS, SUFFIXES, file_metadata, onnx_to_openvino, require_extra, write_export
from .quantize import quantize_onnx
from .runtime import ExportedModel


@dataclass(frozen=True)
class Agreement:
    """How an exported model's logits compare with PyTorch's on some inputs."""

    max_abs_error: float
    max_rel_error: float
    top1_agreement: float
    images: int


@dataclass(frozen=True)
class ExportResult:
    """An exported file; how closely it reproduces PyTorch on random inputs of ``check_shapes`` (and on real
    images in ``on_data`` when given)."""

    path: Path
    format: str
    check_shapes: tuple[tuple[int, ...], ...]
    max_abs_error: float
    max_rel_error: float
    atol: float
    on_data: Agreement | None = None

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= self.atol and (self.on_data is None or self.on_data.max_abs_error <= self.atol)

    def __str__(self) -> str:
        verdict = "within" if self.max_abs_error <= self.atol else "OVER"
        shapes = ", ".join(str(s) for s in self.check_shapes)
        text = (
            f"wrote {self.path} ({self.format}, {file_size(self.path) / 2**20:.1f} MiB); vs PyTorch on random "
            f"{shapes} batches: max abs error {self.max_abs_error:.3g} ({verdict} atol {self.atol:g}), "
            f"max rel error {self.max_rel_error:.3g}"
        )
        if self.on_data:
            d = self.on_data
            text += (
                f"; on {d.images} validation images: top-1 agreement {100 * d.top1_agreement:.2f}%, "
                f"max abs logit difference {d.max_abs_error:.3g}"
            )
        return text


def file_size(path: Path) -> int:
    """Bytes of an exported model, OpenVINO's .bin beside its .xml included."""
    weights = path.with_suffix(".bin")
    return path.stat().st_size + (weights.stat().st_size if path.suffix == ".xml" and weights.exists() else 0)


def check_shapes_for(input_shape: tuple[int, int, int], dynamic: bool) -> list[tuple[int, int, int, int]]:
    """Random-input shapes an export is checked at: the traced size at batch 3 and, when sizes are free, another
    (non-square) size at batch 1, so a batch size or image size baked into the graph shows up as an error."""
    channels, height, width = input_shape
    if not dynamic:
        return [(2, channels, height, width)]
    return [(3, channels, height, width), (1, channels, height + height // 2, width + width // 4)]


@torch.no_grad()
def compare_outputs(exported: nn.Module, model: nn.Module, inputs: list[torch.Tensor]) -> Agreement:
    """:class:`Agreement` of ``exported`` vs ``model`` (eval mode) over several input batches (sizes may differ)."""
    got = [exported(x).float() for x in inputs]
    want = [model.eval()(x).float() for x in inputs]
    worst = max((max_error(g, w) for g, w in zip(got, want)), key=lambda e: e[0])
    agree = sum((g.argmax(1) == w.argmax(1)).sum().item() for g, w in zip(got, want)) / sum(len(w) for w in want)
    return Agreement(*worst, agree, sum(len(w) for w in want))


def onnx_max_error(path: str | Path, model: nn.Module, inputs: torch.Tensor) -> tuple[float, float]:
    """:func:`max_error` of onnxruntime running ``path`` vs ``model(inputs)`` in eval mode."""
    result = compare_outputs(ExportedModel(path, "ort"), model, [inputs])
    return result.max_abs_error, result.max_rel_error


def export_model(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    path: str | Path,
    format: str = "onnx",
    *,
    opset: int = 18,
    dynamic: bool = True,
    atol: float = 1e-4,
    seed: int = 0,
    metadata: dict[str, str] | None = None,
    images: torch.Tensor | None = None,
) -> ExportResult:
    """Export ``model`` for (C, H, W) inputs to ``path`` and measure the error of the exported file in its runtime.

    Traced on a batch of 2; checked on fresh random inputs of :func:`check_shapes_for`, and on ``images`` (N, C, H,
    W, prepared as for evaluation) when given: top-1 agreement and max abs logit difference.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    if format in ("onnx", "openvino"):
        require_extra("onnx")
        check_int("opset", opset, 7)
    if atol <= 0:
        raise ValueError(f"atol must be > 0, got {atol}")
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("export_model checks the export on the CPU in float32; pass model.cpu().float()")
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(2, *input_shape, generator=generator)
    shapes = check_shapes_for(input_shape, dynamic)
    inputs = [torch.randn(shape, generator=generator) for shape in shapes]
    write_export(model, example, path, format, opset=opset, dynamic=dynamic, metadata=metadata)
    exported = ExportedModel(path)
    random = compare_outputs(exported, model, inputs)
    on_data = None
    if images is not None:
        on_data = compare_outputs(exported, model, list(images.split(64)))
    return ExportResult(Path(path), format, tuple(shapes), random.max_abs_error, random.max_rel_error, atol, on_data)


def validation_images(
    metadata: dict, data: str | None, val: str | None = None, limit: int = 2048
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels): up to ``limit`` validation images of ``data`` (or the tree ``val``), prepared as the run
    evaluated them."""
    batches = eval_batches_for(metadata, data=data, val=val, batch_size=256)
    images, labels, count = [], [], 0
    for x, y in batches.epoch(0):
        images.append(x)
        labels.append(y)
        count += len(x)
        if count >= limit:
            break
    return torch.cat(images)[:limit], torch.cat(labels)[:limit]


def calibration_images(metadata: dict, data: str, count: int = 256) -> torch.Tensor:
    """``count`` training images of ``data`` spread evenly over the split (so every class is in), prepared as the
    run evaluated images: what INT8 calibration sees."""
    require_metadata(metadata, "preprocess", "classes")
    preprocess = Preprocess.from_dict(metadata["preprocess"])
    splits = load_splits(data, size=preprocess.cache_size, fit=preprocess.fit)
    if splits.train is None:
        raise ValueError(f"--calib {data} has no training split to calibrate on; give data with train/")
    check_positive_int("calibration images", count)
    images = torch.cat([x for x, _ in Batches(splits.train, preprocess, batch_size=256, train=False).epoch(0)])
    step = max(1, len(images) // count)
    return images[::step][:count]


@dataclass(frozen=True)
class Int8Report:
    """Top-1 on the validation images of the fp32 export and its INT8 version, and how often they agree."""

    fp32_top1: float
    int8_top1: float
    agreement: float
    images: int
    calib_images: int
    fp32_nodes: int

    def __str__(self) -> str:
        remedy = f"; {self.fp32_nodes} attention nodes kept in fp32" if self.fp32_nodes else ""
        return (
            f"INT8 (static, QDQ, per-channel, {self.calib_images} calibration images{remedy}): on {self.images} "
            f"validation images top-1 fp32 {100 * self.fp32_top1:.2f}% vs int8 {100 * self.int8_top1:.2f}% "
            f"({100 * (self.int8_top1 - self.fp32_top1):+.2f} points), top-1 agreement {100 * self.agreement:.2f}%"
        )


@torch.no_grad()
def int8_report(fp32: nn.Module, int8: nn.Module, images: torch.Tensor, labels: torch.Tensor, **counts) -> Int8Report:
    a = torch.cat([fp32(x).argmax(1) for x in images.split(64)])
    b = torch.cat([int8(x).argmax(1) for x in images.split(64)])
    return Int8Report(
        (a == labels).float().mean().item(),
        (b == labels).float().mean().item(),
        (a == b).float().mean().item(),
        len(labels),
        **counts,
    )


def export_checkpoint(
    run_or_ckpt: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    *,
    opset: int = 18,
    dynamic: bool = True,
    atol: float = 1e-4,
    overwrite: bool = False,
    data: str | None = None,
    int8: bool = False,
    calib: str | None = None,
) -> tuple[ExportResult, Int8Report | None]:
    """Export the model of a run directory or checkpoint (``attnlab train`` output) at its training image size,
    with its class names, mean/std, input size and model name in the file; checked on ``data``'s validation
    images when given, else on random inputs.

    ``out`` defaults to the checkpoint's path with the format's suffix; an existing file there is a ValueError
    unless ``overwrite``. ``int8``: also write ``<out stem>.int8.onnx`` (or ``.int8.xml``), statically quantized
    on ``calib``'s training images (ONNX Runtime, see :mod:`.quantize`), and report top-1 of fp32 vs int8 on the
    validation images of ``data`` (default: of ``calib``).
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    if int8 and format not in ("onnx", "openvino"):
        raise ValueError(f"--int8 quantizes ONNX and OpenVINO exports, not {format}; add --format onnx")
    if int8 and not calib:
        raise ValueError("--int8 needs calibration images: add --calib DATA (data as for train; its train split)")
    out = Path(out) if out else checkpoint_path(run_or_ckpt).with_suffix(SUFFIXES[format])
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists already; pass --overwrite to replace it, or choose another --out")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file path")
    check_writable_folder(out.parent, "the folder of --out")
    model, metadata = load_model(run_or_ckpt, "cpu")
    input_shape = checkpoint_input_shape(model, metadata)
    images, labels = validation_images(metadata, data or calib) if data or calib else (None, None)
    result = export_model(
        model,
        input_shape,
        out,
        format,
        opset=opset,
        dynamic=dynamic,
        atol=atol,
        metadata=file_metadata(metadata, input_shape),
        images=images if data else None,
    )
    if not int8:
        return result, None
    int8_out = out.with_name(out.name.removesuffix(SUFFIXES[format]) + ".int8" + SUFFIXES[format])
    if int8_out.exists() and not overwrite:
        raise ValueError(f"{int8_out} exists already; pass --overwrite to replace it")
    calib_images = calibration_images(metadata, calib)
    paths = [layer["path"] for layer in attention_layers(model)]
    with tempfile.TemporaryDirectory() as tmp:
        fp32_onnx = out if format == "onnx" else Path(tmp) / "fp32.onnx"
        if format != "onnx":
            write_export(
                model,
                calib_images[:2],
                fp32_onnx,
                "onnx",
                opset=opset,
                dynamic=dynamic,
                metadata=file_metadata(metadata, input_shape),
            )
        int8_onnx = int8_out if format == "onnx" else Path(tmp) / "int8.onnx"
        quantized = quantize_onnx(fp32_onnx, int8_onnx, calib_images, paths)
        if format == "openvino":
            onnx_to_openvino(int8_onnx, int8_out)
    report = int8_report(
        ExportedModel(out),
        ExportedModel(int8_out),
        images,
        labels,
        calib_images=len(calib_images),
        fp32_nodes=len(quantized.fp32_nodes),
    )
    return result, report


def checkpoint_input_shape(model: nn.Module, metadata: dict) -> tuple[int, int, int]:
    """(C, H, W) a run was trained at: its image size, else the model's default input size."""
    channels, height, width = default_input_size(model)
    size = metadata.get("preprocess", {}).get("img_size") or metadata.get("img_size")
    return (channels, size, size) if size else (channels, height, width)
