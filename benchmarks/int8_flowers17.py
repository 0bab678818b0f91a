"""INT8 static post-training quantization of ResNet-18 / SE-ResNet-18 / ECA-ResNet-18 trained on Oxford 17
Flowers at 64 px: top-1 on the 272 test images of the fp32 ONNX export vs its INT8 version (ONNX Runtime QDQ,
per-channel weights, 256 calibration images from the train split), and their top-1 agreement.

    # the runs (CPU, 3 epochs each to fit a shared machine; see the results file)
    attnlab train --recipe keras-flowers --model MODEL --data ../shared/data/flowers17 --img-size 64 \\
        --epochs 3 --lr 0.001 --device cpu --out RUNS/MODEL
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/int8_flowers17.py --runs RUNS

Writes benchmarks/results/int8_flowers17.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

from attnlab.export import export_checkpoint
from attnlab.utils import atomic_write_text, command_line, environment, markdown_table, now

MODELS = ("resnet18", "se_resnet18", "eca_resnet18")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="folder with one run folder per model, named as the model")
    parser.add_argument("--data", default="../shared/data/flowers17", help="(default: %(default)s)")
    parser.add_argument("--models", default=",".join(MODELS), help="(default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/results/int8_flowers17.md", help="(default: %(default)s)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            run = Path(args.runs) / model
            metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            out = Path(tmp) / f"{model}.onnx"
            result, int8 = export_checkpoint(run, "onnx", out, data=args.data, int8=True, calib=args.data)
            print(result)
            print(int8)
            rows.append(
                [
                    model,
                    len(metrics),
                    f"{100 * max(m['val_acc'] for m in metrics):.2f}",
                    f"{100 * int8.fp32_top1:.2f}",
                    f"{100 * int8.int8_top1:.2f}",
                    f"{100 * (int8.int8_top1 - int8.fp32_top1):+.2f}",
                    f"{100 * int8.agreement:.2f}",
                    f"{result.on_data.max_abs_error:.1e}",
                    f"{int8.fp32_nodes} kept in fp32" if int8.fp32_nodes else "all quantized",
                ]
            )
    env = environment("cpu")
    head = [
        "model",
        "epochs",
        "best val (PyTorch)",
        "fp32 top-1 (ORT)",
        "int8 top-1",
        "Δ points",
        "agreement",
        "fp32 ORT vs PyTorch max abs",
        "attention nodes",
    ]
    text = (
        "# INT8 post-training quantization on Oxford 17 Flowers (64 px)\n\n"
        f"{now()}; {env['hardware']}, torch {env['torch']}, onnxruntime of constraints.txt.\n\n"
        f"Command: `{command_line()}`\n\n"
        "Each run's best checkpoint is exported to ONNX (free batch and image size) and quantized statically with "
        "ONNX Runtime (`quantize_static`, QDQ, per-channel int8 weights, uint8 activations, MinMax calibration on "
        "256 training images spread over the split). Top-1 is on the 272 test images prepared as training "
        "evaluated them; one image is 0.37 points. The gate remedy (attention nodes kept in fp32) is applied when "
        "the fully quantized model agrees with fp32 on fewer than 99% of the calibration images.\n\n"
        + markdown_table(head, rows, align="lrrrrrrrl")
        + "\n"
    )
    atomic_write_text(Path(args.out), text)
    print(text)


if __name__ == "__main__":
    main()
