"""Where a gated ResNet-50's extra training time goes: the cost of one block tail, stage by stage.

A bottleneck's tail is ``relu(gate(bn(c)) + identity)``. For each ResNet-50 stage shape (batch 4 at 160 px:
256 x 40 x 40, 512 x 20 x 20, 1024 x 10 x 10, 2048 x 5 x 5) it times one training forward + backward of the tail
along three paths, interleaved round robin, process CPU time (the fastest round), one thread:

- ``plain``: ResNet-50's own tail without a gate (``bn``, ``+= identity``, ``relu_``);
- ``reference``: the straightforward gated tail, the gate module's ``forward`` (what timm does);
- ``fused``: ``attnlab.attention.gated_batch_norm``, the path attnlab's blocks take.

The per-step column multiplies each stage by its blocks (3, 4, 6, 3) and sums: the time the gates add to one
training step of the whole model over the plain tails, which bench_overhead.py measures end to end but with
more noise. A ``tiny`` row (64 x 2 x 2, batch 2) shows the fixed per-call cost, where no memory pass matters.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gate_tail_cost.py --out benchmarks/results/gate_tail_cost.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

from attnlab.attention import create_attention, gated_batch_norm
from attnlab.bench import environment
from attnlab.utils import atomic_write_text, markdown_table

# (channels, height = width, blocks): ResNet-50's stages at 160 px, and a tiny shape for the fixed cost
STAGES = [(256, 40, 3), (512, 20, 4), (1024, 10, 6), (2048, 5, 3)]
TINY = (64, 2, 0)
MODES = ("plain", "reference", "fused")


def tail_seconds(mode: str, bn: nn.BatchNorm2d, gate: nn.Module, c: torch.Tensor, identity: torch.Tensor) -> float:
    """Process CPU seconds of one forward + backward of the tail (fresh leaf copies of the inputs)."""
    c, identity = c.clone().requires_grad_(), identity.clone().requires_grad_()
    start = time.process_time()
    if mode == "plain":
        out = bn(c)
        out += identity
        out = out.relu_()
    elif mode == "reference":
        out = torch.relu(gate(bn(c)) + identity)
    else:
        out = gated_batch_norm(bn, c, gate, identity, relu=True)
    out.backward(identity.detach())
    return time.process_time() - start


def measure(name: str, channels: int, size: int, batch: int, rounds: int) -> dict[str, float]:
    """Milliseconds per tail of each mode, the fastest of ``rounds`` interleaved rounds: other tenants of a shared
    machine only ever add time (the median here ran up to 2x the minimum), so the minimum is the steadier
    estimate of what the code itself costs."""
    torch.manual_seed(0)
    bn, gate = nn.BatchNorm2d(channels), create_attention(name, channels)
    c, identity = torch.randn(batch, channels, size, size), torch.randn(batch, channels, size, size)
    for mode in MODES:
        tail_seconds(mode, bn, gate, c, identity)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            times[mode].append(tail_seconds(mode, bn, gate, c, identity))
    return {mode: 1000 * min(values) for mode, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gates", default="se,eca,cbam", help="comma list (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/results/gate_tail_cost.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in [g for g in args.gates.split(",") if g]:
        per_step = dict.fromkeys(MODES, 0.0)
        for channels, size, blocks in [*STAGES, TINY]:
            ms = measure(name, channels, size, 2 if blocks == 0 else 4, args.rounds)
            for mode in MODES:
                per_step[mode] += blocks * ms[mode]
            shape = f"{channels} x {size} x {size}" + (" (tiny, batch 2)" if blocks == 0 else f" (x{blocks})")
            rows.append(
                [name, shape, *(f"{ms[m]:.2f}" for m in MODES), *(f"+{ms[m] - ms['plain']:.2f}" for m in MODES[1:])]
            )
            print(" | ".join(rows[-1]), flush=True)
        rows.append(
            [
                name,
                "**per ResNet-50 step**",
                *(f"{per_step[m]:.1f}" for m in MODES),
                *(f"**+{per_step[m] - per_step['plain']:.1f}**" for m in MODES[1:]),
            ]
        )
    env = environment("cpu")
    text = [
        "# Gated tail cost per ResNet-50 stage (issue 14)",
        "",
        f"- hardware: {env['hardware']}, 1 torch thread; versions: Python {env['python']}, torch {env['torch']}, "
        f"attnlab {env['attnlab']}",
        f"- command: `OMP_NUM_THREADS=1 {env['command']}`",
        f"- setting: one training forward + backward of ``relu(gate(bn(c)) + identity)``, fp32, batch 4 (tiny: 2), "
        f"fastest process CPU time of {args.rounds} interleaved rounds; milliseconds",
        "",
        markdown_table(
            ["gate", "shape (blocks)", "plain ms", "reference ms", "fused ms", "reference - plain", "fused - plain"],
            rows,
            "llrrrrr",
        ),
        "",
    ]
    atomic_write_text(Path(args.out), "\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
