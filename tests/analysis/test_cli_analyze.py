"""End to end through ``attnlab train`` and ``attnlab analyze`` on a tiny generated ImageFolder."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attnlab.attention import attention_stages
from attnlab.cli import main
from attnlab.engine.inference import load_model

CLASSES = ["circle", "cross", "square"]
TINY = [
    "--recipe",
    "fast",
    "--epochs",
    "1",
    "--img-size",
    "8",
    "--cache-size",
    "8",
    "--batch-size",
    "6",
    "--device",
    "cpu",
    "--amp",
    "off",
]


def write_image_folder(root: Path, per_class: int) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8)
                pixels[2:6, 2:6, k] = 255  # a class-coloured square
                Image.fromarray(pixels).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("analyze")
    write_image_folder(root / "data", per_class=2)
    run = root / "run"
    assert main(["train", "--model", "se_resnet20", "--data", str(root / "data"), "--out", str(run), *TINY]) == 0
    return root / "data", run


def test_activations_cli(trained, capsys):
    data, run = trained
    args = [
        "analyze",
        "activations",
        str(run),
        "--data",
        str(data),
        "--classes",
        "cross,square",
        "--images-per-class",
        "1",
        "--channels",
        "4",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    rows = list(csv.DictReader((run / "analysis" / "activations.csv").read_text().splitlines()))
    assert len(rows) == 3 * 4 * 3  # last block of 3 stages x 4 channels x (2 classes + all)
    assert all(0 <= float(r["mean"]) <= 1 for r in rows)
    assert {r["images"] for r in rows if r["class"] == "all"} == {"3"}
    report = json.loads((run / "analysis" / "activations.json").read_text())
    assert [b["block"] for b in report["blocks"]] == ["layer1.2.attention", "layer2.2.attention", "layer3.2.attention"]
    assert "saturation" in capsys.readouterr().out
    assert main([*args[:-2], "--classes", "triangle", "--overwrite"]) == 2
    assert "unknown classes ['triangle']" in capsys.readouterr().err


def test_ablate_cli(trained, tmp_path):
    data, run = trained
    assert (
        main(
            [
                "analyze",
                "ablate",
                str(run),
                "--data",
                str(data),
                "--out",
                str(tmp_path),
                "--device",
                "cpu",
                "--modes",
                "identity",
            ]
        )
        == 0
    )
    rows = json.loads((tmp_path / "ablation.json").read_text())
    settings = [(r["switched_off"], r["mode"]) for r in rows]
    assert settings == [("none", "-")] + [(s, "identity") for s in ("stage 1", "stage 2", "stage 3", "all")]
    assert (tmp_path / "ablation.md").read_text().count("| stage ") == 3


def test_cam_cli(trained, tmp_path, capsys):
    data, run = trained
    images = [str(data / "test" / name / "0.png") for name in CLASSES[:2]]
    args = ["analyze", "cam", str(run), *images, "--compare", str(run), "--out", str(tmp_path), "--device", "cpu"]
    assert main(args) == 0
    assert capsys.readouterr().out.count(": gradcam of target layer layer3\n") == 2  # both runs
    assert (tmp_path / "cam.png").stat().st_size > 0
    assert main([*args, "--method", "layercam", "--target", "gate", "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert printed.count(": layercam of target layer layer3.2.attention\n") == 2
    model, _ = load_model(run)
    assert attention_stages(model)["layer3.2.attention"] == 3


def test_cam_cli_without_grad_cam(trained, tmp_path, capsys, monkeypatch):
    data, run = trained
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # import fails
    image = str(data / "test" / "circle" / "0.png")
    assert main(["analyze", "cam", str(run), image, "--out", str(tmp_path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'attnlab[cam]'" in err


def test_kernel_sweep_cli(trained, tmp_path, capsys):
    data, _ = trained
    args = [
        "analyze",
        "kernel-sweep",
        "--model",
        "eca_resnet20",
        "--data",
        str(data),
        "--k",
        "3,5",
        "--seeds",
        "1",
        "--out",
        str(tmp_path),
        *TINY,
    ]
    assert main(args) == 0
    report = json.loads((tmp_path / "kernel_sweep.json").read_text())
    assert [(s["setting"], s["k"]) for s in report["settings"]] == [("adaptive", None), ("k3", 3), ("k5", 5)]
    assert report["adaptive_k"] == [3] * 9
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["adaptive-s0", "k3-s0", "k5-s0"]
    assert (tmp_path / "kernel_sweep.png").stat().st_size > 0 and (tmp_path / "report.md").is_file()
    capsys.readouterr()
    assert main(args) == 0  # finished runs are skipped
    assert capsys.readouterr().out.count(": finished, skipping") == 3


def test_analyses_work_on_attach_runs(trained, tmp_path):
    """Stages come from the tags attach leaves on its modules, so runs trained with --attach are analysable."""
    data, _ = trained
    run = tmp_path / "attached"
    assert main(["train", "--model", "resnet20", "--attach", "eca", "--data", str(data), "--out", str(run), *TINY]) == 0
    common = ["--data", str(data), "--device", "cpu"]
    assert main(["analyze", "ablate", str(run), *common, "--out", str(tmp_path / "ablate"), "--modes", "identity"]) == 0
    rows = json.loads((tmp_path / "ablate" / "ablation.json").read_text())
    assert [r["blocks"] for r in rows] == [0, 3, 3, 3, 9]  # none, stages 1-3 of three blocks each, all
    assert main(["analyze", "activations", str(run), *common, "--images-per-class", "1", "--channels", "4"]) == 0
    report = json.loads((run / "analysis" / "activations.json").read_text())
    assert [b["block"] for b in report["blocks"]] == [f"layer{s}.2.bn2.attention" for s in (1, 2, 3)]
    assert [b["stage"] for b in report["blocks"]] == [1, 2, 3]
    image = str(data / "test" / "circle" / "0.png")
    assert main(["analyze", "cam", str(run), image, "--out", str(tmp_path / "cam"), "--device", "cpu"]) == 0


def test_ablate_without_data_names_the_run_data_it_used(trained, tmp_path, capsys):
    data, run = trained
    common = ["--out", str(tmp_path), "--device", "cpu", "--modes", "identity"]
    assert main(["analyze", "ablate", str(run), *common]) == 0
    title = capsys.readouterr().out.splitlines()[0]
    assert "None" not in title and f"on {data / 'test'}" in title
