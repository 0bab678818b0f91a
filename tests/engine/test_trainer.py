import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from engine_helpers import TINY

from attnlab import cli
from attnlab.engine.checkpoint import load_state, load_weights
from attnlab.engine.config import config_from_run, resolve_config
from attnlab.engine.inference import load_model
from attnlab.engine.trainer import Trainer, TrainingDiverged, train

RESUME_FLAGS = {"epochs": 3, "deterministic": True, "ema": 0.9, "mixup": 0.2}  # EMA and mixup state must resume too
COMPARED = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr"]


def metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{key: row[key] for key in COMPARED} for row in rows]


def assert_same_weights(run_a: Path, run_b: Path) -> None:
    (weights_a, _), (weights_b, _) = load_weights(run_a / "last.safetensors"), load_weights(run_b / "last.safetensors")
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """ResNet-20 trained for 4 epochs on 8x8 digits."""
    out = tmp_path_factory.mktemp("digits") / "run"
    train(resolve_config("fast", **TINY, epochs=4, out=str(out)))
    return out


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    train(resolve_config("fast", **TINY, **RESUME_FLAGS, out=str(out)))
    return out


def test_digits_end_to_end_above_90_percent(digits_run):
    rows = metrics(digits_run)
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert max(row["val_acc"] for row in rows) > 0.9
    assert all(row["val_loss"] < 3 * rows[0]["val_loss"] for row in rows[2:])  # the default recipe does not diverge
    files = {p.name for p in digits_run.iterdir()}
    assert {
        "config.yaml",
        "classes.json",
        "metrics.csv",
        "metrics.jsonl",
        "best.safetensors",
        "best.json",
        "last.safetensors",
        "last.json",
        "resume.safetensors",
        "curves.png",
        "confusion.png",
        "predictions.png",
    } <= files
    assert not [name for name in files if name.endswith(".tmp")]
    csv = (digits_run / "metrics.csv").read_text().splitlines()
    assert csv[0].startswith("epoch,train_loss,train_acc,val_loss,val_acc") and len(csv) == 5
    config = yaml.safe_load((digits_run / "config.yaml").read_text())
    assert (config["recipe"], config["img_size"], config["epochs"]) == ("fast", 8, 4)
    assert json.loads((digits_run / "classes.json").read_text()) == {str(d): d for d in range(10)}
    best = json.loads((digits_run / "best.json").read_text())
    assert best["metrics"]["val_acc"] == max(row["val_acc"] for row in rows)
    assert best["preprocess"]["hflip"] is False  # digits are not mirror-invariant


def test_resume_after_an_interruption_matches_the_uninterrupted_run(reference_run, tiny_config, monkeypatch):
    config = tiny_config(**RESUME_FLAGS)
    calls = 0
    original_step = Trainer.train_step

    def interrupted_step(self, images, labels):
        nonlocal calls
        calls += 1
        if calls == 30:  # epoch 2 has steps 23..44
            raise KeyboardInterrupt
        return original_step(self, images, labels)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    monkeypatch.undo()
    run_dir = Path(config.out)
    assert [row["epoch"] for row in metrics(run_dir)] == [1]
    train(config_from_run(run_dir), resume=True)
    assert metrics(run_dir) == metrics(reference_run)
    assert_same_weights(run_dir, reference_run)


def test_kill_9_mid_epoch_then_resume_matches_the_uninterrupted_run(reference_run, tmp_path):
    out = tmp_path / "killed"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**TINY, **RESUME_FLAGS}.items() if k != "deterministic"]
    command = [sys.executable, "-m", "attnlab.cli", "train", *flags, "--deterministic", f"--out={out}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read().decode()}"
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(metrics(out))
    assert 1 <= finished < 3  # killed inside epoch 2 or 3
    assert load_weights(out / "last.safetensors")[1]["epoch"] == finished  # the checkpoints are whole
    assert load_state(out / "resume.safetensors")[1]["epoch"] == finished
    assert cli.main(["train", "--resume", str(out)]) == 0
    assert metrics(out) == metrics(reference_run)
    assert_same_weights(out, reference_run)


def test_warmup_spans_epochs_in_optimizer_steps(tiny_config):
    trainer = Trainer(tiny_config(epochs=3, warmup_steps=30))  # 1438 digits in batches of 64: 22 steps per epoch
    steps, peak = len(trainer.train_batches), trainer.config.lr
    lrs = []
    for _ in range(3 * steps):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert steps == 22 and lrs[:30] == pytest.approx([peak * (s + 1) / 30 for s in range(30)])
    assert lrs[29] == pytest.approx(peak) == max(lrs) and lrs[steps] < peak  # warm-up goes on past epoch 1
    assert lrs[30:] == sorted(lrs[30:], reverse=True) and lrs[-1] == pytest.approx(peak / 36)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_config):
    trainer = Trainer(tiny_config(epochs=3))
    clean_epoch = trainer.train_batches.epoch

    def poisoned_epoch(epoch):
        for step, (images, labels) in enumerate(clean_epoch(epoch)):
            yield (images * math.nan if (epoch, step) == (1, 3) else images), labels

    trainer.train_batches.epoch = poisoned_epoch
    with pytest.raises(
        TrainingDiverged,
        match=r"loss became nan in epoch 2; training stopped. The checkpoints of "
        r"the last finished epoch \(1\) are in .*run",
    ):
        trainer.fit()
    weights, metadata = load_weights(trainer.run_dir / "last.safetensors")
    assert metadata["epoch"] == 1 and all(torch.isfinite(w).all() for w in weights.values())
    assert len(metrics(trainer.run_dir)) == 1


