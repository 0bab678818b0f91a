"""The kernel-size study of Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks" (CVPR 2020, Fig. 4): accuracy of an ECA network trained with a fixed 1D kernel size k, for several k,
against the adaptive ``k = psi(C)``. The paper finds the adaptive choice as good as the best fixed k.

The runs are an ``attnlab compare`` of one model under several ``attention_kwargs`` (one entry per k, seeds as
asked), so finished runs are skipped, interrupted ones resumed, and compare's report comes with the sweep's.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from attnlab.bench.compare import ModelEntry, compare
from attnlab.models import attention_layers, create_model
from attnlab.utils import markdown_table, new_figure

ADAPTIVE = "adaptive"


def resolved_kernel_sizes(model: str, attention: str | None = None, attention_kwargs: dict | None = None) -> list[int]:
    """ECA kernel sizes of ``create_model(model, attention=..., attention_kwargs=...)``, module by module (built
    on the meta device, no weights); ValueError when the model has no ECA module."""
    with torch.device("meta"):
        built = create_model(model, attention=attention, attention_kwargs=attention_kwargs or None)
    sizes = [layer["k_size"] for layer in attention_layers(built) if "k_size" in layer]
    if not sizes:
        raise ValueError(
            f"model {model!r} (attention {attention!r}) has no ECA modules to sweep k on; "
            "use an ECA model such as eca_resnet20, or --attention eca"
        )
    return sizes


def sweep_entries(
    model: str, k_sizes: Sequence[int], attention: str | None = None, attention_kwargs: dict | None = None
) -> list[ModelEntry]:
    """Compare entries: the adaptive k first (compare's baseline), then each fixed k, labelled 'adaptive', 'k3', ...
    Fails early on a model without ECA or a bad k."""
    if not k_sizes:
        raise ValueError("give at least one kernel size, e.g. --k 3,5,7,9")
    base = {key: value for key, value in (attention_kwargs or {}).items() if key != "k_size"}
    entries = []
    for k in [None, *k_sizes]:
        kwargs = base if k is None else {**base, "k_size": k}
        resolved_kernel_sizes(model, attention, kwargs)
        entries.append(ModelEntry(ADAPTIVE if k is None else f"k{k}", model, {"attention_kwargs": kwargs}))
    return entries


def sweep_rows(report: dict) -> list[dict]:
    """One row per setting from a compare report: label, k (None for adaptive), val accuracy stats over seeds."""
    return [
        {"setting": row["label"], "k": row["overrides"]["attention_kwargs"].get("k_size"), "val_acc": row["val_acc"]}
        for row in report["models"]
    ]


def _adaptive_label(adaptive_k: Sequence[int]) -> str:
    return f"adaptive (k = {'/'.join(map(str, sorted(set(adaptive_k))))})"


def settings_text(overrides: dict) -> str:
    """Shared training overrides as a readable line, e.g. 'data: flowers, epochs: 10, img_size: 64' (no JSON: a
    mapping reads 'k_size=3 gamma=2')."""

    def text(value: object) -> str:
        return " ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)

    return ", ".join(f"{key}: {text(value)}" for key, value in overrides.items()) or "the recipe's settings"


def sweep_markdown(rows: Sequence[dict], adaptive_k: Sequence[int], title: str = "", settings: str = "") -> str:
    """The rows as a Markdown table (last-epoch val top-1 in %, mean +- sample std over seeds, each seed; the mean
    alone for one seed) under ``title`` and a ``settings`` line."""
    lines = [f"### {title}", ""] if title else []
    lines += [f"Settings: {settings}", ""] if settings else []
    head = ["kernel size", "seeds", "val top-1 (%)", "delta vs adaptive (points)", "per seed"]
    adaptive = next(100 * r["val_acc"]["mean"] for r in rows if r["k"] is None)
    cells = []
    for row in rows:
        stats = row["val_acc"]
        cells.append(
            [
                _adaptive_label(adaptive_k) if row["k"] is None else f"k = {row['k']}",
                len(stats["per_seed"]),
                f"{100 * stats['mean']:.2f}" + (f" +- {100 * stats['std']:.2f}" if len(stats["per_seed"]) > 1 else ""),
                f"{100 * stats['mean'] - adaptive:+.2f}",
                ", ".join(f"{100 * a:.2f}" for a in stats["per_seed"]),
            ]
        )
    lines.append(markdown_table(head, cells, align="lrrrl"))
    return "\n".join(lines) + "\n"


def plot_kernel_sweep(
    rows: Sequence[dict], adaptive_k: Sequence[int], path: str | Path, title: str = "", settings: str = ""
) -> Path:
    """Val top-1 vs fixed k (mean with std error bars, seeds as dots); the adaptive k as a horizontal line
    with a +- std band; ``settings`` goes, wrapped, into a small subtitle."""
    fixed = sorted((row for row in rows if row["k"] is not None), key=lambda row: row["k"])
    fig = new_figure(6, 4)
    ax = fig.subplots()
    ks = [row["k"] for row in fixed]
    ax.errorbar(
        ks,
        [100 * r["val_acc"]["mean"] for r in fixed],
        yerr=[100 * r["val_acc"]["std"] for r in fixed],
        marker="o",
        capsize=4,
        label="fixed k",
    )
    for row in fixed:
        seeds = row["val_acc"]["per_seed"]
        ax.scatter([row["k"]] * len(seeds), [100 * a for a in seeds], s=10, color="gray", alpha=0.6)
    for row in rows:
        if row["k"] is None:
            mean, std = 100 * row["val_acc"]["mean"], 100 * row["val_acc"]["std"]
            ax.axhline(mean, color="tab:red", ls="--", label=_adaptive_label(adaptive_k))
            ax.axhspan(mean - std, mean + std, color="tab:red", alpha=0.12)
    ax.set(xlabel="ECA kernel size k", ylabel="val top-1 (%)", xticks=ks)
    ax.set_title(title or "ECA kernel size sweep", fontsize=10)
    if settings:
        fig.suptitle(textwrap.fill(settings, 90), fontsize=7, color="dimgray")
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


def kernel_sweep(
    model: str,
    k_sizes: Sequence[int],
    seeds: Sequence[int],
    out: str | Path,
    *,
    recipe: str = "fast",
    overrides: dict | None = None,
    progress: Callable[[str], None] = print,
) -> str:
    """Train (or skip / resume) every setting x seed through ``compare`` into ``out``, then write
    ``kernel_sweep.{md,json,png}`` beside compare's report; returns the Markdown table. ``overrides`` are shared
    TrainConfig fields (``data``, ``epochs``, ``attention``, ``attention_kwargs`` other than ``k_size``, ...)."""
    overrides = dict(overrides or {})
    attention, attention_kwargs = overrides.get("attention"), overrides.pop("attention_kwargs", None)
    entries = sweep_entries(model, k_sizes, attention, attention_kwargs)
    report = compare(entries, recipe=recipe, seeds=list(seeds), out=out, overrides=overrides, progress=progress)
    adaptive_k = resolved_kernel_sizes(model, attention, entries[0].overrides["attention_kwargs"])
    rows = sweep_rows(report)
    seeds, epochs = len(rows[0]["val_acc"]["per_seed"]), report["models"][0]["epochs"]
    title = f"{model}, recipe {recipe}, {epochs} epoch{'s' * (epochs > 1)}, {seeds} seed{'s' * (seeds > 1)}"
    settings = settings_text(overrides)
    out = Path(out)
    table = sweep_markdown(rows, adaptive_k, title, settings)
    (out / "kernel_sweep.md").write_text(table)
    (out / "kernel_sweep.json").write_text(
        json.dumps(
            {"model": model, "recipe": recipe, "overrides": overrides, "adaptive_k": adaptive_k, "settings": rows},
            indent=2,
        )
    )
    plot_kernel_sweep(rows, adaptive_k, out / "kernel_sweep.png", title, settings)
    return table
