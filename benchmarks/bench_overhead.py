"""Attention overhead vs plain ResNet-50 and attnlab vs timm, measured on this machine's CPU.

Runs ``attnlab.bench.benchmark`` (repeats interleaved across the models) for ResNet-50, SE-, ECA-, CBAM-ResNet-50
and EPSANet-50 with their equal timm architectures, counts the large tensor allocations of one forward pass
(a noise-free explanation of the differences), checks the issue's targets and writes Markdown:

    .venv/bin/python benchmarks/bench_overhead.py --out benchmarks/results/overhead_cpu.md

It refuses to start while the 1-minute load average is above ``--max-load`` (other processes would distort
the timings) unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import torch

import attnlab
from attnlab.bench import benchmark, environment, results_markdown
from attnlab.bench.timm_twins import create_timm_twin

MODELS = ["resnet50", "se_resnet50", "eca_resnet50", "cbam_resnet50", "epsanet50"]
# Inference throughput ratio to ResNet-50 in the same run (issue 5); the ECA paper measured 0.973 / 0.873 /
# 0.654 on a GPU.
OVERHEAD_TARGETS = {"eca_resnet50": 0.99, "se_resnet50": 0.97, "cbam_resnet50": 0.90}
BIG_ALLOCATION = 1 << 20


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


def target_lines(results) -> list[str]:
    by_name = {r.model: r for r in results}
    lines = ["| check | target | wall-clock | CPU time | met |", "|---|---|---|---|---|"]
    for name, target in OVERHEAD_TARGETS.items():
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
    results = benchmark(
        models,
        img_size=args.img_size,
        batch_size=args.batch_size,
        device="cpu",
        vs_timm=True,
        train=not args.no_train,
        warmup=args.warmup,
        repeats=args.repeats,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )
    load_after = os.getloadavg()[0]
    env = environment("cpu")
    text = [
        "# Attention overhead and timm parity on CPU",
        "",
        f"- hardware: {lscpu_model_name()} ({os.cpu_count()} cores), {env['torch_threads']} torch threads",
        f"- versions: Python {env['python']}, torch {env['torch']}, timm {env.get('timm', '-')}, "
        f"attnlab {env['attnlab']}",
        f"- command: `{' '.join(shlex.quote(a) for a in [sys.executable.split('/')[-1], *sys.argv])}`",
        f"- setting: batch {args.batch_size}, {args.img_size} px, fp32, contiguous (NCHW) format, eager; "
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
        "## Targets",
        "",
        *target_lines(results),
        "",
        "## Large allocations in one inference forward (batch 2, torch.profiler; independent of timing noise)",
        "",
        allocation_table([m for m in models if m in MODELS], args.img_size),
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
