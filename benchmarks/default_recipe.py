"""Benchmark: is the default recipe (``fast``) safe on real small data, and as good as the other recipes?

Every data set x model x recipe x seed is trained for the same epochs through the Python API, and each (data set,
model) cell of the default is checked against two criteria, printed as PASS/FAIL:

- no divergence: for every seed, no epoch after the second has a validation loss above 3x the first epoch's;
- accuracy: its final validation accuracy (mean over seeds) is within 2 points of, or above, the best other
  recipe's (the previous default ``fast-before`` included).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/default_recipe.py            # the whole grid
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/default_recipe.py \\
        --sets flowers5x60,digits --models eca_resnet18 --recipes fast,fast-before         # a part of it

Data sets (``../shared/data``; the subsets are folders of symbolic links under ``--work``, nothing is copied):
``flowers5x60`` the first 5 classes of flowers17 with 60 train / 16 test images each, at 64 px; ``flowers17`` all
of it (1088 / 272) at 64 px; ``cifar10-500`` 500 train / 100 test images of each CIFAR-10 (JPEG) class at 32 px;
``digits`` the embedded digits (1438 / 359) at 16 px, as ``attnlab demo`` trains them. ``fast-before`` is the
default before issue 13 (SGD lr 0.1, Nesterov momentum 0.9, weight decay 5e-4, a warm-up of one epoch) in today's
fields. Other recipes get the set's image size and the same epochs (crop recipes keep their cache/crop ratio).

Finished runs are kept in ``--results`` (.json next to the .md) and skipped when the script runs again, so it can
be stopped and continued, or run part by part; the Markdown report is rewritten after every run.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import statistics
import time
from pathlib import Path

import torch

from attnlab.data import load_splits
from attnlab.engine import TrainingDiverged, list_recipes, load_recipe, resolve_config, train
from attnlab.utils import atomic_write_text, environment, markdown_table

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
DEFAULT = "fast"
BEFORE = "fast-before"
# The default recipe before issue 13, on top of today's fast.yaml; its warm-up was one epoch (set per data set).
BEFORE_FIELDS = {
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5.0e-4,
    "batch_size": 64,
    "grad_clip": None,
}
# name: (source, classes, train images per class, test images per class, image size); None: all of them
SETS = {
    "flowers5x60": ("flowers17", 5, 60, 16, 64),
    "flowers17": ("flowers17", 17, None, None, 64),
    "cifar10-500": ("cifar10", 10, 500, 100, 32),
    "digits": ("digits", 10, None, None, 16),  # as in attnlab demo
}
MODELS = ("resnet18", "eca_resnet18", "resnet20")
DIVERGENCE_RATIO = 3.0
# A blow-up inside epoch 1 hides from the ratio (the old default's first val loss reached 10^4 on 300 photos):
# the first epoch's val loss must also stay within this factor of chance, ln(classes).
FIRST_EPOCH_CHANCE_FACTOR = 3.0
ACCURACY_MARGIN = 0.02


def data_path(name: str, work: Path) -> str:
    """The ``--data`` of a set: 'digits', a shared folder, or a subset of one built of links under ``work``."""
    source, classes, n_train, n_test, _ = SETS[name]
    if source == "digits":
        return "digits"
    root = SHARED / source
    if not root.is_dir():
        raise SystemExit(f"{root} is missing: this benchmark needs ../shared/data next to the repository")
    if n_train is None:
        return str(root)
    subset = work / "data" / name
    if not subset.is_dir():
        tmp = subset.with_name(subset.name + ".tmp")
        for split, count in (("train", n_train), ("test", n_test)):
            for folder in sorted(p for p in (root / split).iterdir() if p.is_dir())[:classes]:
                (tmp / split / folder.name).mkdir(parents=True, exist_ok=True)
                for file in sorted(folder.iterdir())[:count]:
                    (tmp / split / folder.name / file.name).symlink_to(file)
        tmp.rename(subset)
    return str(subset)


def recipe_overrides(recipe: str, set_name: str, data: str, epochs: int, work: Path) -> tuple[str, dict]:
    """(recipe to resolve, overrides) of one run."""
    img_size = SETS[set_name][4]
    overrides = {"img_size": img_size, "epochs": epochs}
    if recipe == BEFORE:
        n_train = len(load_splits(data, size=img_size, cache_dir=str(work / "cache")).train)
        steps_per_epoch = max(1, n_train // BEFORE_FIELDS["batch_size"])
        return DEFAULT, {**overrides, **BEFORE_FIELDS, "warmup_steps": steps_per_epoch}
    fields = load_recipe(recipe)
    if "cache_size" in fields:  # crop recipes: cache a little larger than the crop, as at their own size
        overrides["cache_size"] = round(img_size * fields["cache_size"] / fields["img_size"])
    return recipe, overrides


def run_one(set_name: str, model: str, recipe: str, seed: int, epochs: int, work: Path) -> dict:
    """Train one run (its log in the run folder) and return its per-epoch losses and accuracies."""
    data = data_path(set_name, work)
    name, overrides = recipe_overrides(recipe, set_name, data, epochs, work)
    out = work / "runs" / f"{set_name}-{model}-{recipe}-s{seed}"
    config = resolve_config(
        name, model=model, data=data, seed=seed, device="cpu", cache_dir=str(work / "cache"), out=str(out), **overrides
    )
    out.mkdir(parents=True, exist_ok=True)
    cpu, wall = time.process_time(), time.perf_counter()
    diverged = None
    with open(out.with_suffix(".log"), "w") as log, contextlib.redirect_stdout(log):
        try:
            train(config, overwrite=True)
        except TrainingDiverged as error:
            diverged = str(error)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] if not diverged else []
    return {
        "set": set_name,
        "model": model,
        "recipe": recipe,
        "seed": seed,
        "epochs": epochs,
        "val_loss": [row["val_loss"] for row in rows],
        "val_acc": [row["val_acc"] for row in rows],
        "nan": diverged,
        "cpu_seconds": time.process_time() - cpu,
        "wall_seconds": time.perf_counter() - wall,
    }


def loss_ratio(run: dict) -> float:
    """The largest validation loss after epoch 2 over the first epoch's (inf when the loss became NaN)."""
    losses = run["val_loss"]
    if run["nan"] or not losses:
        return float("inf")
    return max(losses[2:], default=losses[0]) / losses[0]


