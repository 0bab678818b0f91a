"""Several models x seeds trained with one recipe, summarised side by side: ``attnlab compare``.

Every (model, seed) pair is one run of the training engine in ``OUT/runs/LABEL-sSEED``. A run whose metrics
already hold all epochs with the same settings is skipped, and one with a resume state is continued, so an
interrupted comparison picks up where it stopped. The report (``report.md``, ``report.json`` and three PNGs)
is rebuilt from the run directories every time.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from attnlab.bench.throughput import count_flops
from attnlab.engine.config import TRAIN_FIELDS, TrainConfig, resolve_config
from attnlab.engine.modeling import model_for_config
from attnlab.engine.plots import epoch_axis, loss_axis
from attnlab.engine.rundir import safe_component
from attnlab.engine.trainer import train
from attnlab.utils import environment, markdown_table, new_figure, read_yaml_mapping, resolve_device

# Settings that change where or how fast a run executes but not what it computes; a finished run is reused
# even when they differ.
EXECUTION_FIELDS = ("device", "workers", "cache_dir", "tensorboard", "out")
WALL_TIME_FILE = "compare_wall_time.json"
PLOTS = {"val_accuracy": "val_accuracy.png", "loss": "loss.png", "accuracy_vs_params": "accuracy_vs_params.png"}


@dataclass(frozen=True)
class ModelEntry:
    """One contestant: a registry model, the label it is reported under, and its own training overrides."""

    label: str
    model: str
    overrides: dict = field(default_factory=dict)


@dataclass
class CompareConfig:
    """What ``compare`` runs: the models (the first is the baseline), recipe, seeds, output folder and the
    training overrides shared by all models (TrainConfig fields such as ``data``, ``epochs``, ``img_size``)."""

    models: list[ModelEntry]
    recipe: str = "fast"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    out: str = "runs/compare"
    overrides: dict = field(default_factory=dict)


_TRAIN_FIELDS = TRAIN_FIELDS - {"recipe", "seed", "out", "model"}


def _check_overrides(where: str, overrides: dict) -> None:
    unknown = sorted(set(overrides) - _TRAIN_FIELDS)
    if unknown:
        raise ValueError(f"{where} has unknown training options {unknown}; allowed: {sorted(_TRAIN_FIELDS)}")


def parse_models(models: Sequence[str | dict | ModelEntry]) -> list[ModelEntry]:
    """Model entries from names (``'eca_resnet50'``) or dicts (``{model: eca_resnet50, label: eca-k3,
    attention_kwargs: {k_size: 3}}``: every key besides ``model`` and ``label`` is a training override)."""
    if not isinstance(models, (list, tuple)) or not models:
        raise ValueError(f"models must be a non-empty list of model names, got {models!r}")
    entries = []
    for item in models:
        if isinstance(item, ModelEntry):
            entry = item
        elif isinstance(item, str):
            entry = ModelEntry(item, item)
        elif isinstance(item, dict) and isinstance(item.get("model"), str):
            overrides = {k: v for k, v in item.items() if k not in ("model", "label")}
            _check_overrides(f"model entry {item['model']!r}", overrides)
            label = str(item.get("label", item["model"]))
            if "/" in label or "\\" in label or label.startswith("."):
                raise ValueError(
                    f"label {label!r} of model {item['model']!r} must be a plain name (it names the run folders "
                    "under --out): no '/', '\\' or leading '.'"
                )
            entry = ModelEntry(label, item["model"], overrides)
        else:
            raise ValueError(f"a model entry must be a name or a dict with a 'model' key, got {item!r}")  # noqa: TRY004
        entries.append(entry)
    labels = [e.label for e in entries]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"model labels must be unique, got {repeated} more than once; give entries a 'label'")
    return entries


def parse_seeds(seeds: int | Sequence[int], first: int = 0) -> list[int]:
    """A count counts up from ``first`` (``3`` -> [0, 1, 2], as ``--seed 0 --seeds 3``); a list of seeds is kept
    as given."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1 (the number of seeds) or a list of seeds, got {seeds}")
        return list(range(first, first + seeds))
    seeds = list(seeds)
    if (
        not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        or len(set(seeds)) < len(seeds)
    ):
        raise ValueError(f"seeds must be a count or a list of distinct integers, got {seeds!r}")
    return seeds


def load_compare_config(path: str | Path) -> CompareConfig:
    """A comparison from YAML: ``models`` (list), optional ``recipe``, ``seeds`` (count or list), ``out``, and
    any TrainConfig field as a shared override (e.g. ``data``, ``epochs``, ``img_size``)."""
    path = Path(path)
    fields = read_yaml_mapping(path, "comparison config")
    if "models" not in fields:
        raise ValueError(f"{path} has no 'models' list; add e.g. 'models: [resnet50, eca_resnet50]'")
    overrides = {k: v for k, v in fields.items() if k not in ("models", "recipe", "seeds", "out")}
    _check_overrides(str(path), overrides)
    return CompareConfig(
        models=parse_models(fields["models"]),
        recipe=fields.get("recipe", "fast"),
        seeds=parse_seeds(fields.get("seeds", 3)),
        out=fields.get("out", "runs/compare"),
        overrides=overrides,
    )


