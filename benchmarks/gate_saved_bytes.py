"""Saved-for-backward bytes of every fused gate, ratio to the plain model (deterministic, no timing).

For each gate: ``create_model(model, attention=gate)`` and ``attach(plain model, gate)``, one training forward,
the distinct storages autograd saves (``saved_tensors_hooks``, parameters excluded) divided by the plain model's.

    python benchmarks/gate_saved_bytes.py --out benchmarks/results/gate_saved_bytes.md
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

import attnlab
from attnlab.bench import environment
from attnlab.bench.throughput import saved_activation_bytes

GATES = ["se", "ese", "eca", "ecam", "ceca", "fca", "ge", "gct", "srm", "cbam", "lcbam"]
SETTINGS = [("resnet18", 64), ("resnet18", 96), ("resnet50", 224)]


def saved(model: torch.nn.Module, x: torch.Tensor) -> int:
    model.train()
    return saved_activation_bytes(model, lambda: model(x).sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gates", default=",".join(GATES))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/gate_saved_bytes.md")
    args = parser.parse_args()
    gates = [g for g in args.gates.split(",") if g]
    torch.manual_seed(0)
    header = " | ".join(f"{m} {px} px built | {m} {px} px attached" for m, px in SETTINGS)
    rows = {g: [] for g in gates}
    for model_name, px in SETTINGS:
        x = torch.randn(args.batch_size, 3, px, px)
        plain = attnlab.create_model(model_name)
        base = saved(plain, x)
        for gate in gates:
            built = saved(attnlab.create_model(model_name, attention=gate), x) / base
            attached = copy.deepcopy(plain)
            attnlab.attach(attached, gate, example=x[:1])
            rows[gate] += [built, saved(attached, x) / base]
            print(model_name, px, gate, f"{built:.3f} {rows[gate][-1]:.3f}", file=sys.stderr, flush=True)
    env = environment("cpu")
    text = [
        "# Saved-for-backward bytes of the fused gates, ratio to the plain model",
        "",
        f"- versions: Python {env['python']}, torch {env['torch']}, attnlab {env['attnlab']}",
        f"- command: `{env['command']}`",
        f"- batch {args.batch_size}, float32, training mode; deterministic (no timing, no noise). Targets (issue 14): "
        "<= 1.02 for the pooled channel gates, <= 1.10 for CBAM (cbam, lcbam).",
        "",
        f"| gate | {header} |",
        "|---|" + "---|" * (2 * len(SETTINGS)),
        *[f"| {g} | " + " | ".join(f"{v:.3f}" for v in values) + " |" for g, values in rows.items()],
        "",
    ]
    Path(args.out).write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
