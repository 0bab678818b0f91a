"""The kernel-size study of Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks" (CVPR 2020, Fig. 4): accuracy of an ECA network trained with a fixed 1D kernel size k, for several k,
against the adaptive ``k = psi(C)``. The paper finds the adaptive choice as good as the best fixed k.

Each (k, seed) is an ordinary training run in its own folder; finished runs are skipped and interrupted ones
resumed, so a sweep can be stopped and restarted.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from attnlab.engine.config import TrainConfig
from attnlab.models import attention_layers, create_model

ADAPTIVE = "adaptive"


@dataclass
class SweepRun:
    """One training run of the sweep: ``k`` is the fixed kernel size, or None for the adaptive one."""

    k: int | None
    seed: int
    run_dir: str
    val_acc: float | None = None
    best_val_acc: float | None = None

    @property
    def label(self) -> str:
        return ADAPTIVE if self.k is None else f"k={self.k}"


def resolved_kernel_sizes(config: TrainConfig, num_classes: int = 10) -> list[int]:
    """ECA kernel sizes of the model ``config`` builds, module by module (built on the meta device, no weights);
    ValueError when the model has no ECA module."""
    with torch.device("meta"):
        model = create_model(config.model, num_classes=num_classes, attention=config.attention,
                             attention_kwargs=config.attention_kwargs or None)
    sizes = [layer["k_size"] for layer in attention_layers(model) if "k_size" in layer]
    if not sizes:
        raise ValueError(
            f"model {config.model!r} (attention {config.attention!r}) has no ECA modules to sweep k on; "
            "use an ECA model such as eca_resnet20, or --attention eca"
        )
    return sizes


def sweep_runs(base: TrainConfig, k_sizes: Sequence[int], seeds: Sequence[int], out: str | Path) -> list[tuple[SweepRun, TrainConfig]]:
    """The sweep's runs and their configs: every fixed k and the adaptive k, for every seed, in ``out/<label>-s<seed>``."""
    if not k_sizes:
        raise ValueError("give at least one kernel size, e.g. --k 3,5,7,9")
    runs = []
    for k in [*k_sizes, None]:
        kwargs = {key: value for key, value in base.attention_kwargs.items() if key != "k_size"}
        if k is not None:
            kwargs["k_size"] = k
        for seed in seeds:
            run_dir = Path(out) / f"{ADAPTIVE if k is None else f'k{k}'}-s{seed}"
            config = dataclasses.replace(base, attention_kwargs=kwargs, seed=seed, out=str(run_dir))
            resolved_kernel_sizes(config)  # fails early on a non-ECA model or a bad k
            runs.append((SweepRun(k, seed, str(run_dir)), config))
    return runs


def read_history(run_dir: str | Path) -> list[dict]:
    """The per-epoch metrics a run has written so far (``metrics.jsonl``); empty when it has not started."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []


def run_kernel_sweep(
    base: TrainConfig,
    k_sizes: Sequence[int],
    seeds: Sequence[int],
    out: str | Path,
    train: Callable[..., dict] | None = None,
) -> list[SweepRun]:
    """Train every run of ``sweep_runs`` that is not finished (resuming a started one), then read the results:
    ``val_acc`` of the last epoch and the best ``val_acc``. ``train(config, resume=...)`` defaults to the engine's."""
    if train is None:
        from attnlab.engine.trainer import train
    results = []
    for run, config in sweep_runs(base, k_sizes, seeds, out):
        history = read_history(run.run_dir)
        if not history or history[-1]["epoch"] < config.epochs:
            print(f"kernel sweep: {run.label} seed {run.seed} -> {run.run_dir}", flush=True)
            train(config, resume=(Path(run.run_dir) / "resume.safetensors").is_file())
            history = read_history(run.run_dir)
        else:
            print(f"kernel sweep: {run.label} seed {run.seed} finished, skipped", flush=True)
        run.val_acc = history[-1]["val_acc"]
        run.best_val_acc = max(row["val_acc"] for row in history)
        results.append(run)
    return results


def summarize(runs: Sequence[SweepRun]) -> list[dict]:
    """One row per kernel setting: mean and (sample) std of the final val accuracy over seeds, and each seed's."""
    rows = []
    for label in dict.fromkeys(run.label for run in runs):
        accs = [run.val_acc for run in runs if run.label == label]
        rows.append({
            "setting": label,
            "k": next(run.k for run in runs if run.label == label),
            "seeds": len(accs),
            "val_acc_mean": statistics.fmean(accs),
            "val_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "val_acc": accs,
        })
    return rows


def sweep_markdown(rows: Sequence[dict], adaptive_k: Sequence[int]) -> str:
    """The summary as a Markdown table (accuracies in %)."""
    lines = ["| kernel size | seeds | val top-1 (%) mean +- std | per seed |", "|---|---:|---:|---|"]
    for row in rows:
        setting = f"adaptive (k = {'/'.join(map(str, sorted(set(adaptive_k))))})" if row["k"] is None else row["setting"]
        seeds = ", ".join(f"{100 * a:.2f}" for a in row["val_acc"])
        lines.append(f"| {setting} | {row['seeds']} | {100 * row['val_acc_mean']:.2f} +- "
                     f"{100 * row['val_acc_std']:.2f} | {seeds} |")
    return "\n".join(lines) + "\n"


def plot_kernel_sweep(rows: Sequence[dict], adaptive_k: Sequence[int], path: str | Path, title: str = "") -> Path:
    """Val top-1 vs fixed k (mean with std error bars, seeds as dots); the adaptive k as a horizontal line
    with a +- std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fixed = [row for row in rows if row["k"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = [row["k"] for row in fixed]
    ax.errorbar(ks, [100 * r["val_acc_mean"] for r in fixed], yerr=[100 * r["val_acc_std"] for r in fixed],
                marker="o", capsize=4, label="fixed k")
    for row in fixed:
        ax.scatter([row["k"]] * len(row["val_acc"]), [100 * a for a in row["val_acc"]], s=10, color="gray", alpha=0.6)
    for row in rows:
        if row["k"] is None:
            mean, std = 100 * row["val_acc_mean"], 100 * row["val_acc_std"]
            ax.axhline(mean, color="tab:red", ls="--",
                       label=f"adaptive (k = {'/'.join(map(str, sorted(set(adaptive_k))))})")
            ax.axhspan(mean - std, mean + std, color="tab:red", alpha=0.12)
    ax.set(xlabel="ECA kernel size k", ylabel="val top-1 (%)", xticks=ks, title=title or "ECA kernel size sweep")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_sweep_report(runs: Sequence[SweepRun], base: TrainConfig, out: str | Path) -> str:
    """Write ``kernel_sweep.json``, ``kernel_sweep.md`` and ``kernel_sweep.png`` to ``out``; return the Markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    adaptive_k = resolved_kernel_sizes(dataclasses.replace(
        base, attention_kwargs={k: v for k, v in base.attention_kwargs.items() if k != "k_size"}))
    rows = summarize(runs)
    title = f"{base.model}, recipe {base.recipe}, {base.epochs} epochs, data {base.data or base.train}"
    table = f"### {title}\n\n" + sweep_markdown(rows, adaptive_k)
    (out / "kernel_sweep.md").write_text(table)
    report = {"config": base.to_dict(), "adaptive_k": adaptive_k, "settings": rows,
              "runs": [dataclasses.asdict(run) for run in runs]}
    (out / "kernel_sweep.json").write_text(json.dumps(report, indent=2))
    plot_kernel_sweep(rows, adaptive_k, out / "kernel_sweep.png", title)
    return table
