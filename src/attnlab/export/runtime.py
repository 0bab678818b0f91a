"""Run an exported file in its runtime (ONNX Runtime, OpenVINO, torch.export, TorchScript) as a module."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from attnlab.engine.inference import load_model
from attnlab.utils import resolve_device

from .formats import EXTRA_FILE, METADATA_KEYS, quiet_jit, read_file_metadata, require_extra

RUNTIMES = ("torch", "ort", "openvino")


def exported_format(path: str | Path) -> str:
    """onnx, openvino, pt2 or torchscript, from the file name; ValueError for anything else."""
    name = Path(path).name
    for suffix, fmt in ((".onnx", "onnx"), (".xml", "openvino"), (".pt2", "pt2"), (".pt", "torchscript")):
        if name.endswith(suffix):
            return fmt
    raise ValueError(f"{path} is not an exported model: give a .onnx, OpenVINO .xml, .pt2 or TorchScript .pt file")


def default_runtime(fmt: str) -> str:
    return {"onnx": "ort", "openvino": "openvino"}.get(fmt, "torch")


def is_exported_model(path: str | Path) -> bool:
    """True for an existing file with an exported model's suffix (as opposed to a run folder or checkpoint)."""
    path = Path(path)
    return path.is_file() and any(path.name.endswith(s) for s in (".onnx", ".xml", ".pt2", ".pt"))


class ExportedModel(nn.Module):
    """An exported file run on the CPU: float (N, C, H, W) -> float (N, classes) logits, as a module.

    ``runtime``: ``ort`` (ONNX Runtime) or ``openvino`` for .onnx, ``openvino`` for .xml, ``torch`` for .pt2 and
    TorchScript; default the format's own. ``threads`` sets the runtime's intra-op threads (default: its choice).
    ``metadata`` holds what the file carries (model, classes, preprocess, img_size, attnlab_version).
    """

    def __init__(self, path: str | Path, runtime: str | None = None, threads: int | None = None):
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no exported model at {self.path}")
        self.format = exported_format(self.path)
        self.runtime = runtime or default_runtime(self.format)
        allowed = {"onnx": ("ort", "openvino"), "openvino": ("openvino",)}.get(self.format, ("torch",))
        if self.runtime not in allowed:
            raise ValueError(f"a {self.format} file runs with --runtime {' or '.join(allowed)}, not {self.runtime}")
        loader = {"ort": self._load_ort, "openvino": self._load_openvino, "torch": self._load_torch}[self.runtime]
        self.metadata, self._run = loader(threads)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._run(images.detach().float().cpu().contiguous())

    def _load_ort(self, threads: int | None):
        require_extra("onnx", ("onnxruntime",))
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run(images: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {name: images.numpy()})[0])

        return read_file_metadata(session.get_modelmeta().custom_metadata_map), run

    def _load_openvino(self, threads: int | None):
        require_extra("openvino")
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(self.path))
        if self.format == "onnx":
            import onnx

            values = {p.key: p.value for p in onnx.load(str(self.path), load_external_data=False).metadata_props}
        else:
            keys = [k for k in METADATA_KEYS if model.has_rt_info(["attnlab", k])]
            values = {k: model.get_rt_info(["attnlab", k]).astype(str) for k in keys}
        # f32 as in PyTorch: OpenVINO would otherwise run in bf16 on CPUs that have it
        config = {"INFERENCE_PRECISION_HINT": "f32", **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
        compiled = core.compile_model(model, "CPU", config)
        request = compiled.create_infer_request()

        def run(images: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.array(request.infer([images.numpy()])[0]))

        return read_file_metadata(values), run

    def _load_torch(self, threads: int | None):
        if threads:
            torch.set_num_threads(threads)
        extra = {EXTRA_FILE: ""}
        if self.format == "pt2":
            module = torch.export.load(str(self.path), extra_files=extra).module()
        else:
            with quiet_jit():
                module = torch.jit.load(str(self.path), map_location="cpu", _extra_files=extra)

        @torch.no_grad()
        def run(images: torch.Tensor) -> torch.Tensor:
            return module(images)

        return read_file_metadata(json.loads(extra[EXTRA_FILE] or "{}")), run


def load_for_inference(
    model_or_run: str | Path, device: str | torch.device = "auto"
) -> tuple[nn.Module, dict, torch.device]:
    """(model in eval mode, metadata, the device it runs on) of an exported file (.onnx, .xml, .pt2, TorchScript
    .pt; run on the CPU by its runtime, metadata from the file) or of a run directory / checkpoint (``load_model``
    on ``device``, ``auto``: CUDA when available)."""
    if is_exported_model(model_or_run):
        model = ExportedModel(model_or_run)
        if "classes" not in model.metadata or "preprocess" not in model.metadata:
            raise ValueError(
                f"{model_or_run} carries no attnlab metadata (class names, preprocessing); export it with "
                "`attnlab export RUN`, or give the run folder"
            )
        return model.eval(), model.metadata, torch.device("cpu")
    device = resolve_device(device)
    return *load_model(model_or_run, device), device
