"""The export matrix: every attention module x host model x format, exported with a free batch size and image size
and checked against eager PyTorch at two batch sizes and two image sizes."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attnlab.attention import attention_kind, create_attention
from attnlab.models import create_model
from attnlab.models.cifar_resnet import CifarResNet
from attnlab.retrofit import attach

from .check import check_shapes_for, compare_outputs
from .formats import ExportRefused, export_program, export_torchscript, save_onnx
from .runtime import ExportedModel

MATRIX_FORMATS = ("onnx", "pt2", "torchscript")
# host -> (C, H, W) the model is traced at; it is checked there and at a larger, non-square size
MATRIX_HOSTS = {
    "tiny": (3, 16, 16),
    "resnet8": (3, 32, 32),
    "resnet18": (3, 64, 64),
    "torchvision:resnet18": (3, 64, 64),
}
MATRIX_SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".torchscript.pt"}


@dataclass(frozen=True)
class MatrixCell:
    """One module x host x format: ``status`` is ok, refused (a clear ExportRefused at export), fails (an
    export error or an exported model that differs from PyTorch) or n/a; ``detail`` says why or the error."""

    attention: str
    host: str
    format: str
    status: str
    detail: str = ""
    max_abs_error: float | None = None


def matrix_hosts(attention: str) -> list[str]:
    """The hosts of ``attention`` in the matrix: a CIFAR ResNet-8 built with it (attnlab's ResNet-18 where its
    default groups need more than ResNet-8's 16-64 channels), and torchvision's ResNet-18 with a gate attached."""
    try:
        CifarResNet(8, attention=attention)
        small = "resnet8"
    except ValueError:
        small = "resnet18"
    return [small, "torchvision:resnet18"] if attention_kind(attention) == "gate" else [small]


def tiny_host(attention: str, num_classes: int = 4, channels: int = 64) -> nn.Sequential:
    """Stem conv-BN-ReLU, the ``attention`` module (a gate, or a conv-replacement module), pooled linear head:
    the smallest model that puts a module between a convolution and a classifier, for fast tests."""
    module = (
        create_attention(attention, channels)
        if attention_kind(attention) == "gate"
        else create_attention(attention, channels, channels)
    )
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        module,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, num_classes),
    )


def matrix_model(attention: str, host: str, num_classes: int = 4) -> nn.Module:
    """``host`` with ``attention``: an attnlab backbone built with it (``resnet8``: CIFAR ResNet-8, ``resnet18``)
    or a torchvision model with it attached after every residual branch (identity start off, so the gates do
    work); random weights, eval mode."""
    torch.manual_seed(0)
    if host == "tiny":
        return tiny_host(attention, num_classes).eval()
    if host == "resnet8":
        return CifarResNet(8, num_classes, attention=attention).eval()
    if host == "resnet18":
        return create_model("resnet18", attention=attention, num_classes=num_classes).eval()
    if attention_kind(attention) != "gate":
        raise ValueError(f"{attention} replaces convolutions; attach inserts gates only")
    model = create_model(host, num_classes=num_classes)
    attach(model, attention, init=None, example=torch.randn(1, *MATRIX_HOSTS[host]))
    return model.eval()


def _randomize_norms(model: nn.Module) -> None:
    """Non-trivial BatchNorm statistics, so eval-mode BN (and gates after it) are checked away from identity."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)


def run_matrix_row(
    attention: str, host: str, formats: tuple[str, ...] = MATRIX_FORMATS, atol: float = 1e-3, folder: Path | None = None
) -> list[MatrixCell]:
    """Export ``attention`` in ``host`` to each of ``formats`` and check each against eager PyTorch."""
    try:
        model = matrix_model(attention, host)
    except ValueError as err:
        return [MatrixCell(attention, host, fmt, "n/a", str(err)) for fmt in formats]
    _randomize_norms(model)
    input_shape = MATRIX_HOSTS[host]
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(2, *input_shape, generator=generator)
    inputs = [torch.randn(shape, generator=generator) for shape in check_shapes_for(input_shape, dynamic=True)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(folder or tmp)
        program, refusal = None, None
        if {"onnx", "pt2"} & set(formats):
            try:
                program = export_program(model, example, dynamic=True)
            except ExportRefused as err:
                refusal = str(err)
        cells = []
        for fmt in formats:
            path = folder / f"{attention}-{host.replace(':', '_')}{MATRIX_SUFFIXES[fmt]}"
            if fmt != "torchscript" and refusal:
                cells.append(MatrixCell(attention, host, fmt, "refused", refusal))
                continue
            cells.append(_check_cell(attention, host, fmt, model, program, example, inputs, path, atol))
    return cells


def _check_cell(attention, host, fmt, model, program, example, inputs, path: Path, atol: float) -> MatrixCell:
    try:
        if fmt == "onnx":
            save_onnx(program, path)
        elif fmt == "pt2":
            torch.export.save(program, str(path))
        else:
            export_torchscript(model, example, path)
        result = compare_outputs(ExportedModel(path), model, inputs)
    except ExportRefused as err:
        return MatrixCell(attention, host, fmt, "refused", str(err))
    except Exception as err:  # a runtime failing on the exported file is what the matrix records
        return MatrixCell(attention, host, fmt, "fails", f"{type(err).__name__}: {str(err).strip()[:200]}")
    if result.max_abs_error > atol:
        detail = f"max abs error {result.max_abs_error:.3g} > {atol:g} at {[tuple(x.shape) for x in inputs]}"
        return MatrixCell(attention, host, fmt, "fails", detail, result.max_abs_error)
    return MatrixCell(attention, host, fmt, "ok", "", result.max_abs_error)
