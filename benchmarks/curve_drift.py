"""Is the fused gate tails' float32 training-curve drift rounding, or a real difference?

Trains resnet20 with a gate on scikit-learn's digits (512 images, 8 x 8 upscaled to 3 channels, batch 64, SGD
0.05 momentum 0.9, 3 epochs = 24 steps) along the fused path and the plain reference path (a forward hook on each
attention module forces the module's own forward), in float64 and in float32, with the same data order, and a
float32 control: the plain path on an input perturbed by one float32 ulp (x * (1 + 2**-23)). If the float64 curves
agree to ~1e-10 and the float32 curves differ about as much as the control does, the float32 drift is rounding.

    python benchmarks/curve_drift.py --out benchmarks/results/curve_drift.md
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from torch import nn

import attnlab
from attnlab.attention.fused import unfused_copy
from attnlab.bench import environment


def curve(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int) -> torch.Tensor:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    order = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(epochs):
        for idx in torch.randperm(len(labels), generator=order).split(64):
            loss = nn.functional.cross_entropy(model.train()(images[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return torch.tensor(losses, dtype=torch.float64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attention", default="se,eca,cbam")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/curve_drift.md")
    args = parser.parse_args()
    from sklearn.datasets import load_digits

    torch.set_num_threads(1)
    digits = load_digits()
    images = torch.tensor(digits.images[:512], dtype=torch.float64).div(16).unsqueeze(1).expand(-1, 3, -1, -1)
    labels = torch.tensor(digits.target[:512])
    rows = []
    for name in [a for a in args.attention.split(",") if a]:
        torch.manual_seed(0)
        model64 = attnlab.create_model("resnet20", attention=name, num_classes=10).double()
        model32 = copy.deepcopy(model64).float()
        x32 = images.float()
        curves = {
            "fused64": curve(copy.deepcopy(model64), images, labels, args.epochs),
            "plain64": curve(unfused_copy(model64), images, labels, args.epochs),
            "fused32": curve(copy.deepcopy(model32), x32, labels, args.epochs),
            "plain32": curve(unfused_copy(model32), x32, labels, args.epochs),
            "plain32_ulp": curve(unfused_copy(model32), x32 * (1 + 2**-23), labels, args.epochs),
        }

        def gap(a: str, b: str, curves: dict[str, torch.Tensor] = curves) -> float:
            return (curves[a] - curves[b]).abs().max().item()

        rows.append(
            f"| {name} | {gap('fused64', 'plain64'):.1e} | {gap('fused32', 'plain32'):.1e} | "
            f"{gap('plain32_ulp', 'plain32'):.1e} | {gap('fused32', 'plain64'):.1e} | {gap('plain32', 'plain64'):.1e} "
            f"| {curves['plain64'][0]:.3f} -> {curves['plain64'][-1]:.3f} |"
        )
        print(rows[-1], flush=True)
    env = environment("cpu")
    text = [
        "# Training-curve drift of the fused gate tails: float64 vs float32",
        "",
        f"- versions: Python {env['python']}, torch {env['torch']}, attnlab {env['attnlab']}; CPU, 1 thread",
        f"- command: `{env['command']}`",
        f"- setting: resnet20 + gate, digits (512 images), batch 64, SGD lr 0.05 momentum 0.9, {args.epochs} epochs "
        f"({args.epochs * 8} steps); deterministic (no timing, no noise)",
        "",
        "Largest absolute difference of the per-step training loss between two curves:",
        "",
        "| gate | fused vs plain, float64 | fused vs plain, float32 | control: plain vs plain on a 1-ulp perturbed "
        "input, float32 | fused float32 vs plain float64 | plain float32 vs plain float64 | loss (plain float64) |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    Path(args.out).write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
