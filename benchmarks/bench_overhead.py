"""Attention overhead vs plain ResNet-50 and attnlab vs timm, measured on this machine's CPU.

Runs ``attnlab.bench.benchmark`` (repeats interleaved across the models) for ResNet-50, SE-, ECA-, CBAM-ResNet-50
and EPSANet-50 with their equal timm architectures, eager and (``--compile``) compiled, counts the large tensor
allocations of one forward pass (a noise-free explanation of the differences), measures what autograd saves for
backward (backbones, their timm twins and ``attnlab.attach``'ed ResNet-50s), checks the targets of issues 5 and
14 and writes Markdown:

    .venv/bin/python benchmarks/bench_overhead.py --out benchmarks/results/overhead_cpu.md

The CPU-time ratios of the gate table are the median over rounds of the per-round ratio (plain model's process
CPU time / the model's, both from the same interleaved round), with the lowest and highest round as the spread.

It refuses to start while the 1-minute load average is above ``--max-load`` (other processes would distort
the timings) unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import torch

import attnlab
from attnlab.bench import benchmark, environment, results_markdown
from attnlab.bench.throughput import saved_activation_bytes
from attnlab.bench.timm_twins import create_timm_twin

MODELS = ["resnet50", "se_resnet50", "eca_resnet50", "cbam_resnet50", "epsanet50"]
# Inference throughput ratio to ResNet-50 in the same run (issue 5); the ECA paper measured 0.973 / 0.873 /
# 0.654 on a GPU.
OVERHEAD_TARGETS = {"eca_resnet50": 0.99, "se_resnet50": 0.97, "cbam_resnet50": 0.90}
BIG_ALLOCATION = 1 << 20
# Issue 14: saved-for-backward bytes / plain ResNet-50 (at most), CPU-time ratios to it (at least), eager and
# compiled: (saved, training step, inference).
GATE_TARGETS = {
    "se_resnet50": (1.02, 0.97, 0.98),
    "eca_resnet50": (1.02, 0.97, 0.98),
    "cbam_resnet50": (1.10, 0.90, 0.95),
}
ATTACH_TARGETS = {"se": 1.02, "eca": 1.02, "gct": 1.02, "cbam": 1.10}
MiB = 2**20


def lscpu_model_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return environment()["hardware"]
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")


def large_allocations(model: torch.nn.Module, input_size: int, batch_size: int = 2) -> tuple[int, float]:
    """(number, MB) of CPU allocations of >= 1 MB during one inference forward pass (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    model.eval()
    x = torch.randn(batch_size, 3, input_size, input_size)
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(x)
    sizes = [e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage >= BIG_ALLOCATION]
    return len(sizes), sum(sizes) / 2**20


def allocation_table(models: list[str], input_size: int) -> str:
    lines = [
        "| model | attnlab allocations >= 1 MB | attnlab MB | timm allocations >= 1 MB | timm MB |",
        "|---|---|---|---|---|",
    ]
    for name in models:
        ours = large_allocations(attnlab.create_model(name), input_size)
        twin = create_timm_twin(name)
        theirs = large_allocations(twin, input_size) if twin is not None else None
        lines.append(
            f"| {name} | {ours[0]} | {ours[1]:.0f} | " + (f"{theirs[0]} | {theirs[1]:.0f} |" if theirs else "- | - |")
        )
    return "\n".join(lines)


def paired_ratio(base, other, kind: str) -> tuple[float, float, float] | None:
    """(median, min, max) over rounds of base CPU time / other CPU time, ``kind`` 'infer' or 'train'."""
    a = getattr(base, f"{kind}_cpu_times_ms", None)
    b = getattr(other, f"{kind}_cpu_times_ms", None)
    if not a or not b:
        single = getattr(base, f"{kind}_cpu_ms"), getattr(other, f"{kind}_cpu_ms")
        return None if None in single else (single[0] / single[1],) * 3
    ratios = sorted(x / y for x, y in zip(a, b))
    return statistics.median(ratios), ratios[0], ratios[-1]


def _fmt_ratio(value: tuple[float, float, float] | None) -> str:
    return "-" if value is None else f"{value[0]:.3f} ({value[1]:.2f}-{value[2]:.2f})"


def attach_saved(attentions: list[str], input_size: int, batch_size: int) -> dict[str, float]:
    """Saved-for-backward MiB of plain ResNet-50 ('resnet50') and of ResNet-50 with each gate attached."""
    x = torch.randn(batch_size, 3, input_size, input_size)
    out = {}
    for name in ["resnet50", *attentions]:
        torch.manual_seed(0)
        model = attnlab.create_model("resnet50").train()
        if name != "resnet50":
            attnlab.attach(model, name, example=x[:1])
            model.train()
        out[name] = saved_activation_bytes(model, lambda m=model: m(x).sum()) / MiB
    return out


def gate_lines(eager, compiled, attached: dict[str, float]) -> list[str]:
    """The issue-14 table (memory and CPU-time ratios per model) and its targets."""
    base = eager[0]
    timm_base = base.timm
    lines = [
        "| model | saved MiB | saved ratio | timm saved MiB | timm saved ratio | train CPU ratio | infer CPU ratio "
        "| compiled train CPU ratio | compiled infer CPU ratio | timm train CPU ratio | timm infer CPU ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_compiled = {r.model: r for r in compiled} if compiled else {}
    checks = []
    for r in eager:
        t = r.timm
        saved_ratio = r.saved_activation_mb / base.saved_activation_mb if r.saved_activation_mb else None
        timm_ratio = (
            t.saved_activation_mb / timm_base.saved_activation_mb
            if t is not None and timm_base is not None and t.saved_activation_mb
            else None
        )
        c = by_compiled.get(r.model)
        cols = {
            "train": paired_ratio(base, r, "train"),
            "infer": paired_ratio(base, r, "infer"),
            "compiled train": paired_ratio(compiled[0], c, "train") if c is not None else None,
            "compiled infer": paired_ratio(compiled[0], c, "infer") if c is not None else None,
        }
        timm_cols = [paired_ratio(timm_base, t, k) if t is not None and timm_base else None for k in ("train", "infer")]
        lines.append(
            f"| {r.model} | {r.saved_activation_mb:.1f} | {saved_ratio:.3f} | "
            + (f"{t.saved_activation_mb:.1f} | {timm_ratio:.3f} | " if timm_ratio is not None else "- | - | ")
            + " | ".join(_fmt_ratio(v) for v in [*cols.values(), *timm_cols])
            + " |"
        )
        if r.model in GATE_TARGETS:
            max_saved, min_train, min_infer = GATE_TARGETS[r.model]
            checks.append((f"{r.model} saved / resnet50", f"<= {max_saved:.2f}", saved_ratio, saved_ratio <= max_saved))
            for key, ratio in cols.items():
                if ratio is None:
                    continue
                minimum = min_train if key.endswith("train") else min_infer
                checks.append((f"{r.model} {key} CPU ratio", f">= {minimum:.2f}", ratio[0], ratio[0] >= minimum))
    if attached:
        lines += [
            "",
            "`attnlab.attach(resnet50, name)` (after each block's last BN, blended from the identity):",
            "",
            "| attached | saved MiB | saved ratio |",
            "|---|---|---|",
        ]
        for name, mib in attached.items():
            ratio = mib / attached["resnet50"]
            lines.append(f"| {name} | {mib:.1f} | {ratio:.3f} |")
            if name in ATTACH_TARGETS:
                target = ATTACH_TARGETS[name]
                checks.append((f"attach {name} saved / resnet50", f"<= {target:.2f}", ratio, ratio <= target))
    lines += ["", "| check (issue 14) | target | measured | met |", "|---|---|---|---|"]
    lines += [f"| {name} | {target} | {value:.3f} | {'yes' if ok else 'NO'} |" for name, target, value, ok in checks]
    return lines


def target_lines(results) -> list[str]:
    by_name = {r.model: r for r in results}
    lines = ["| check | target | wall-clock | CPU time | met |", "|---|---|---|---|---|"]
    for name, target in OVERHEAD_TARGETS.items():
        if name not in by_name:
            continue
        r = by_name[name]
        lines.append(
            f"| {name} / resnet50 inference | >= {target:.2f} | {r.infer_ratio:.3f} | "
            f"{r.infer_cpu_ratio:.3f} | {'yes' if r.infer_ratio >= target else 'NO'} |"
        )
    for r in results:
        if r.timm is None:
            continue
        lines.append(
            f"| {r.model} attnlab / timm inference | >= 1.00 | {r.vs_timm_infer:.3f} | "
            f"{r.vs_timm_infer_cpu:.3f} | {'yes' if r.vs_timm_infer >= 1 else 'NO'} |"
        )
        if r.vs_timm_train is not None:
            lines.append(
                f"| {r.model} attnlab / timm training step | >= 1.00 | {r.vs_timm_train:.3f} | - | "
                f"{'yes' if r.vs_timm_train >= 1 else 'NO'} |"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-train", action="store_true", help="skip the training-step measurement")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile'd models (attnlab's)")
    parser.add_argument("--compile-timm", action="store_true", help="with --compile, compile the timm twins too")
    parser.add_argument("--attach", default="se,eca,cbam", help="gates to attach to resnet50 for the memory table")
    parser.add_argument("--no-allocations", action="store_true", help="skip the allocation count table")
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--force", action="store_true", help="measure even when the machine is busy")
    parser.add_argument("--out", default="benchmarks/results/overhead_cpu.md")
    parser.add_argument("--json", help="also write every result (with each round's times) as JSON")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    if load_before > args.max_load and not args.force:
        print(
            f"load average {load_before:.2f} > {args.max_load}: other processes would distort the timings; "
            "wait, or pass --force",
            file=sys.stderr,
        )
        return 1
    torch.set_num_threads(args.threads)
    models = [m for m in args.models.split(",") if m]
    settings = dict(img_size=args.img_size, batch_size=args.batch_size, device="cpu", train=not args.no_train)
    results = benchmark(
        models,
        **settings,
        vs_timm=True,
        warmup=args.warmup,
        repeats=args.repeats,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )
    compiled = None
    if args.compile:
        compiled = benchmark(
            models,
            **settings,
            compile=True,
            vs_timm=args.compile_timm,
            warmup=max(args.warmup, 2),
            repeats=args.repeats,
            progress=lambda message: print(f"compiled: {message}", file=sys.stderr, flush=True),
        )
    attached = attach_saved([a for a in args.attach.split(",") if a], args.img_size, args.batch_size)
    load_after = os.getloadavg()[0]
    env = environment("cpu")
    text = [
        "# Attention overhead and timm parity on CPU",
        "",
        f"- hardware: {lscpu_model_name()} ({os.cpu_count()} cores), {env['torch_threads']} torch threads",
        f"- versions: Python {env['python']}, torch {env['torch']}, timm {env.get('timm', '-')}, "
        f"attnlab {env['attnlab']}",
        f"- command: `{' '.join(shlex.quote(a) for a in [sys.executable.split('/')[-1], *sys.argv])}`",
        f"- setting: batch {args.batch_size}, {args.img_size} px, fp32, contiguous (NCHW) format, eager"
        + (" and compiled" if args.compile else "")
        + "; "
        f"{args.warmup} warm-up iteration(s), then the median of {args.repeats} rounds, the models' repeats "
        "interleaved round robin (the start rotating each round)",
        f"- 1-minute load average: {load_before:.2f} before, {load_after:.2f} after",
        "",
        "## Throughput, cost, memory",
        "",
        "Ratios are to resnet50 in the same run. `saved act. MB`: what autograd keeps for backward in one training "
        "forward (activations and input; parameters excluded); the CPU allocator has no peak counter, so no "
        "peak memory is reported on CPU. `CPU ms`: process CPU time per batch (both threads), steadier than "
        "wall-clock when other processes run.",
        "",
        results_markdown(results),
        "",
        "## Gate cost: memory and CPU time (issue 14)",
        "",
        "`saved`: MiB autograd keeps for backward in one training forward (`saved_tensors_hooks`, distinct storages, "
        "parameters excluded), and its ratio to the plain model of the same family (attnlab's resnet50, timm's "
        "resnet50). CPU ratios: plain model's process CPU time / this model's, median of the per-round ratios "
        "(lowest-highest round in brackets); > 1 means faster than plain. Compiled: `torch.compile(model)`, "
        "default mode" + (", timm twins too." if args.compile_timm else ", attnlab models only."),
        "",
        *gate_lines(results, compiled, attached),
        "",
        "## Targets",
        "",
        *target_lines(results),
        "",
        "## Large allocations in one inference forward (batch 2, torch.profiler; independent of timing noise)",
        "",
        "skipped (--no-allocations)"
        if args.no_allocations
        else allocation_table([m for m in models if m in MODELS], args.img_size),
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"environment": env, "results": [r.to_dict() for r in results]}, indent=2)
        )
    Path(args.out).write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
