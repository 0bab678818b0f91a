"""Benchmark: ResNet vs SE-ResNet vs ECA-ResNet on Oxford 17 Flowers with the ``keras-flowers`` recipe
(the 17-flowers SE-ResNet50 / ECA-ResNet50 seed experiment), several seeds each, mean +- std and wall time.

    .venv/bin/python benchmarks/flowers17.py --preset full      # ResNet-50 family, 224 px, 100 epochs (GPU)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/flowers17.py  # CPU-sized: ResNet-20 family, 32 px, 15 epochs
    .venv/bin/python benchmarks/flowers17.py --preset cpu-resnet18 --results benchmarks/results/flowers17_resnet18.md
                                                                 # ResNet-18 family, 64 px, 40 epochs (~1 h on CPU)

Every run is a normal ``attnlab train`` run directory under --work (finished runs are reused, interrupted ones
resumed, so the script can be re-run); decoded images are cached once in --work/cache. The accuracy of a run is
its best validation accuracy (the recipe keeps the best-val checkpoint); the last epoch's is reported too.
Results: a Markdown report (--results) with hardware, versions, the command and a table per model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torchvision

import attnlab
from attnlab.engine.config import config_from_run, resolve_config
from attnlab.engine.trainer import train

REPO = Path(__file__).resolve().parent.parent
PRESETS = {
    # The seed experiment as published (a GPU job).
    "full": {"models": ["resnet50", "se_resnet50", "eca_resnet50"], "img_size": 224, "epochs": 100},
    # Small enough for 2 CPU cores: CIFAR ResNet-20 family at 32 px, about 80 s per run on one free core.
    "cpu": {"models": ["resnet20", "se_resnet20", "eca_resnet20"], "img_size": 32, "epochs": 15},
    # The ImageNet ResNet-18 family at 64 px, about 8 s per epoch on 2 free cores.
    "cpu-resnet18": {"models": ["resnet18", "se_resnet18", "eca_resnet18"], "img_size": 64, "epochs": 40},
}


def read_history(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def train_once(model: str, seed: int, args: argparse.Namespace) -> dict:
    """Train (or reuse, or resume) one run; its best and last validation accuracy and its training time."""
    run_dir = Path(args.work) / f"{model}-s{seed}"
    history = read_history(run_dir)
    if len(history) < args.epochs:
        if (run_dir / "resume.safetensors").is_file():
            train(config_from_run(run_dir, epochs=args.epochs, device=args.device), resume=True)
        else:
            train(resolve_config("keras-flowers", model=model, data=args.data, img_size=args.img_size,
                                 epochs=args.epochs, seed=seed, device=args.device, workers=args.workers,
                                 cache_dir=str(Path(args.work) / "cache"), out=str(run_dir)))
        history = read_history(run_dir)
    params = sum(t.numel() for t in attnlab.create_model(model, num_classes=17).parameters())
    return {"model": model, "seed": seed, "params": params, "best": max(row["val_acc"] for row in history),
            "last": history[-1]["val_acc"], "seconds": sum(row["epoch_seconds"] for row in history)}


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} +- {100 * spread:.1f}"


def hardware() -> str:
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name()}"
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def report(runs: list[dict], args: argparse.Namespace, wall_seconds: float) -> str:
    lines = [
        "# Oxford 17 Flowers: ResNet vs SE-ResNet vs ECA-ResNet (keras-flowers recipe)",
        "",
        f"- Setting: preset `{args.preset}`; {', '.join(args.models)} at {args.img_size} px, {args.epochs} epochs, "
        f"seeds {', '.join(map(str, args.seeds))}; data {args.data} (1088 train / 272 test images, 17 classes).",
        "- Recipe: Keras-style augmentation (rotation 20, shifts 0.1, shear 10, zoom 0.1, flip, brightness "
        "0.7-1.3, nearest fill), rescale 1/255, Adam 1e-4 (x0.1 after epochs 40 and 80), batch 32, "
        "cross-entropy; accuracy = best validation top-1 over the epochs (the recipe keeps the best checkpoint).",
        f"- Hardware: {hardware()}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, attnlab {attnlab.__version__}.",
        f"- Command: `{' '.join([Path(sys.executable).name, *sys.argv])}` "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); finished "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {wall_seconds / 60:.1f} min in this invocation.",
        "",
        "| model | params | best val acc % (mean +- std) | last-epoch val acc % | train time per run "
        "| per seed (best) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for model in args.models:
        rows = [run for run in runs if run["model"] == model]
        lines.append(
            f"| {model} | {rows[0]['params']:,} | {mean_std([r['best'] for r in rows])} | "
            f"{mean_std([r['last'] for r in rows])} | {statistics.mean(r['seconds'] for r in rows):.0f} s | "
            + ", ".join(f"{100 * r['best']:.1f}" for r in rows) + " |"
        )
    lines += ["", "std is the sample standard deviation over seeds; with 272 test images one image is 0.37%."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--models", nargs="+", help="override the preset's models")
    parser.add_argument("--img-size", type=int, help="override the preset's image size")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "flowers17"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--work", default=str(REPO / "runs" / "bench-flowers17"), help="run directories")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "flowers17.md"))
    args = parser.parse_args()
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not Path(args.data).is_dir():
        raise SystemExit(f"no data at {args.data}; pass --data DIR (an ImageFolder root with train/ and test/)")
    start = time.perf_counter()
    runs = [train_once(model, seed, args) for model in args.models for seed in args.seeds]
    text = report(runs, args, time.perf_counter() - start)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
