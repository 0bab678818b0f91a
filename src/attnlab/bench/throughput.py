"""Speed and cost of models measured side by side: parameters, FLOPs, inference and training-step throughput,
latency and memory, with the models' repeats interleaved so machine noise hits all of them alike.

Method. Every model is built, counted (parameters; FLOPs with ``torch.utils.flop_counter`` in eval mode, batch
1) and warmed up first. Then ``repeats`` rounds run: in each round every model times ``iters`` inference
batches, then every model times ``iters`` training steps (forward, cross-entropy, backward, SGD step), the
order rotating by one model per round. A model's figure is the median over its rounds (CUDA events on GPU,
``perf_counter`` on CPU), so a burst of load from another process lands in one round of every model instead
of in all rounds of one model.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.bench.timm_twins import TIMM_TWINS, create_timm_twin
from attnlab.models import create_model, default_input_size
from attnlab.summary import summary
from attnlab.utils import autocast, check_int, check_positive_int, markdown_table, resolve_amp, resolve_device

MB = 1024**2


@dataclass
class BenchResult:
    """What ``benchmark`` measured for one model. Throughputs are images/s at the run's batch size; latency is
    the median wall time of one inference batch. ``saved_activation_mb`` is what autograd keeps for backward in
    one training forward (activations and the input batch, parameters excluded); ``peak_*_mb`` (CUDA only, None
    on CPU) is the peak allocated memory during one step minus what was allocated before it (weights,
    gradients and optimiser state of all resident models are thereby excluded). ``*_cpu_ms`` (CPU only) is
    the median process CPU time of a batch (``*_cpu_times_ms``: each round's). Ratios are to the first model of
    the run (``infer_cpu_ratio`` from the CPU times); ``timm`` holds the same measurements of the equal timm
    architecture (``--vs-timm``)."""

    model: str
    params: int
    flops: int
    input_size: tuple[int, int, int]
    batch_size: int
    infer_images_per_s: float
    infer_latency_ms: float
    train_images_per_s: float | None
    train_step_ms: float | None
    saved_activation_mb: float | None
    peak_infer_mb: float | None
    peak_train_mb: float | None
    infer_cpu_ms: float | None = None
    train_cpu_ms: float | None = None
    infer_ratio: float = 1.0
    train_ratio: float | None = None
    infer_cpu_ratio: float | None = None
    infer_times_ms: list[float] = field(default_factory=list)
    train_times_ms: list[float] = field(default_factory=list)
    infer_cpu_times_ms: list[float] = field(default_factory=list)
    train_cpu_times_ms: list[float] = field(default_factory=list)
    timm: BenchResult | None = None
    timm_note: str = ""

    @property
    def params_match_timm(self) -> bool | None:
        return None if self.timm is None else self.params == self.timm.params

    @property
    def vs_timm_infer(self) -> float | None:
        return None if self.timm is None else self.infer_images_per_s / self.timm.infer_images_per_s

    @property
    def vs_timm_infer_cpu(self) -> float | None:
        if self.timm is None or self.infer_cpu_ms is None:
            return None
        return self.timm.infer_cpu_ms / self.infer_cpu_ms

    @property
    def vs_timm_train(self) -> float | None:
        if self.timm is None or self.train_images_per_s is None:
            return None
        return self.train_images_per_s / self.timm.train_images_per_s

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "timm"}
        out["input_size"] = list(self.input_size)
        out["timm"] = self.timm.to_dict() if self.timm is not None else None
        out.update(
            params_match_timm=self.params_match_timm,
            vs_timm_infer=self.vs_timm_infer,
            vs_timm_infer_cpu=self.vs_timm_infer_cpu,
            vs_timm_train=self.vs_timm_train,
        )
        return out


def time_call(fn: Callable[[], object], iters: int, device: torch.device) -> tuple[float, float | None]:
    """(wall seconds, process CPU seconds) per call of ``fn``, averaged over ``iters`` back-to-back calls.
    On GPU the wall time comes from CUDA events and the CPU time is None. On a CPU shared with other
    processes the CPU time (all threads of this process) is the steadier figure: waiting for a core is not
    counted in it."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000 / iters, None
    start_s, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start_s) / iters, (time.process_time() - start_cpu) / iters


def count_flops(model: nn.Module, input_size: Sequence[int]) -> int:
    """FLOPs of one (1, *input_size) forward pass in eval mode (``torch.utils.flop_counter``: convs and matmuls,
    1 multiply-accumulate = 2 FLOPs), via :func:`attnlab.summary`."""
    return summary(model, tuple(input_size)).flops