def first_loss_over_chance(run: dict) -> float:
    """The first epoch's validation loss over the loss of a uniform guess, ln(classes) (inf when NaN)."""
    if run["nan"] or not run["val_loss"]:
        return float("inf")
    return run["val_loss"][0] / math.log(SETS[run["set"]][1])


def final_acc(runs: list[dict]) -> float:
    return statistics.mean(run["val_acc"][-1] if run["val_acc"] else 0.0 for run in runs)


def percent(runs: list[dict]) -> str:
    """Mean final accuracy over seeds (and each seed's) in percent."""
    if not runs:
        return "-"
    seeds = "/".join(f"{100 * r['val_acc'][-1]:.1f}" if r["val_acc"] else "NaN" for r in runs)
    return f"{100 * final_acc(runs):.1f} ({seeds})"


def cell_rows(results: list[dict], sets: list[str], models: list[str]) -> tuple[list[list], int]:
    """One row per (set, model) with the default's criteria; also the number of FAILs."""
    rows, fails = [], 0
    for set_name in sets:
        for model in models:
            runs = [r for r in results if r["set"] == set_name and r["model"] == model]
            by_recipe: dict[str, list[dict]] = {}
            for run in runs:
                by_recipe.setdefault(run["recipe"], []).append(run)
            default = by_recipe.pop(DEFAULT, [])
            if not default:
                continue
            ratio = max(loss_ratio(r) for r in default)
            first = max(first_loss_over_chance(r) for r in default)
            stable = "PASS" if ratio <= DIVERGENCE_RATIO and first <= FIRST_EPOCH_CHANCE_FACTOR else "FAIL"
            best = max(by_recipe, key=lambda recipe: final_acc(by_recipe[recipe]), default=None)
            if best is None:
                accurate = "n/a"
            else:
                accurate = "PASS" if final_acc(default) >= final_acc(by_recipe[best]) - ACCURACY_MARGIN else "FAIL"
            fails += (stable == "FAIL") + (accurate == "FAIL")
            before = by_recipe.get(BEFORE, [])
            rows.append(
                [
                    set_name,
                    model,
                    len(default),
                    percent(default),
                    f"{ratio:.2f}",
                    f"{first:.2f}",
                    percent(before),
                    f"{max(loss_ratio(r) for r in before):.2f}" if before else "-",
                    f"{max(first_loss_over_chance(r) for r in before):.2f}" if before else "-",
                    f"{best} {percent(by_recipe[best])}" if best else "-",
                    stable,
                    accurate,
                ]
            )
    return rows, fails


