"""Stage ablation of Hu, Shen, Sun, "Squeeze-and-Excitation Networks" (CVPR 2018, Section 7.2): accuracy of the
trained model with the attention of one stage (or of all stages) switched off, no retraining. The paper reports
that removing the SE blocks of the last stage costs less than 0.1 point of top-1 on ImageNet, where those gates
are saturated near 1.

Two ways to switch attention off:

- ``identity``: the module does nothing (``attention_switched_off``): for ``x * gate`` modules the gate is 1.
  Where the trained gates sit far from 1 this also rescales the branch, which the following layers never saw.
- ``mean``: each gate outputs its average over the evaluation images (``gates_fixed``): the scale the network
  was trained with stays, only the gate's dependence on the input is removed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from attnlab.analysis.gates import attention_switched_off, gates_fixed, mean_gate_outputs
from attnlab.engine.evaluate import evaluate
from attnlab.utils import markdown_table

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]
MODES = ("identity", "mean")


@dataclass
class AblationRow:
    """Accuracy with the attention of ``stages`` switched off by ``mode`` (no stages: the full model, mode
    '-'); delta in points vs the full model."""

    switched_off: str
    mode: str
    stages: list[int]
    blocks: int
    top1: float
    top5: float
    loss: float
    delta_top1: float = 0.0


def ablate_stages(
    model: nn.Module,
    stages: dict[str, int],
    batches: Batches,
    num_classes: int,
    device: str | torch.device = "cpu",
    modes: Sequence[str] = MODES,
) -> list[AblationRow]:
    """Evaluate the full model, then, for each mode, with each stage's attention switched off and with all of it
    switched off. ``batches()`` gives a fresh pass over the evaluation data each time (the ``mean`` mode's gate
    averages come from one more pass)."""
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"ablation modes must be among {', '.join(MODES)}, got {list(modes)}")
    device = torch.device(device)
    stage_ids = sorted(set(stages.values()))
    means = mean_gate_outputs(model, list(stages), batches(), device) if "mean" in modes else {}

    def switched_off(mode: str, paths: list[str]) -> AbstractContextManager:
        if mode == "identity":
            return attention_switched_off(model, paths)
        return gates_fixed(model, {path: means[path] for path in paths})

    full = evaluate(model, batches(), num_classes, device)
    rows = [AblationRow("none", "-", [], 0, full.top1, full.top5, full.loss)]
    for mode in modes:
        for label, off in [*((f"stage {s}", [s]) for s in stage_ids), ("all", stage_ids)]:
            paths = [p for p, s in stages.items() if s in off]
            with switched_off(mode, paths):
                result = evaluate(model, batches(), num_classes, device)
            rows.append(
                AblationRow(
                    label, mode, off, len(paths), result.top1, result.top5, result.loss, 100 * (result.top1 - full.top1)
                )
            )
    return rows


def ablation_markdown(rows: list[AblationRow], title: str = "") -> str:
    """The rows as a Markdown table (accuracies in %, delta in points vs the full model)."""
    lines = [f"### {title}", ""] if title else []
    head = ["attention switched off", "replaced by", "blocks", "top-1 (%)", "delta top-1 (points)", "top-5 (%)", "loss"]
    replaced = {"-": "-", "identity": "identity (gate = 1)", "mean": "mean gate"}
    cells = [
        [
            r.switched_off,
            replaced[r.mode],
            r.blocks,
            f"{100 * r.top1:.2f}",
            f"{r.delta_top1:+.2f}",
            f"{100 * r.top5:.2f}",
            f"{r.loss:.4f}",
        ]
        for r in rows
    ]
    lines.append(markdown_table(head, cells, align="llrrrrr"))
    return "\n".join(lines) + "\n"


def write_ablation_report(rows: list[AblationRow], out: str | Path, title: str = "") -> str:
    """Write ``ablation.md`` and ``ablation.json`` to ``out``; return the Markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = ablation_markdown(rows, title)
    (out / "ablation.md").write_text(table)
    (out / "ablation.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return table