# ------------------------------------------------------------------------------------------------------ runs


def run_config(spec: CompareConfig, entry: ModelEntry, seed: int) -> TrainConfig:
    out = Path(spec.out) / "runs" / safe_component(f"{entry.label}-s{seed}")
    return resolve_config(
        spec.recipe, **{**spec.overrides, **entry.overrides}, model=entry.model, seed=seed, out=str(out)
    )


def _read_history(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_state(config: TrainConfig) -> str:
    """'done' (all epochs logged), 'partial' (started with these settings) or 'new'. Raises ValueError when the run
    directory holds a run with other settings, so results are never mixed."""
    run_dir = Path(config.out)
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return "new"
    saved = read_yaml_mapping(saved_path, "run config")
    wanted = config.to_dict()
    differ = sorted(k for k in wanted if k not in EXECUTION_FIELDS and saved.get(k) != wanted[k])
    if differ:
        raise ValueError(
            f"{run_dir} holds a run with other settings "
            f"({', '.join(f'{k}: {saved.get(k)!r} != {wanted[k]!r}' for k in differ)}); "
            "use another --out or delete that run directory"
        )
    if len(_read_history(run_dir)) >= config.epochs and (run_dir / "last.safetensors").is_file():
        return "done"
    return "partial"  # resumed: from its last finished epoch, or from the start if it finished none


def _train(config: TrainConfig, resume: bool) -> None:
    wall_path = Path(config.out) / WALL_TIME_FILE
    before = json.loads(wall_path.read_text())["wall_seconds"] if resume and wall_path.is_file() else 0.0
    start = time.perf_counter()
    train(config, resume=resume)
    wall_path.write_text(json.dumps({"wall_seconds": before + time.perf_counter() - start}))


# run_state -> (what run_all is about to do, what it reports having done)
_STATE_ACTIONS = {
    "done": ("finished, skipping", "skipped"),
    "partial": ("resuming", "resumed"),
    "new": ("training", "trained"),
}


def run_all(spec: CompareConfig, progress: Callable[[str], None] = print) -> list[dict]:
    """Train every model x seed that is not finished; returns one {label, seed, run_dir, status} per run, where
    status is what this call did: 'trained', 'resumed' or 'skipped'."""
    configs = [(entry, seed, run_config(spec, entry, seed)) for entry in spec.models for seed in spec.seeds]
    states = [run_state(config) for _, _, config in configs]  # checks every directory before training any
    runs = []
    for (entry, seed, config), state in zip(configs, states):
        doing, status = _STATE_ACTIONS[state]
        progress(f"[compare] {entry.label} seed {seed}: {doing} ({config.out})")
        if state != "done":
            _train(config, resume=state == "partial")
        runs.append({"label": entry.label, "seed": seed, "run_dir": config.out, "status": status})
    return runs


# ---------------------------------------------------------------------------------------------------- report


def _mean_std(values: Sequence[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "per_seed": list(values),
    }


def _model_cost(config: TrainConfig, num_classes: int) -> tuple[int, int]:
    """(parameters, FLOPs per image at the run's img_size, eval mode) of the run's architecture, built as the
    run built it (attached attention included)."""
    model = model_for_config(config, num_classes)
    return sum(p.numel() for p in model.parameters()), count_flops(model, (3, config.img_size, config.img_size))


def summarise(spec: CompareConfig) -> dict:
    """The report of the finished runs of ``spec`` (see ``write_report``); histories go under ``'histories'``."""
    rows = []
    for entry in spec.models:
        configs = [run_config(spec, entry, seed) for seed in spec.seeds]
        histories = [_read_history(Path(c.out)) for c in configs]
        metadata = [json.loads((Path(c.out) / "best.json").read_text()) for c in configs]
        walls = [Path(c.out) / WALL_TIME_FILE for c in configs]
        params, flops = _model_cost(configs[0], len(metadata[0]["classes"]))
        rows.append(
            {
                "label": entry.label,
                "model": entry.model,
                "overrides": entry.overrides,
                "seeds": spec.seeds,
                "epochs": configs[0].epochs,
                "img_size": configs[0].img_size,
                "train_acc": _mean_std([h[-1]["train_acc"] for h in histories]),
                "val_acc": _mean_std([h[-1]["val_acc"] for h in histories]),
                "best_val_acc": _mean_std([max(row["val_acc"] for row in h) for h in histories]),
                "val_images": metadata[0]["val_result"]["images"],
                "params": params,
                "flops": flops,
                "train_images_per_s": statistics.fmean(
                    statistics.median(row["train_images_per_s"] for row in h) for h in histories
                ),
                "infer_images_per_s": statistics.fmean(m["val_result"]["images_per_s"] for m in metadata),
                "wall_seconds": (
                    statistics.fmean(json.loads(w.read_text())["wall_seconds"] for w in walls)
                    if all(w.is_file() for w in walls)
                    else None
                ),
                "histories": histories,
            }
        )
    baseline = rows[0]["val_acc"]["mean"]
    for row in rows:
        row["delta_val_points"] = 100 * (row["val_acc"]["mean"] - baseline)
    return {
        "recipe": spec.recipe,
        "seeds": spec.seeds,
        "overrides": spec.overrides,
        "baseline": rows[0]["label"],
        "models": rows,
        "environment": environment(resolve_device(run_config(spec, spec.models[0], spec.seeds[0]).device)),
    }


def _pct(stats: dict) -> str:
    """'32.00 ± 1.20' (mean ± sample std over seeds, in %), or '32.00' for one seed, where there is no spread."""
    mean = f"{100 * stats['mean']:.2f}"
    return mean if len(stats["per_seed"]) == 1 else f"{mean} ± {100 * stats['std']:.2f}"


def _over_seeds(report: dict) -> str:
    """'mean ± std over 3 seeds' or, for one seed, 'seed 0'."""
    seeds = report["seeds"]
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"mean ± std over {len(seeds)} seeds"


def noise_caveat(report: dict) -> str:
    """How far the accuracies can be trusted: what ± means, and the sampling error of one accuracy measured on the
    validation images (binomial standard error at the baseline's accuracy)."""
    seeds, baseline = report["seeds"], report["models"][0]
    p, n = baseline["val_acc"]["mean"], baseline["val_images"]
    sampling = (
        f"With {n} validation images, one accuracy near {100 * p:.0f}% has a sampling error of about "
        f"±{100 * math.sqrt(p * (1 - p) / n):.1f} points (binomial standard error)."
    )
    if len(seeds) == 1:
        return (
            f"One seed ({seeds[0]}): the spread over seeds is not measured, so a Δ of a few points may be seed noise; "
            f"use --seeds 3 or more to measure it. {sampling}"
        )
    return (
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): ± is the sample standard deviation over seeds; treat a Δ "
        f"smaller than about twice the larger std as noise. {sampling}"
    )


def _results_table(report: dict) -> tuple[list[str], list[list[str]]]:
    """(head, rows) of the comparison table; one seed has no per-seed column and no ±."""
    several = len(report["seeds"]) > 1
    head = [
        "model",
        "val acc (%)",
        "Δ val (points)",
        *(["val acc per seed"] if several else []),
        "best val acc",
        "train acc",
        "params (M)",
        "GFLOPs",
        "train img/s",
        "infer img/s",
        "wall s/run",
    ]
    table = [
        [
            row["label"],
            _pct(row["val_acc"]),
            f"{row['delta_val_points']:+.2f}",
            *([", ".join(f"{100 * v:.2f}" for v in row["val_acc"]["per_seed"])] if several else []),
            _pct(row["best_val_acc"]),
            _pct(row["train_acc"]),
            f"{row['params'] / 1e6:.3f}",
            f"{row['flops'] / 1e9:.3f}",
            f"{row['train_images_per_s']:.1f}",
            f"{row['infer_images_per_s']:.1f}",
            "-" if row["wall_seconds"] is None else f"{row['wall_seconds']:.0f}",
        ]
        for row in report["models"]
    ]
    return head, table


def compare_table(report: dict) -> str:
    """The comparison for a terminal: a title, the table of ``report.md`` in aligned columns, and the noise
    caveat."""
    head, rows = _results_table(report)
    widths = [max(len(cell) for cell in column) for column in zip(head, *rows)]
    lines = [
        f"recipe {report['recipe']}, last-epoch top-1 in % ({_over_seeds(report)}); Δ: val acc minus the baseline "
        f"{report['baseline']}'s, in points",
        *(
            "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            for line in [head, *rows]
        ),
        noise_caveat(report),
    ]
    return "\n".join(lines)


def report_markdown(report: dict) -> str:
    rows = report["models"]
    sizes = sorted({row["img_size"] for row in rows})
    lines = [
        f"# Comparison: recipe `{report['recipe']}`, seeds {report['seeds']}",
        "",
        (
            f"Shared overrides: `{json.dumps(report['overrides'])}`. Accuracies are top-1 in % at the last epoch, "
            f"{_over_seeds(report)}; Δ is the difference of the val acc to the baseline "
            f"`{report['baseline']}` in points. FLOPs: one image at {'/'.join(map(str, sizes))} px, eval mode "
            "(torch.utils.flop_counter, convs and matmuls). Train images/s: the median epoch of each run, mean "
            "over seeds; inference images/s: the engine's evaluation of the best checkpoint (model compute only); "
            "wall time: mean per run (training with evaluation and checkpoints)."
        ),
        "",
        f"Noise: {noise_caveat(report)}",
        "",
        (
            "Environment of this report: {hardware} ({device}), torch {torch}, attnlab {attnlab}, git "
            "{git_commit}; `{command}` at {time}.".format(**report["environment"])
        ),
        "",
    ]
    head, table = _results_table(report)
    lines += [markdown_table(head, table), "", *(f"![{name}]({file})" for name, file in PLOTS.items()), ""]
    return "\n".join(lines)


def _band(ax, histories: list[list[dict]], key: str, label: str, scale: float = 1.0) -> None:
    """Mean over seeds of ``scale * key`` per epoch, with a mean ± std band; whole epochs on the x axis."""
    import numpy as np

    epochs = min(len(h) for h in histories)
    values = scale * np.array([[row[key] for row in h[:epochs]] for h in histories], dtype=float)
    x = np.arange(1, epochs + 1)
    mean, std = values.mean(0), values.std(0, ddof=1) if len(values) > 1 else np.zeros(epochs)
    (line,) = ax.plot(x, mean, label=label, marker="o" if epochs == 1 else None)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    epoch_axis(ax, list(range(1, epochs + 1)))


def write_plots(report: dict, out: Path) -> None:
    rows = report["models"]
    fig = new_figure(6, 4)
    ax = fig.subplots()
    for row in rows:
        _band(ax, row["histories"], "val_acc", row["label"], scale=100)
    ax.set(xlabel="epoch", ylabel="val top-1 (%)", title=f"validation accuracy ({_over_seeds(report)})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(out / PLOTS["val_accuracy"], dpi=100)

    fig = new_figure(11, 4)
    axes = fig.subplots(1, 2)
    for ax, key in zip(axes, ("train_loss", "val_loss")):
        for row in rows:
            _band(ax, row["histories"], key, row["label"])
        log = loss_axis(ax, [r[key] for row in rows for h in row["histories"] for r in h])
        ax.set(xlabel="epoch", ylabel="loss" + " (log scale)" * log)
        ax.set_title(f"{key.replace('_', ' ')} ({_over_seeds(report)})")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(out / PLOTS["loss"], dpi=100)

    fig = new_figure(6, 4)
    ax = fig.subplots()
    for row in rows:
        x, y, err = row["params"] / 1e6, 100 * row["val_acc"]["mean"], 100 * row["val_acc"]["std"]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=row["label"])
        ax.annotate(row["label"], (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set(xlabel="parameters (M)", ylabel="val top-1 (%)", title="accuracy vs parameters")
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.grid(alpha=0.3)
    fig.savefig(out / PLOTS["accuracy_vs_params"], dpi=100)


def without_histories(report: dict) -> dict:
    """``report`` without the per-epoch histories (they stay in the run directories)."""
    return {**report, "models": [{k: v for k, v in row.items() if k != "histories"} for row in report["models"]]}


def write_report(report: dict, out: str | Path, preamble: str = "") -> Path:
    """``report.json`` (without the histories), ``report.md`` (after ``preamble``, e.g. a benchmark's hardware
    and command) and the PNGs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_plots(report, out)
    (out / "report.json").write_text(json.dumps(without_histories(report), indent=2))
    (out / "report.md").write_text(preamble + report_markdown(report))
    return out / "report.md"


def compare(
    models: Sequence[str | dict | ModelEntry],
    *,
    recipe: str = "fast",
    seeds: int | Sequence[int] = 3,
    out: str | Path = "runs/compare",
    overrides: dict | None = None,
    progress: Callable[[str], None] = print,
) -> dict:
    """Train ``models`` x ``seeds`` with ``recipe`` (plus the shared TrainConfig ``overrides``), skipping
    finished runs, and write the report to ``out``. Returns the report (as in ``report.json``) with the runs'
    status under ``'runs'``."""
    overrides = dict(overrides or {})
    _check_overrides("overrides", overrides)
    spec = CompareConfig(parse_models(models), recipe, parse_seeds(seeds), str(out), overrides)
    return run_spec(spec, progress)


def run_spec(spec: CompareConfig, progress: Callable[[str], None] = print) -> dict:
    """``compare`` for a ready :class:`CompareConfig` (e.g. from ``load_compare_config``)."""
    runs = run_all(spec, progress)
    report = summarise(spec)
    report["runs"] = runs
    path = write_report(report, spec.out)
    progress(f"[compare] wrote {path}, report.json and {', '.join(PLOTS.values())} in {spec.out}")
    return without_histories(report)
