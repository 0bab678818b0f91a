"""Latency and throughput of models in deployment runtimes (eager PyTorch, ONNX Runtime, OpenVINO; fp32 and
INT8), their rounds interleaved as in :mod:`attnlab.bench.throughput` so machine noise hits every subject alike.

Each model is exported once to ONNX (free batch and image size); ``ort`` and ``openvino`` run that file, INT8 runs
its static QDQ quantization calibrated on random inputs (speed only: the weights are random too). A subject's
figure is the median over rounds of the wall time and of the process CPU time of one batch.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from attnlab.models import create_model, default_input_size
from attnlab.utils import check_positive_int, markdown_table

from .formats import export_onnx
from .quantize import quantize_onnx
from .runtime import RUNTIMES, ExportedModel


@dataclass
class RuntimeResult:
    """One model x runtime x precision x batch size: median wall ms and process CPU ms per batch, images/s, and
    the ratio of the wall and CPU times to the first model of the same runtime, precision and batch size."""

    model: str
    runtime: str
    precision: str
    batch_size: int
    latency_ms: float
    cpu_ms: float
    images_per_s: float
    ratio: float = 1.0
    cpu_ratio: float = 1.0
    times_ms: list[float] = field(default_factory=list)


def _subjects(
    model_name: str, runtimes: Sequence[str], int8: bool, size: int, folder: Path, threads: int | None
) -> dict[tuple[str, str], Callable[[torch.Tensor], torch.Tensor]]:
    torch.manual_seed(0)
    model = create_model(model_name).eval()
    channels = default_input_size(model)[0]
    subjects = {}
    if "torch" in runtimes:
        subjects[("torch", "fp32")] = torch.no_grad()(model)
    if not set(runtimes) & {"ort", "openvino"}:
        return subjects
    fp32 = export_onnx(model, torch.randn(2, channels, size, size), folder / f"{model_name}.onnx", dynamic=True)
    paths = {"fp32": fp32}
    if int8:
        calib = torch.randn(16, channels, size, size, generator=torch.Generator().manual_seed(0))
        paths["int8"] = quantize_onnx(fp32, folder / f"{model_name}.int8.onnx", calib, []).path
    for runtime in ("ort", "openvino"):
        if runtime in runtimes:
            for precision, path in paths.items():
                subjects[(runtime, precision)] = ExportedModel(path, runtime, threads)
    return subjects


def runtime_benchmark(
    models: Sequence[str],
    runtimes: Sequence[str] = RUNTIMES,
    *,
    int8: bool = False,
    batch_sizes: Sequence[int] = (1,),
    img_size: int = 224,
    warmup: int = 2,
    repeats: int = 5,
    iters: int = 1,
    threads: int | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> list[RuntimeResult]:
    """Time every model in every runtime (and INT8 for ort/openvino when ``int8``) at every batch size, the
    subjects' rounds interleaved and rotated; ratios to the first model per runtime, precision and batch size."""
    bad = [r for r in runtimes if r not in RUNTIMES]
    if bad:
        raise ValueError(f"runtimes must be among {', '.join(RUNTIMES)}, got {', '.join(bad)}")
    for name, value in (("--repeats", repeats), ("--iters", iters), ("--img-size", img_size)):
        check_positive_int(name, value)
    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        subjects = {}
        for name in models:
            progress(f"exporting {name}")
            for (runtime, precision), run in _subjects(name, runtimes, int8, img_size, Path(tmp), threads).items():
                for batch in batch_sizes:
                    subjects[(name, runtime, precision, batch)] = run
        inputs = {b: torch.randn(b, 3, img_size, img_size) for b in batch_sizes}
        keys = list(subjects)
        for key in keys:
            for _ in range(warmup):
                subjects[key](inputs[key[3]])
        wall = {key: [] for key in keys}
        cpu = {key: [] for key in keys}
        for round_ in range(repeats):
            progress(f"round {round_ + 1}/{repeats}")
            shift = round_ % len(keys)
            for key in keys[shift:] + keys[:shift]:
                x = inputs[key[3]]
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(iters):
                    subjects[key](x)
                wall[key].append((time.perf_counter() - start) * 1000 / iters)
                cpu[key].append((time.process_time() - start_cpu) * 1000 / iters)
    results = []
    for key in keys:
        name, runtime, precision, batch = key
        latency = statistics.median(wall[key])
        results.append(
            RuntimeResult(
                name,
                runtime,
                precision,
                batch,
                latency,
                statistics.median(cpu[key]),
                batch * 1000 / latency,
                times_ms=wall[key],
            )
        )
    results.sort(key=lambda r: (RUNTIMES.index(r.runtime), r.precision, r.batch_size, list(models).index(r.model)))
    for result in results:
        first = next(
            r
            for r in results
            if (r.runtime, r.precision, r.batch_size) == (result.runtime, result.precision, result.batch_size)
        )
        result.ratio = result.latency_ms / first.latency_ms
        result.cpu_ratio = result.cpu_ms / first.cpu_ms
    return results


def runtime_markdown(results: Sequence[RuntimeResult]) -> str:
    """A Markdown table of :func:`runtime_benchmark` results."""
    rows = [
        [
            r.model,
            r.runtime,
            r.precision,
            r.batch_size,
            f"{r.latency_ms:.1f}",
            f"{r.cpu_ms:.1f}",
            f"{r.images_per_s:.1f}",
            f"{r.ratio:.3f}",
            f"{r.cpu_ratio:.3f}",
            f"{min(r.times_ms):.1f}-{max(r.times_ms):.1f}",
        ]
        for r in results
    ]
    head = [
        "model",
        "runtime",
        "precision",
        "batch",
        "ms/batch",
        "CPU ms/batch",
        "images/s",
        "ratio",
        "CPU ratio",
        "range ms",
    ]
    return markdown_table(head, rows, align="lllrrrrrrr")