def saved_activation_bytes(model: nn.Module, forward: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct tensor storages autograd saves for backward during ``forward()``, parameters
    excluded: the activation memory a training step holds at its peak, independent of the allocator."""
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in param_storages:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = forward()
    del output
    return sum(saved.values())


class _Subject:
    """One model under test with its input batch, optimiser and the timings collected so far."""

    def __init__(
        self,
        name: str,
        model: nn.Module,
        input_size: tuple[int, int, int],
        batch_size: int,
        num_classes: int,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        channels_last: bool,
        compile: bool,
    ):
        self.name = name
        self.params = sum(p.numel() for p in model.parameters())
        self.flops = count_flops(model, input_size)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=memory_format)
        self.runner = torch.compile(self.model) if compile else self.model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-4, momentum=0.9)
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(batch_size, *input_size, generator=generator).to(device, memory_format=memory_format)
        self.labels = torch.randint(0, num_classes, (batch_size,), generator=generator).to(device)
        self.device, self.amp_dtype = device, amp_dtype
        self.infer_s: list[tuple[float, float | None]] = []
        self.train_s: list[tuple[float, float | None]] = []
        self.peak_infer_mb = self.peak_train_mb = self.saved_activation_mb = None

    def infer(self) -> None:
        self.model.eval()
        with torch.inference_mode(), autocast(self.device, self.amp_dtype):
            self.runner(self.images)

    def loss(self, model: nn.Module) -> torch.Tensor:
        with autocast(self.device, self.amp_dtype):
            return F.cross_entropy(model(self.images).float(), self.labels)

    def train_step(self) -> None:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        self.loss(self.runner).backward()
        self.optimizer.step()

    def measure_memory(self, train: bool) -> None:
        if train:
            self.model.train()
            self.saved_activation_mb = saved_activation_bytes(self.model, lambda: self.loss(self.model)) / MB
        if self.device.type != "cuda":
            return
        self.peak_infer_mb = _peak_extra_mb(self.infer, self.device)
        if train:
            self.peak_train_mb = _peak_extra_mb(self.train_step, self.device)


def _peak_extra_mb(fn: Callable[[], None], device: torch.device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / MB


def benchmark(
    models: Sequence[str],
    *,
    img_size: int | None = None,
    batch_size: int = 16,
    device: str | torch.device = "auto",
    amp: str = "auto",
    channels_last: bool = False,
    compile: bool = False,
    vs_timm: bool = False,
    train: bool = True,
    warmup: int = 2,
    repeats: int = 5,
    iters: int = 1,
    num_classes: int = 1000,
    progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Benchmark the attnlab models ``models`` (registry names) in one interleaved run.

    ``img_size`` is the image side (default: each model's own, e.g. 224); ``amp`` is a mode of
    :data:`attnlab.utils.AMP_MODES` ('auto': bf16 on CUDA, off on CPU);
    ``vs_timm`` also measures the equal timm architecture of each model that has one (see
    :mod:`attnlab.bench.timm_twins`) in the same rounds. ``train=False`` skips the training step.
    Returns one :class:`BenchResult` per model, in order; ratios are to ``models[0]``.
    """
    if isinstance(models, str) or not models:
        raise ValueError(f"models must be a non-empty list of model names, got {models!r}")
    check_positive_int("batch_size", batch_size)
    check_positive_int("repeats", repeats)
    check_positive_int("iters", iters)
    check_positive_int("num_classes", num_classes)
    check_int("warmup", warmup, 0)
    device = resolve_device(device)
    amp_dtype = resolve_amp(amp, device)
    say = progress or (lambda message: None)

    subjects: list[tuple[_Subject, _Subject | None]] = []
    for name in models:
        model = create_model(name, num_classes=num_classes)
        size = (3, img_size, img_size) if img_size else tuple(default_input_size(model))
        options = {
            "input_size": size,
            "batch_size": batch_size,
            "num_classes": num_classes,
            "device": device,
            "amp_dtype": amp_dtype,
            "channels_last": channels_last,
            "compile": compile,
        }
        ours = _Subject(name, model, **options)
        twin_model = create_timm_twin(name, num_classes) if vs_timm else None
        twin = _Subject(f"timm:{name}", twin_model, **options) if twin_model is not None else None
        subjects.append((ours, twin))
    everyone = [s for pair in subjects for s in pair if s is not None]

    cudnn_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        for subject in everyone:
            say(f"warm-up {subject.name}")
            for _ in range(warmup):
                subject.infer()
                if train:
                    subject.train_step()
            subject.measure_memory(train)
        for round_index in range(repeats):
            shift = round_index % len(everyone)
            order = everyone[shift:] + everyone[:shift]
            say(f"round {round_index + 1}/{repeats}")
            for subject in order:
                subject.infer_s.append(time_call(subject.infer, iters, device))
            for subject in order if train else ():
                subject.train_s.append(time_call(subject.train_step, iters, device))
    finally:
        torch.backends.cudnn.benchmark = cudnn_benchmark

    results = []
    for ours, twin in subjects:
        result = _result(ours, batch_size)
        if twin is not None:
            result.timm = _result(twin, batch_size)
        if vs_timm:
            twin_info = TIMM_TWINS.get(ours.name)
            result.timm_note = twin_info.note if twin_info else "timm has no equal architecture"
        results.append(result)
    for result in results:
        result.infer_ratio = result.infer_images_per_s / results[0].infer_images_per_s
        if result.infer_cpu_ms is not None:
            result.infer_cpu_ratio = results[0].infer_cpu_ms / result.infer_cpu_ms
        if train:
            result.train_ratio = result.train_images_per_s / results[0].train_images_per_s
    return results


def _median_ms(values: list[float | None]) -> float | None:
    return None if not values or values[0] is None else 1000 * statistics.median(values)


def _result(subject: _Subject, batch_size: int) -> BenchResult:
    infer_s = statistics.median(wall for wall, _ in subject.infer_s)
    train_s = statistics.median(wall for wall, _ in subject.train_s) if subject.train_s else None
    return BenchResult(
        model=subject.name,
        params=subject.params,
        flops=subject.flops,
        input_size=tuple(subject.images.shape[1:]),
        batch_size=batch_size,
        infer_images_per_s=batch_size / infer_s,
        infer_latency_ms=infer_s * 1000,
        train_images_per_s=batch_size / train_s if train_s else None,
        train_step_ms=train_s * 1000 if train_s else None,
        saved_activation_mb=subject.saved_activation_mb,
        peak_infer_mb=subject.peak_infer_mb,
        peak_train_mb=subject.peak_train_mb,
        infer_cpu_ms=_median_ms([cpu for _, cpu in subject.infer_s]),
        train_cpu_ms=_median_ms([cpu for _, cpu in subject.train_s]),
        infer_times_ms=[wall * 1000 for wall, _ in subject.infer_s],
        train_times_ms=[wall * 1000 for wall, _ in subject.train_s],
        infer_cpu_times_ms=[cpu * 1000 for _, cpu in subject.infer_s if cpu is not None],
        train_cpu_times_ms=[cpu * 1000 for _, cpu in subject.train_s if cpu is not None],
    )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def results_markdown(results: Sequence[BenchResult]) -> str:
    """Markdown tables of ``results``: one row per model, then (for a ``vs_timm`` run) the timm comparison."""
    on_cuda = any(r.peak_infer_mb is not None for r in results)
    on_cpu = any(r.infer_cpu_ms is not None for r in results)
    head = [
        "model",
        "params (M)",
        "GFLOPs",
        "infer img/s",
        "latency ms",
        "infer ratio",
        "train img/s",
        "train ratio",
        "saved act. MB",
    ]
    head += ["peak infer MB", "peak train MB"] if on_cuda else []
    head += ["infer CPU ms", "CPU-time ratio", "train CPU ms"] if on_cpu else []
    rows = []
    for r in results:
        row = [
            r.model,
            f"{r.params / 1e6:.3f}",
            f"{r.flops / 1e9:.3f}",
            f"{r.infer_images_per_s:.2f}",
            f"{r.infer_latency_ms:.1f}",
            f"{r.infer_ratio:.3f}",
            _fmt(r.train_images_per_s, ".2f"),
            _fmt(r.train_ratio, ".3f"),
            _fmt(r.saved_activation_mb, ".1f"),
        ]
        row += [_fmt(r.peak_infer_mb, ".1f"), _fmt(r.peak_train_mb, ".1f")] if on_cuda else []
        row += (
            [_fmt(r.infer_cpu_ms, ".0f"), _fmt(r.infer_cpu_ratio, ".3f"), _fmt(r.train_cpu_ms, ".0f")] if on_cpu else []
        )
        rows.append(row)
    lines = [markdown_table(head, rows)]
    if any(r.timm is not None or r.timm_note for r in results):
        head = [
            "model",
            "timm params (M)",
            "params equal",
            "timm infer img/s",
            "attnlab/timm infer",
            "timm train img/s",
            "attnlab/timm train",
        ] + (["attnlab/timm infer (CPU time)"] if on_cpu else [])
        rows = []
        for r in results:
            t = r.timm
            if t is None:
                rows.append([r.model] + ["-"] * (len(head) - 1))
                continue
            rows.append(
                [
                    r.model,
                    f"{t.params / 1e6:.3f}",
                    "yes" if r.params_match_timm else "NO",
                    f"{t.infer_images_per_s:.2f}",
                    _fmt(r.vs_timm_infer, ".3f"),
                    _fmt(t.train_images_per_s, ".2f"),
                    _fmt(r.vs_timm_train, ".3f"),
                ]
                + ([_fmt(r.vs_timm_infer_cpu, ".3f")] if on_cpu else [])
            )
        lines += ["", markdown_table(head, rows), "", *(f"- {r.model}: {r.timm_note}" for r in results if r.timm_note)]
    return "\n".join(lines)
