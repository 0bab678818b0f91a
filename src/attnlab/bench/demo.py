"""``attnlab demo``: does attention help, and at what cost? ResNet-20 with and without SE/ECA on the embedded
digits, trained with the ``fast`` recipe, compared in one table (a few minutes on 2 CPU cores).

The runs are an ``attnlab compare`` with one seed (``OUT/runs/MODEL-sSEED``), so a finished demo run is reused.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from attnlab.bench.compare import compare

DEMO_MODELS = ("resnet20", "se_resnet20", "eca_resnet20")
CAVEAT = "One seed on a small set: differences under about 1% (4 of 359 images) are within seed noise."


def run_demo(
    models: list[str] | tuple[str, ...] = DEMO_MODELS,
    *,
    epochs: int = 8,
    img_size: int = 16,
    seed: int = 0,
    out: str | Path = "runs/demo",
    device: str = "auto",
) -> list[dict]:
    """Compare ``models`` on digits with the fast recipe and one seed (compare's runs and report under ``out``),
    print the comparison table and return its rows. Runs on one CPU thread: kernels this small gain little from
    more, and on cores shared with other jobs extra OpenMP threads made the demo 8x slower (13 min instead of 1.5
    on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        report = compare(
            list(models),
            recipe="fast",
            seeds=[seed],
            out=out,
            overrides={"data": "digits", "epochs": epochs, "img_size": img_size, "device": device},
        )
    finally:
        torch.set_num_threads(threads)
    run_dirs = {run["label"]: Path(run["run_dir"]) for run in report["runs"]}
    rows = [
        {
            "model": row["label"],
            "params": row["params"],
            "attention_layers": _attention_layers(run_dirs[row["label"]]),
            "best_val_acc": row["best_val_acc"]["mean"],
            "final_val_acc": row["val_acc"]["mean"],
            "seconds": row["wall_seconds"],
            "run_dir": str(run_dirs[row["label"]]),
        }
        for row in report["models"]
    ]
    title = f"digits, {img_size}x{img_size} px, {epochs} epochs of the fast recipe, seed {seed}:"
    print("\n" + format_table(rows, title))
    return rows


def _attention_layers(run_dir: Path) -> int:
    """Number of attention modules of a run's model, from its best checkpoint's metadata."""
    return len(json.loads((run_dir / "best.json").read_text())["attention_layers"])


def format_table(rows: list[dict], title: str) -> str:
    """The comparison as aligned text; parameters are also given relative to the first model."""
    base = rows[0]["params"]
    lines = [
        title,
        (
            f"{'model':<16}{'params':>10}{'added':>8}{'attn layers':>13}{'best val acc':>14}{'final val acc':>15}"
            f"{'time':>8}"
        ),
    ]
    for row in rows:
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.0f}s"
        lines.append(
            f"{row['model']:<16}{row['params']:>10,}{row['params'] - base:>+8,}{row['attention_layers']:>13}"
            f"{row['best_val_acc']:>14.4f}{row['final_val_acc']:>15.4f}{seconds:>8}"
        )
    lines.append(CAVEAT)
    return "\n".join(lines)
