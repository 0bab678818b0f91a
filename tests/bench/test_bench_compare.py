"""attnlab.bench.compare: two tiny models x 2 seeds on a generated 2-class image folder, 1 epoch of 8 px."""

import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import attnlab
from attnlab.bench.compare import compare, load_compare_config
from attnlab.engine.config import list_recipes

MODELS = ["resnet20", "eca_resnet20"]
SEEDS = 2
CONFIGS = sorted((Path(__file__).parents[2] / "configs" / "compare").glob("*.yaml"))


def write_image_folder(root: Path) -> None:
    """train/ (6 per class) and test/ (4 per class) of 12x12 PNGs: dark vs bright noise."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("test", 4)):
        for name, level in (("dark", 60), ("bright", 190)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.normal(level, 20, (12, 12, 3)).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    write_image_folder(root / "data")
    overrides = dict(data=str(root / "data"), epochs=1, img_size=8, cache_size=8, batch_size=4, device="cpu")
    run = lambda: compare(MODELS, seeds=SEEDS, out=root / "out", overrides=overrides, progress=lambda m: None)  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        # the engine's per-run plots (prediction grid, confusion) are not under test and cost seconds each
        patch.setattr("attnlab.engine.plots.plot_run", lambda *args, **kwargs: None)
        yield run(), run, root / "out"


def last_epoch(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])


def test_compare_writes_the_report_with_one_row_per_model(comparison):
    report, _, out = comparison
    for name in ("report.md", "report.json", "val_accuracy.png", "loss.png", "accuracy_vs_params.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "report.json").read_text())
    assert [row["label"] for row in saved["models"]] == MODELS and saved["baseline"] == MODELS[0]
    assert [r["status"] for r in saved["runs"]] == ["trained"] * len(MODELS) * SEEDS
    for row in saved["models"]:
        runs = [out / "runs" / f"{row['label']}-s{seed}" for seed in range(SEEDS)]
        val = [last_epoch(r)["val_acc"] for r in runs]
        assert row["val_acc"]["per_seed"] == val
        assert row["val_acc"]["mean"] == pytest.approx(statistics.fmean(val))
        assert row["val_acc"]["std"] == pytest.approx(statistics.stdev(val))
        assert row["train_acc"]["per_seed"] == [last_epoch(r)["train_acc"] for r in runs]
        model = attnlab.create_model(row["model"], num_classes=2)
        assert row["params"] == sum(p.numel() for p in model.parameters())
        assert row["flops"] > 0 and row["train_images_per_s"] > 0 and row["infer_images_per_s"] > 0
        assert row["wall_seconds"] > 0
    baseline = saved["models"][0]["val_acc"]["mean"]
    assert saved["models"][1]["delta_val_points"] == pytest.approx(
        100 * (saved["models"][1]["val_acc"]["mean"] - baseline)
    )
    assert report["models"][0]["delta_val_points"] == 0
    table = (out / "report.md").read_text()
    assert all(table.count(f"\n| {label} |") == 1 for label in MODELS)


def test_compare_skips_finished_runs_and_redoes_only_missing_ones(comparison):
    _, run, out = comparison
    weights = sorted((out / "runs").glob("*/last.safetensors"))
    mtimes = [p.stat().st_mtime_ns for p in weights]
    assert [r["status"] for r in run()["runs"]] == ["skipped"] * 4
    assert [p.stat().st_mtime_ns for p in weights] == mtimes

    shutil.rmtree(out / "runs" / "eca_resnet20-s1")
    statuses = {(r["label"], r["seed"]): r["status"] for r in run()["runs"]}
    assert statuses.pop(("eca_resnet20", 1)) == "trained"
    assert set(statuses.values()) == {"skipped"}


def test_compare_refuses_to_mix_runs_with_other_settings(comparison):
    _, _, out = comparison
    data = json.loads((out / "report.json").read_text())["overrides"]["data"]
    with pytest.raises(ValueError, match="epochs: 1 != 2"):
        compare(
            MODELS,
            seeds=SEEDS,
            out=out,
            progress=lambda m: None,
            overrides=dict(data=data, epochs=2, img_size=8, cache_size=8, batch_size=4, device="cpu"),
        )


@pytest.mark.parametrize("models, message", [([], "non-empty"), (["a", "a"], "unique"), ([{"label": "x"}], "'model'")])
def test_compare_rejects_bad_model_lists(models, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        compare(models, out=tmp_path)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_compare_configs_name_real_models_and_recipes(path):
    spec = load_compare_config(path)
    assert spec.recipe in list_recipes()
    assert all(entry.model in attnlab.list_models() for entry in spec.models)
    assert len(spec.seeds) >= 2


def test_shipped_configs_cover_the_three_seed_experiments_and_their_cpu_variants():
    names = {p.name for p in CONFIGS}
    for base in ("flowers17-resnet50", "cifar10-alexnet", "cifar10-epsanet"):
        assert {f"{base}.yaml", f"{base}-cpu.yaml"} <= names


def test_model_cost_counts_attached_modules():
    from attnlab.bench.compare import _model_cost
    from attnlab.engine.config import resolve_config

    plain = resolve_config("fast", model="resnet20", img_size=32)
    attached = resolve_config("fast", model="resnet20", attach="se", img_size=32)
    (plain_params, plain_flops), (params, flops) = _model_cost(plain, 10), _model_cost(attached, 10)
    se_params = sum(2 * c * (c // 16) + c // 16 + c for c in (16, 32, 64)) * 3  # 3 blocks per stage
    assert params - plain_params == se_params + 9  # + one zero-initialised blend scale per inserted module
    assert flops > plain_flops  # the SE MLPs' matmuls


def test_cli_compare_prints_the_table_and_the_noise_caveat(comparison, capsys):
    from attnlab import cli

    _, _, out = comparison
    data = json.loads((out / "report.json").read_text())["overrides"]["data"]
    flags = ["--data", data, "--epochs", "1", "--img-size", "8", "--cache-size", "8", "--batch-size", "4"]
    models = ",".join(MODELS)
    assert cli.main(["compare", "--models", models, "--seeds", str(SEEDS), "--out", str(out), *flags]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model ") and "val acc (%)" in line)
    assert [line.split()[0] for line in lines[header + 1 : header + 3]] == MODELS
    assert "± is the sample standard deviation over seeds" in printed
