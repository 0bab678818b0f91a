"""Benchmark: ResNet vs SE-ResNet vs ECA-ResNet on Oxford 17 Flowers with the ``keras-flowers`` recipe
(the 17-flowers SE-ResNet50 / ECA-ResNet50 seed experiment), several seeds each: ``attnlab compare`` plus the
facts a committed result needs (hardware, versions, command).

    .venv/bin/python benchmarks/flowers17.py --preset full            # ResNet-50 family, 224 px, 100 epochs (GPU)
    .venv/bin/python benchmarks/flowers17.py --preset cpu-resnet18    # ResNet-18 family, 64 px, 40 epochs (~1 h)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/flowers17.py --preset cpu   # ResNet-20 family, 32 px, 15 epochs

The runs live in --work (``WORK/runs/MODEL-sSEED``; finished runs are reused, interrupted ones resumed, so the
script can be re-run); decoded images are cached once in ``WORK/cache``. The results folder
(``benchmarks/results/flowers17-PRESET``) gets compare's report.md (after the setting, hardware and command),
report.json and PNGs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torchvision

from attnlab.bench import environment
from attnlab.bench.compare import CompareConfig, parse_models, parse_seeds, run_all, summarise, write_report
from attnlab.cli import comma_list

REPO = Path(__file__).resolve().parent.parent
PRESETS = {
    # The seed experiment as published (a GPU job).
    "full": {"models": ["resnet50", "se_resnet50", "eca_resnet50"], "img_size": 224, "epochs": 100},
    # The ImageNet ResNet-18 family at 64 px: about 5 s per epoch on 2 free cores.
    "cpu-resnet18": {"models": ["resnet18", "se_resnet18", "eca_resnet18"], "img_size": 64, "epochs": 40},
    # CIFAR ResNet-20 family at 32 px: about 80 s per run on one free core.
    "cpu": {"models": ["resnet20", "se_resnet20", "eca_resnet20"], "img_size": 32, "epochs": 15},
}


def setting(args: argparse.Namespace, wall_seconds: float) -> str:
    env = environment("cuda" if torch.cuda.is_available() else "cpu")
    return "\n".join(
        [
            "# Oxford 17 Flowers: ResNet vs SE-ResNet vs ECA-ResNet (keras-flowers recipe)",
            "",
            f"- Setting: preset `{args.preset}`; {', '.join(args.models)} at {args.img_size} px, {args.epochs} epochs, "
            f"seeds {', '.join(map(str, args.seeds))}; data {args.data} (1088 train / 272 test images, 17 classes).",
            "- Recipe: Keras-style augmentation (rotation 20, shifts 0.1, shear 10, zoom 0.1, flip, brightness "
            "0.7-1.3, nearest fill), rescale 1/255, Adam 1e-4 (x0.1 after epochs 40 and 80), batch 32, "
            "cross-entropy; the recipe keeps the best-val checkpoint, so `best val acc` is the seed experiment's "
            "number.",
            f"- Hardware: {env['device']}: {env['hardware']}, {os.cpu_count()} cores, torch threads "
            f"{env['torch_threads']}; Python {env['python']}, torch {env['torch']}, "
            f"torchvision {torchvision.__version__}, "
            f"attnlab {env['attnlab']}.",
            f"- Command: `{' '.join([Path(sys.executable).name, *sys.argv])}` "
            f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); finished "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {wall_seconds / 60:.1f} min in this invocation.",
            "- With 272 test images one image is 0.37 points.",
            "",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-resnet18")
    parser.add_argument("--models", type=comma_list(), help="override the preset's models (comma-separated)")
    parser.add_argument("--img-size", type=int, help="override the preset's image size")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds, counting up from --seed")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "flowers17"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--work", help="run directories (default: runs/bench-flowers17-PRESET)")
    parser.add_argument("--results", help="results folder (default: benchmarks/results/flowers17-PRESET)")
    args = parser.parse_args()
    args.seeds = parse_seeds(args.seeds, first=args.seed)
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    work = Path(args.work or REPO / "runs" / f"bench-flowers17-{args.preset}")
    results = Path(args.results or REPO / "benchmarks" / "results" / f"flowers17-{args.preset}")
    if not Path(args.data).is_dir():
        raise SystemExit(f"no data at {args.data}; pass --data DIR (an ImageFolder root with train/ and test/)")
    spec = CompareConfig(
        parse_models(args.models),
        "keras-flowers",
        args.seeds,
        str(work),
        {
            "data": args.data,
            "img_size": args.img_size,
            "epochs": args.epochs,
            "device": args.device,
            "workers": args.workers,
            "cache_dir": str(work / "cache"),
        },
    )
    start = time.perf_counter()
    run_all(spec)
    report = summarise(spec)
    path = write_report(report, results, preamble=setting(args, time.perf_counter() - start))
    print(path.read_text())


if __name__ == "__main__":
    main()
