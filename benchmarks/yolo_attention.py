"""Benchmark: YOLO classifiers plain vs ECA vs SE vs CBAM (``attach_yolo``, preset 'c2f') on Oxford 17 Flowers,
trained by Ultralytics' own training loop (its default classification recipe), several seeds each.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/yolo_attention.py            # CPU-sized defaults

The images are decoded and downsized once (short side ``--cache-side`` px, JPEG quality 95) into
``WORK/data`` so that each epoch does not decode 500 px JPEGs; Ultralytics then crops and resizes them to
``--imgsz``. Each run lives in ``WORK/runs/MODEL-ATTENTION-sSEED`` with a ``result.json``; finished runs are
reused, so the script can be re-run. flowers17 has no validation split: Ultralytics validates on ``test/`` after
every epoch, so the table reports the last epoch's test top-1 (the epoch count is fixed beforehand), and the
best epoch's (chosen on the test set, so optimistic) only as a second column.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from attnlab.integrations.ultralytics import attach_yolo
from attnlab.utils import atomic_write_text, environment, markdown_table

REPO = Path(__file__).resolve().parent.parent


def downsized_copy(data: Path, out: Path, side: int) -> Path:
    """``data`` (ImageFolder with train/ and test/) with every image resized to a short side of ``side`` px."""
    done = out / ".complete"
    if done.exists():
        return out
    for source in sorted(data.glob("*/*/*.jpg")):
        target = out / source.relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as image:
            image = image.convert("RGB")
            scale = side / min(image.size)
            image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC).save(
                target, quality=95
            )
    done.touch()
    return out


def gflops(model: torch.nn.Module, imgsz: int) -> float:
    """GFLOPs of one ``imgsz`` image (torch.utils.flop_counter: convs and matmuls, 1 MAC = 2 FLOPs)."""
    model = model.float().cpu().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, imgsz, imgsz))
    return counter.get_total_flops() / 1e9


def run(args: argparse.Namespace, data: Path, model_name: str, attention: str, seed: int) -> dict:
    from ultralytics import YOLO

    folder = args.work / "runs" / f"{model_name}-{attention}-s{seed}"
    result_file = folder / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    yolo = YOLO(f"{model_name}.yaml", verbose=False)
    if attention != "none":
        attach_yolo(yolo, attention, where="c2f")
    epoch_times: list[tuple[float, float]] = []
    started: list[float] = []

    def epoch_start(trainer) -> None:
        started[:] = [time.perf_counter(), time.process_time()]

    def epoch_end(trainer) -> None:
        epoch_times.append((time.perf_counter() - started[0], time.process_time() - started[1]))

    yolo.add_callback("on_train_epoch_start", epoch_start)
    yolo.add_callback("on_train_epoch_end", epoch_end)
    yolo.train(
        data=str(data),
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        seed=seed,
        deterministic=True,
        workers=0,
        device="cpu",
        plots=False,
        amp=False,
        project=str(args.work / "runs"),
        name=folder.name,
        exist_ok=True,
        verbose=False,
    )
    trainer = yolo.trainer
    rows = trainer.read_results_csv()
    top1 = rows["metrics/accuracy_top1"]
    model = trainer.ema.ema
    result = {
        "model": model_name,
        "attention": attention,
        "seed": seed,
        "top1_last": float(top1[-1]),
        "top1_best": float(max(top1)),
        "params": sum(p.numel() for p in model.parameters()),
        "gflops": gflops(model, args.imgsz),
        "epoch_wall_s": statistics.median(t[0] for t in epoch_times),
        "epoch_cpu_s": statistics.median(t[1] for t in epoch_times),
    }
    atomic_write_text(result_file, json.dumps(result, indent=1))
    return result


def mean_std(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    values = [v * scale for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


def report(args: argparse.Namespace, results: list[dict], wall_s: float) -> str:
    env = environment("cpu")
    import ultralytics

    head = ["model", "attention", "seeds", "top-1 last (%)", "top-1 best (%)", "params", "GFLOPs", "s/epoch (wall)"]
    head.append("CPU s/epoch")
    rows = []
    for model_name in args.models:
        for attention in args.attentions:
            runs = [r for r in results if r["model"] == model_name and r["attention"] == attention]
            if not runs:
                continue
            rows.append(
                [
                    model_name,
                    attention,
                    len(runs),
                    mean_std([r["top1_last"] for r in runs], 100),
                    mean_std([r["top1_best"] for r in runs], 100),
                    f"{runs[0]['params']:,}",
                    f"{runs[0]['gflops']:.4f}",
                    mean_std([r["epoch_wall_s"] for r in runs]),
                    mean_std([r["epoch_cpu_s"] for r in runs]),
                ]
            )
    return "\n".join(
        [
            "# YOLO classifiers with attention (attach_yolo, preset 'c2f') on Oxford 17 Flowers",
            "",
            f"- Setting: {', '.join(args.models)} from their YAML (random init, no pretrained weights), "
            f"attention {', '.join(args.attentions)} after the last conv of every C2f/C3k2 block "
            f"(`attach_yolo(yolo, name, where='c2f')`, identity at init), trained by Ultralytics' own loop "
            f"(`YOLO.train`, its default classification recipe: optimizer auto, augmentation, EMA) for "
            f"{args.epochs} epochs at imgsz {args.imgsz}, batch {args.batch}, seeds "
            f"{', '.join(map(str, args.seeds))}, deterministic=True.",
            f"- Data: {args.data} (1088 train / 272 test, 17 classes), downsized once to a short side of "
            f"{args.cache_side} px. Ultralytics validates on test/ after each epoch (no val split): "
            "'top-1 last' is the last epoch's test accuracy; 'top-1 best' is the best epoch's, chosen on the test "
            "set, so optimistic. One test image is 0.37 points.",
            "- GFLOPs: torch.utils.flop_counter on one image at imgsz (convs and matmuls; the gates' sigmoids and "
            "products are not counted). Time per epoch: median over the epochs of each run (training only, not "
            "validation), then mean ± std over seeds; wall and process CPU time, on a shared machine (other "
            "jobs ran), so the noise is large.",
            f"- Hardware: {env['hardware']}, {env['cpu_cores']} cores, torch threads {env['torch_threads']} "
            f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); Python {env['python']}, "
            f"torch {env['torch']}, ultralytics {ultralytics.__version__}, attnlab {env['attnlab']} "
            f"(commit {env['git_commit']}).",
            f"- Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`; finished "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {wall_s / 60:.1f} min in this invocation.",
            "",
            markdown_table(head, rows),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["yolov8n-cls", "yolo11n-cls"])
    parser.add_argument("--attentions", nargs="+", default=["none", "eca", "se", "cbam"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--cache-side", type=int, default=128)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "flowers17")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-yolo-attention")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "yolo_attention.md")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"no data at {args.data}; pass --data DIR (an ImageFolder root with train/ and test/)")
    os.environ.setdefault("YOLO_OFFLINE", "1")  # nothing downloads: no fonts, hub or update checks
    os.environ.setdefault("YOLO_CONFIG_DIR", str(args.work / "ultralytics-config"))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start = time.perf_counter()
    data = downsized_copy(args.data, args.work / "data", args.cache_side)
    results = [
        run(args, data, model_name, attention, seed)
        for seed in args.seeds
        for model_name in args.models
        for attention in args.attentions
    ]
    text = report(args, results, time.perf_counter() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
