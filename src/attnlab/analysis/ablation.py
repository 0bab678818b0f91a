"""Stage ablation of Hu, Shen, Sun, "Squeeze-and-Excitation Networks" (CVPR 2018, Section 7.2): accuracy of the
trained model with the attention of one stage (or of all stages) switched off, no retraining. The paper reports
that removing the SE blocks of the last stage costs less than 0.1 point of top-1 on ImageNet."""

from __future__ import annotations

from collections.abc import Callable, Iterable
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from attnlab.analysis.gates import attention_switched_off
from attnlab.engine.evaluate import evaluate

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


@dataclass
class AblationRow:
    """Accuracy with the attention of ``stages`` switched off (empty: the full model); delta in points."""

    switched_off: str
    stages: list[int]
    blocks: int
    top1: float
    top5: float
    loss: float
    delta_top1: float = 0.0


def ablate_stages(
    model: nn.Module, stages: dict[str, int], batches: Batches, num_classes: int, device: str | torch.device = "cpu"
) -> list[AblationRow]:
    """Evaluate the full model, then with each stage's attention switched off, then with all of it switched off
    (see ``attention_switched_off`` for what that means per module kind). ``batches()`` gives a fresh pass
    over the evaluation data each time."""
    device = torch.device(device)
    settings = [("none", [])] + [(f"stage {s}", [s]) for s in sorted(set(stages.values()))]
    settings.append(("all", sorted(set(stages.values()))))
    rows = []
    for label, off in settings:
        paths = [p for p, s in stages.items() if s in off]
        with attention_switched_off(model, paths):
            result = evaluate(model, batches(), num_classes, device)
        rows.append(AblationRow(label, off, len(paths), result.top1, result.top5, result.loss))
    for row in rows:
        row.delta_top1 = 100 * (row.top1 - rows[0].top1)
    return rows


def ablation_markdown(rows: list[AblationRow], title: str = "") -> str:
    """The rows as a Markdown table (accuracies in %, delta in points vs the full model)."""
    lines = [f"### {title}", ""] if title else []
    lines += [
        "| attention switched off | blocks | top-1 (%) | delta top-1 (points) | top-5 (%) | loss |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.switched_off} | {r.blocks} | {100 * r.top1:.2f} | {r.delta_top1:+.2f} | {100 * r.top5:.2f} | {r.loss:.4f} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def write_ablation_report(rows: list[AblationRow], out: str | Path, title: str = "") -> str:
    """Write ``ablation.md`` and ``ablation.json`` to ``out``; return the Markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = ablation_markdown(rows, title)
    (out / "ablation.md").write_text(table)
    (out / "ablation.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return table