def report(results: list[dict], args: argparse.Namespace, env: dict) -> tuple[str, int]:
    sets = [s for s in SETS if any(r["set"] == s for r in results)]
    models = [m for m in MODELS if any(r["model"] == m for r in results)] + sorted(
        {r["model"] for r in results} - set(MODELS)
    )
    rows, fails = cell_rows(results, sets, models)
    cells = markdown_table(
        [
            "data (px)",
            "model",
            "seeds",
            "fast: final acc % (seeds)",
            "fast: max val-loss ratio",
            "fast: epoch-1 loss / chance",
            "fast-before: final acc %",
            "fast-before: ratio",
            "fast-before: epoch-1 loss / chance",
            "best other recipe: final acc %",
            "no divergence",
            "accuracy",
        ],
        [[f"{row[0]} ({SETS[row[0]][4]})", *row[1:]] for row in rows],
        "llrrrrrrrlll",
    )
    run_rows = [
        [
            r["set"],
            r["model"],
            r["recipe"],
            r["seed"],
            " ".join(f"{loss:.3g}" for loss in r["val_loss"]) or "NaN",
            " ".join(f"{100 * acc:.0f}" for acc in r["val_acc"]) or "-",
            f"{r['cpu_seconds']:.0f}",
            f"{r['wall_seconds']:.0f}",
        ]
        for r in sorted(results, key=lambda r: (list(SETS).index(r["set"]), r["model"], r["recipe"], r["seed"]))
    ]
    runs = markdown_table(
        ["data", "model", "recipe", "seed", "val loss per epoch", "val acc % per epoch", "CPU s", "wall s"],
        run_rows,
        "llllllrr",
    )
    recipes = sorted({r["recipe"] for r in results})
    text = "\n".join(
        [
            "# The default recipe on real small data (issue 13)",
            "",
            "- Commands (`OMP_NUM_THREADS=1 nice -n 10`, one torch thread):",
            *(f"  - `{command}`" for command in dict.fromkeys(r["command"] for r in results)),
            f"- Hardware: {env['hardware']}, {env['cpu_cores']} cores shared with other jobs, "
            f"{env['torch_threads']} torch thread(s); device cpu.",
            f"- Versions: Python {env['python']}, torch {env['torch']}, torchvision {env['torchvision']}, "
            f"attnlab {env['attnlab']} (commit {env['git_commit']}). Finished {env['time']}.",
            f"- Time: {sum(r['wall_seconds'] for r in results) / 60:.1f} min wall, "
            f"{sum(r['cpu_seconds'] for r in results) / 60:.1f} min CPU over all runs (the wall/CPU gap is other jobs "
            "on the shared cores; parts ran side by side).",
            f"- {len(results)} runs, {args.epochs} epochs each; recipes run: {', '.join(recipes)}.",
            "- Criteria per cell: *no divergence* = the largest val loss after epoch 2 over the first epoch's is at "
            f"most {DIVERGENCE_RATIO:g} for every seed (the ratio column is the worst seed's), and the first epoch's "
            f"val loss is at most {FIRST_EPOCH_CHANCE_FACTOR:g}x chance (ln classes); *accuracy* = the "
            f"default's mean final val accuracy is at least the best other recipe's minus {100 * ACCURACY_MARGIN:g} "
            "points (n/a: no other recipe ran on that cell).",
            "",
            "## Criteria per cell",
            "",
            cells,
            "",
            f"{fails} FAIL(s).",
            "",
            "## Every run",
            "",
            runs,
            "",
        ]
    )
    return text, fails


def read_results(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma list of {', '.join(SETS)} (default: all)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of model names (default: %(default)s)")
    parser.add_argument(
        "--recipes",
        default=",".join([DEFAULT, BEFORE, *(r for r in list_recipes() if r != DEFAULT)]),
        help="comma list of recipes; fast-before is the previous default (default: %(default)s)",
    )
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1 (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of every run (default: %(default)s)")
    parser.add_argument("--work", default="runs/default-recipe", help="runs, subsets and the image cache")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "default_recipe.md"))
    parser.add_argument("--report", action="store_true", help="only rewrite the report from the finished runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work, results_md = Path(args.work), Path(args.results)
    results_json = results_md.with_suffix(".json")
    env = environment("cpu")
    unknown = sorted(set(args.sets.split(",")) - set(SETS))
    if unknown:
        raise SystemExit(f"unknown sets {unknown}; choose from {', '.join(SETS)}")
    grid = [
        (set_name, model, recipe, seed)
        for seed in range(args.seeds)
        for set_name in args.sets.split(",")
        for model in args.models.split(",")
        for recipe in args.recipes.split(",")
    ]
    # the default and the previous one with every seed first, then one seed of every other recipe, then the rest:
    # a benchmark stopped early has the criteria's core
    grid.sort(key=lambda run: (run[2] not in (DEFAULT, BEFORE)) * (1 + run[3]))
    for set_name, model, recipe, seed in [] if args.report else grid:
        key = (set_name, model, recipe, seed, args.epochs)
        done = read_results(results_json)  # also the runs of parts running side by side
        if any((r["set"], r["model"], r["recipe"], r["seed"], r["epochs"]) == key for r in done):
            continue
        run = {**run_one(set_name, model, recipe, seed, args.epochs, work), "command": env["command"]}
        with open(work / "results.lock", "w") as lock:  # parts may run side by side
            fcntl.flock(lock, fcntl.LOCK_EX)
            results = read_results(results_json) + [run]
            atomic_write_text(results_json, json.dumps(results, indent=1) + "\n")
            text, fails = report(results, args, env)
            atomic_write_text(results_md, text)
        print(
            f"{set_name} {model} {recipe} seed {seed}: final acc {100 * final_acc([run]):.1f}%, "
            f"val-loss ratio {loss_ratio(run):.2f}, {run['wall_seconds']:.0f}s",
            flush=True,
        )
    results = read_results(results_json)
    text, fails = report(results, args, env)
    atomic_write_text(results_md, text)
    print(text)


if __name__ == "__main__":
    main()