def test_cli_reports_divergence_with_exit_code_1(monkeypatch, capsys, tmp_path):
    def diverging(config, **kwargs):
        raise TrainingDiverged("the training loss became inf in epoch 1")

    monkeypatch.setattr("attnlab.cli.train", diverging)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--out", str(tmp_path)])
    assert exit_info.value.code == 1 and "loss became inf" in capsys.readouterr().err


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA-Net (Wang et al., CVPR 2020), Eq. 12: k = |log2(C) / gamma + b / gamma|_odd."""
    k = int(abs(math.log2(channels) / gamma + b / gamma))
    return k if k % 2 else k + 1


def test_checkpoints_round_trip_without_pickle(tiny_config, monkeypatch):
    trainer = Trainer(tiny_config(model="eca_resnet20", epochs=1))
    trainer.fit()
    layers = json.loads((trainer.run_dir / "last.json").read_text())["attention_layers"]
    assert len(layers) == 9 and all(layer["k_size"] == eca_kernel_size(layer["channels"]) for layer in layers)

    def forbidden(*args, **kwargs):
        raise AssertionError("checkpoint loading used pickle")

    for target in ("pickle.load", "pickle.loads", "pickle.Unpickler", "torch.load"):
        monkeypatch.setattr(target, forbidden)
    model, metadata = load_model(trainer.run_dir)
    state, _ = load_state(trainer.run_dir / "resume.safetensors")
    monkeypatch.undo()
    images, _ = next(trainer.val_batches.epoch(0))
    with torch.no_grad():
        torch.testing.assert_close(model(images), trainer.eval_model.eval()(images), rtol=0, atol=0)
    assert metadata["classes"] == trainer.classes and state["history"] == trainer.history


def test_eval_command_reproduces_the_best_val_accuracy(digits_run, capsys):
    assert cli.main(["eval", str(digits_run), "--data", "digits"]) == 0
    report = json.loads((digits_run / "eval.json").read_text())
    best = json.loads((digits_run / "best.json").read_text())
    assert report["top1"] == pytest.approx(best["metrics"]["val_acc"], abs=1e-12)
    assert report["images"] == 359 and sum(map(sum, report["confusion_matrix"])) == 359
    assert set(report["per_class_accuracy"]) == {str(d) for d in range(10)} and report["images_per_s"] > 0
    assert "top-1" in capsys.readouterr().out and (digits_run / "eval_confusion.png").stat().st_size > 0
    assert cli.main(["eval", str(digits_run / "last.safetensors"), "--overwrite"]) == 0  # the run's own validation data
    last = json.loads((digits_run / "eval.json").read_text())
    assert last["data"] == "digits:val" and last["top1"] == pytest.approx(metrics(digits_run)[-1]["val_acc"], abs=1e-12)


def test_eval_refuses_data_with_other_classes(digits_run, tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        (tmp_path / "other" / split / "a").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "other" / split / "a" / "x.png")
    with pytest.raises(ValueError, match=r"classes \['a'\] differ from the checkpoint's \['0', '1'"):
        cli.cmd_eval(
            cli.build_parser().parse_args(
                ["eval", str(digits_run), "--data", str(tmp_path / "other"), "--out", str(tmp_path)]
            )
        )


def test_predict_command_names_the_top_classes(digits_run, tmp_path, capsys):
    from PIL import Image

    from attnlab.data import Preprocess, load_splits

    model, metadata = load_model(digits_run)
    images = load_splits("digits", size=TINY["img_size"]).val.cache[0]
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"digit{i}.png"))
        Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(paths[-1])
    assert cli.main(["predict", str(digits_run), *paths, "--topk", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    with torch.no_grad():
        expected = model(Preprocess.from_dict(metadata["preprocess"]).eval(images[:3])).argmax(1)
    for line, path, top1 in zip(lines, paths, expected.tolist()):
        name, *_ = line.removeprefix(path + ":").split()
        assert line.startswith(path) and name == metadata["classes"][top1] and len(line.split()) == 7


def test_train_on_explicit_train_and_val_trees(tiny_config, tmp_path):
    from PIL import Image

    for split, count in (("train", 6), ("val", 3)):
        for name, color in (("red", (250, 0, 0)), ("blue", (0, 0, 250))):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (10, 10), color).save(tmp_path / split / name / f"{i}.png")
    config = tiny_config(train=str(tmp_path / "train"), val=str(tmp_path / "val"), epochs=1, batch_size=4)
    assert config.data == "digits"  # the default, replaced by the trees
    row = train(config)
    assert row["epoch"] == 1 and 0 <= row["val_acc"] <= 1
    assert json.loads((Path(config.out) / "classes.json").read_text()) == {"blue": 0, "red": 1}
