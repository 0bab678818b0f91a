"""Where an attention model's inference time goes: self CPU time per forward of the ops the gates add.

    .venv/bin/python benchmarks/profile_gate_ops.py --models eca_resnet50,se_resnet50

torch.profiler over ``--forwards`` inference passes (after 3 warm-up passes) at batch 16, 224 px. The gate ops
are the pools (``aten::sum``/``aten::mean``), the small convolutions of the gates (1D convs, 1x1 FC convs on
(N, C, 1, 1) inputs), the activations on (N, C, 1, 1) tensors, and the in-place gate products (``aten::mul_``).
Prints each op's time per forward and their share of the whole forward: an overhead estimate that, unlike
wall-clock ratios, does not depend on what else the machine is doing between rounds.
"""

from __future__ import annotations

import argparse
import math

import torch
from torch.profiler import ProfilerActivity, profile

import attnlab
from attnlab.cli import comma_list


def is_gate_op(name: str, input_shapes: list) -> bool:
    first = input_shapes[0] if input_shapes else []
    # one non-batch dimension: (N, C, 1, 1) for SE's FCs, (N, 1, 1, C) for ECA's 1D conv run as a 2D one
    pooled = len(first) >= 3 and math.prod(first) == first[0] * max(first[1:])
    if name in ("aten::sum", "aten::mean", "aten::mul_"):
        return True
    return name in ("aten::mkldnn_convolution", "aten::sigmoid", "aten::relu_", "aten::clamp_min_") and pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=comma_list(), default="eca_resnet50,se_resnet50")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--forwards", type=int, default=5)
    args = parser.parse_args()
    x = torch.randn(args.batch_size, 3, 224, 224)
    for name in args.models:
        model = attnlab.create_model(name).eval()
        with torch.inference_mode():
            for _ in range(3):
                model(x)
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                for _ in range(args.forwards):
                    model(x)
        events = prof.key_averages(group_by_input_shape=True)
        total = sum(e.self_cpu_time_total for e in events)
        gate: dict[str, float] = {}
        for e in events:
            if is_gate_op(e.key, e.input_shapes):
                gate[e.key] = gate.get(e.key, 0.0) + e.self_cpu_time_total
        per_forward = {k: round(v / args.forwards / 1000, 1) for k, v in gate.items()}
        print(
            f"{name}: {total / args.forwards / 1000:.0f} ms per forward; gate ops (ms per forward) {per_forward}; "
            f"share {100 * sum(gate.values()) / total:.2f} %"
        )


if __name__ == "__main__":
    main()
