"""Benchmark of ``attnlab analyze`` on CIFAR-10 (JPEG) at CPU size: train SE- and ECA-ResNet-20 on a class-balanced
subset, then run the SENet excitation study and the stage ablation on the test subset.

    .venv/bin/python benchmarks/analysis_cifar10.py --train-per-class 300 --test-per-class 100 --epochs 10

The subset is a tree of symbolic links under --work (the first N files of each class folder, sorted), so nothing
is copied out of ../shared. Finished trainings are skipped, so the script can be re-run after an interruption.
Results: --work/<model>/analysis/{activations,ablation}.* and --work/summary.md. Re-running skips finished
trainings (delete a run's folder to train it again) and redoes the analyses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from attnlab.cli import main as attnlab

MODELS = ("se_resnet20", "eca_resnet20")
# The fast recipe's values when these results were made (SGD; its warm-up was one epoch, see pinned()), pinned so
# that later recipe edits do not change them.
PINNED = ["--batch-size", "64", "--lr", "0.1", "--img-size", "32", "--optimizer", "sgd", "--momentum", "0.9"]
PINNED += ["--nesterov", "--weight-decay", "5e-4"]


def link_subset(source: Path, target: Path, split: str, per_class: int) -> None:
    """``target/split/<class>/`` with links to the first ``per_class`` files of ``source/split/<class>/``."""
    for folder in sorted(p for p in (source / split).iterdir() if p.is_dir()):
        out = target / split / folder.name
        out.mkdir(parents=True, exist_ok=True)
        for file in sorted(folder.iterdir())[:per_class]:
            link = out / file.name
            if not link.exists():
                link.symlink_to(file.resolve())


def finished(run: Path, epochs: int) -> bool:
    path = run / "metrics.jsonl"
    return path.is_file() and json.loads(path.read_text().splitlines()[-1])["epoch"] >= epochs


def check(code: int, what: str) -> None:
    if code != 0:
        raise SystemExit(f"{what} failed with exit code {code}")


def run(args: argparse.Namespace) -> None:
    work, data = Path(args.work), Path(args.work) / "data"
    link_subset(Path(args.source), data, "train", args.train_per_class)
    link_subset(Path(args.source), data, "test", args.test_per_class)
    summary = [
        f"# attnlab analyze on CIFAR-10 (JPEG), {args.train_per_class}/{args.test_per_class} images per class "
        f"(train/test), recipe fast, {args.epochs} epochs\n"
    ]
    for model in MODELS:
        run_dir = work / model
        if not finished(run_dir, args.epochs):
            check(
                attnlab(
                    [
                        "train",
                        "--model",
                        model,
                        "--recipe",
                        "fast",
                        *PINNED,
                        "--warmup-steps",
                        str(10 * args.train_per_class // 64),  # one epoch of the 10 classes
                        "--data",
                        str(data),
                        "--epochs",
                        str(args.epochs),
                        "--out",
                        str(run_dir),
                        "--device",
                        "cpu",
                        "--seed",
                        str(args.seed),
                    ]
                ),
                f"training {model}",
            )
        common = [str(run_dir), "--data", str(data), "--device", "cpu", "--batch-size", "250"]
        check(
            attnlab(["analyze", "activations", *common, "--images-per-class", str(args.test_per_class)]),
            f"activations of {model}",
        )
        check(attnlab(["analyze", "ablate", *common]), f"ablation of {model}")
        report = json.loads((run_dir / "analysis" / "activations.json").read_text())
        summary.append(
            f"## {model}\n\n| block | stage | channels | class specificity | within-class std | "
            "saturation |\n|---|---:|---:|---:|---:|---:|"
        )
        summary += [
            f"| {b['block']} | {b['stage']} | {b['channels']} | {b['class_specificity']:.4f} | "
            f"{b['within_class_std']:.4f} | {b['saturation']:.4f} |"
            for b in report["blocks"]
        ]
        summary.append("\n" + (run_dir / "analysis" / "ablation.md").read_text())
    (work / "summary.md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="../shared/data/cifar10", help="CIFAR-10 ImageFolder tree")
    parser.add_argument("--work", default="/tmp/attnlab-analysis-cifar10", help="subset, runs and results")
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    run(parser.parse_args())
