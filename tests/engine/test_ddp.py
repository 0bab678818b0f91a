import json
import os
import subprocess
import sys

from engine_helpers import TINY

from attnlab.engine.batches import eval_batches_for
from attnlab.engine.evaluate import evaluate
from attnlab.engine.inference import load_model


def test_two_gloo_processes_train_and_reduce_metrics_over_both_shards(tmp_path):
    """torchrun with 2 CPU processes: the logged validation metrics must be those of the whole validation set
    (180 + 179 images on the two processes), i.e. what one process measures on the saved weights. The model has SE
    gates, so the fused gate tails (whose backward runs the gate's own small graph) train under DDP."""
    out = tmp_path / "ddp"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "attnlab.cli",
        "train",
        *flags,
        "--model=se_resnet20",
        "--epochs=1",
        f"--out={out}",
    ]
    result = subprocess.run(
        command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("epoch   1/1") == 1  # only rank 0 reports
    (row,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    model, metadata = load_model(out / "last.safetensors")
    batches = eval_batches_for(metadata, data="digits", val=None, batch_size=64)
    single = evaluate(model, batches.epoch(0), 10, batches.device)
    assert single.images == 359
    assert abs(row["val_loss"] - single.loss) < 1e-5 and row["val_acc"] == single.top1
