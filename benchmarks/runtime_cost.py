"""The cost of attention in deployment runtimes: ResNet-50 plain/SE/ECA/CBAM and EPSANet-50 (random weights) at
224 px, eager PyTorch vs ONNX Runtime vs OpenVINO, fp32 and INT8 (static QDQ), batch 1 and 8, one thread, all
subjects' rounds interleaved; ratios to plain ResNet-50 in each runtime, precision and batch size.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/runtime_cost.py

Writes benchmarks/results/runtime_cost.md (and .json beside it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

from attnlab.export.speed import runtime_benchmark, runtime_markdown
from attnlab.utils import atomic_write_text, command_line, environment, now

MODELS = "resnet50,se_resnet50,eca_resnet50,cbam_resnet50,epsanet50"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS, help="(default: %(default)s)")
    parser.add_argument("--batch-sizes", default="1,8", help="(default: %(default)s)")
    parser.add_argument("--img-size", type=int, default=224, help="(default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="(default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/results/runtime_cost.md", help="(default: %(default)s)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    started = time.time()
    results = runtime_benchmark(
        args.models.split(","),
        int8=True,
        batch_sizes=[int(b) for b in args.batch_sizes.split(",")],
        img_size=args.img_size,
        repeats=args.repeats,
        threads=args.threads,
        progress=lambda message: print(f"{time.time() - started:6.0f}s {message}", file=sys.stderr),
    )
    env = environment("cpu")
    text = (
        "# The cost of attention in deployment runtimes (CPU)\n\n"
        f"{now()}; {env['hardware']}, {env['cpu_cores']} cores shared with other "
        f"jobs, {args.threads} thread per runtime; torch {env['torch']}, onnxruntime and openvino of "
        f"constraints.txt; {time.time() - started:.0f} s.\n\n"
        f"Command: `{command_line()}`\n\n"
        "Random-weight models in eval mode at 224 px. `torch`: eager PyTorch fp32; `ort`: ONNX Runtime CPU on the "
        "ONNX export (free batch and image size); `openvino`: OpenVINO CPU on the same file, f32 precision hint; "
        "`int8`: that file statically quantized (ONNX Runtime QDQ, per-channel weights, calibrated on 16 random "
        "images: speed only, every node quantized, no gate remedy). `ms/batch`: median wall time of one batch over "
        f"{args.repeats} interleaved, rotated rounds; `CPU ms/batch`: median process CPU time (all threads of the "
        "process), less sensitive to other jobs taking the cores; ratios are to `resnet50` in the same runtime, "
        "precision and batch size; `range ms`: the fastest and slowest round, the noise.\n\n"
        + runtime_markdown(results)
        + "\n"
    )
    atomic_write_text(Path(args.out), text)
    report = {"command": command_line(), "environment": env, "results": [dataclasses.asdict(r) for r in results]}
    atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(report, indent=2))
    print(text)


if __name__ == "__main__":
    main()
