"""The CPU-side costs behind gpu_suite.py's time estimate, measured on this machine (one thread, process CPU time):
decoding the data sets into the uint8 cache, the operations one training step dispatches (the host's share of a
GPU step), and writing one epoch's checkpoints.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/gpu_suite_cpu_measure.py \\
        --out benchmarks/results/gpu_suite_cpu_measure.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import attnlab
from attnlab.data import Preprocess, read_image
from attnlab.engine.checkpoint import save_state, save_weights
from attnlab.utils import environment

REPO = Path(__file__).resolve().parent.parent


def cpu_ms(fn) -> float:
    """Process CPU milliseconds of ``fn()``."""
    start = time.process_time()
    fn()
    return 1000 * (time.process_time() - start)


def decode_row(name: str, files: list[Path], size: int, fit: str) -> list[str]:
    per_image = [cpu_ms(lambda f=f: read_image(f, size, fit)) for f in files]
    return [
        name,
        f"{len(files)} files",
        f"{statistics.median(per_image):.2f}",
        f"{min(per_image):.2f}-{max(per_image):.2f}",
    ]


class OpCounter(TorchDispatchMode):
    """Counts the aten operations dispatched (views included): each non-view one is a kernel launch on a GPU."""

    def __init__(self):
        super().__init__()
        self.ops = self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        self.views += func.is_view
        return func(*args, **(kwargs or {}))


def step_ops(model_name: str, batch: int, augment: str) -> tuple[int, int]:
    """(aten ops, of which views) of one training step as the trainer runs it (augmentation, forward, loss,
    backward, Adam as on CUDA: foreach), at an 8 px input."""
    model = attnlab.create_model(model_name, num_classes=17).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, foreach=True)
    preprocess = Preprocess(augment, 8, 8, (0.5,) * 3, (0.25,) * 3)
    raw = torch.randint(0, 256, (batch, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 17, (batch,))
    generator = torch.Generator().manual_seed(0)

    def step():
        images = preprocess.train(raw, generator).contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # the optimizer's state is created in the first step
    with OpCounter() as counter:
        step()
    return counter.ops, counter.views


def checkpoint_row(folder: Path, model_name: str) -> list[str]:
    """Wall seconds to write one epoch's resume state (model + Adam) and weights (last) with fsync, as the trainer."""
    model = attnlab.create_model(model_name, num_classes=17)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    optimizer.step()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    metadata = {"epoch": 1}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        start = time.perf_counter()
        save_state(Path(tmp) / "resume.safetensors", state, metadata)
        save_weights(Path(tmp) / "last.safetensors", model.state_dict(), metadata)
        seconds = time.perf_counter() - start
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
    return [model_name, str(folder), f"{size / 2**20:.0f}", f"{seconds:.2f}", f"{size / 2**30 / seconds:.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", help="write the Markdown here too")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(args.data_root)
    lines = [
        "# CPU-side costs behind the GPU suite's time estimate",
        "",
        f"{environment()['hardware']}, torch {torch.__version__}, 1 thread, `{' '.join(sys.argv)}`. The machine is "
        "shared by other jobs (1-minute load average at the start: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores): process CPU time, medians (min-max).",
        "",
        "## Decoding into the uint8 cache (once per data set and size), CPU ms per image",
        "",
        "| data | files | median ms | min-max |",
        "|---|---|---|---|",
    ]
    flowers = sorted((root / "flowers17" / "train").rglob("*.jpg"))[::40]
    cifar = sorted((root / "cifar10" / "train").rglob("*.jpg"))[::2000]
    for row in (
        decode_row("flowers17 -> 224 squash", flowers, 224, "squash"),
        decode_row("flowers17 -> 64 squash", flowers, 64, "squash"),
        decode_row("cifar10 -> 130 crop", cifar, 130, "crop"),
        decode_row("cifar10 -> 32 squash", cifar, 32, "squash"),
    ):
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## aten operations per training step (augmentation, forward, backward, Adam with foreach, as on CUDA)",
        "",
        "Each non-view operation is one or more kernel launches on a GPU; eager PyTorch spends roughly 5-15 us of "
        "host time per operation (dispatch, autograd, launch), which bounds the steps/s of one process whatever "
        "the GPU.",
        "",
        "| model | batch | augment | ops | of which views |",
        "|---|---|---|---|---|",
    ]
    for model_name in ("resnet50", "se_resnet50", "eca_resnet50"):
        ops, views = step_ops(model_name, 32, "keras")
        lines.append(f"| {model_name} | 32 | keras | {ops} | {views} |")
    lines += [
        "",
        "## One epoch's checkpoints (resume state with Adam + last weights, fsync'd), wall time",
        "",
        "| model | folder | MB | s | GB/s |",
        "|---|---|---|---|---|",
    ]
    for folder in (Path("/dev/shm"), Path(tempfile.gettempdir())):
        if folder.is_dir():
            lines.append("| " + " | ".join(checkpoint_row(folder, "resnet50")) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
