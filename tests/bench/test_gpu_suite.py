"""benchmarks/gpu_suite.py: its dry run (the whole control flow, tiny, on the CPU) and how it stops training runs at
an epoch boundary so that they resume."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnlab.bench.compare import WALL_TIME_FILE
from attnlab.engine.config import config_from_run

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_suite.py"


@pytest.fixture(scope="module")
def gpu_suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_suite"]


def child_env():
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_dry_run_runs_every_phase_and_reports_them(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--work", str(tmp_path)],
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    readme = (tmp_path / "results" / "README.md").read_text()
    phases = ["smoke", "bench-eager", "flowers17", "bench-compiled", "cifar10-alexnet", "cifar10-epsanet"]
    table = readme[readme.index("## Phases") : readme.index("## ", readme.index("## Phases") + 1)]
    rows = [line.split("|")[1:3] for line in table.splitlines()[4:] if line.startswith("| ")]
    statuses = {name.strip(): status.strip() for name, status in rows}
    assert [statuses.get(phase) for phase in phases] == ["passed"] + ["done"] * 5, readme
    assert "sync check: CUDA only" in readme
    for phase in ("flowers17", "cifar10-alexnet", "cifar10-epsanet"):
        assert (tmp_path / "results" / phase / "report.md").is_file()
        for run in (tmp_path / phase / "runs").iterdir():
            assert json.loads((run / WALL_TIME_FILE).read_text())["wall_seconds"] > 0
    assert (tmp_path / "results" / "bench_eager.md").is_file() and (tmp_path / "results" / "environment.txt").is_file()


def test_a_failing_command_stops_the_smoke_test_with_its_log(gpu_suite, tmp_path, monkeypatch):
    monkeypatch.setitem(gpu_suite.COMMANDS, "train", gpu_suite.COMMANDS["train"] + " --no-such-flag")
    suite = gpu_suite.Suite(gpu_suite.parse_args(["--dry-run", "--work", str(tmp_path)]), gpu_suite.DRY)
    suite.logs.mkdir(parents=True)
    assert suite.smoke() is False
    assert [(r.name, r.code) for r in suite.records] == [("train", 2)]  # nothing ran after it
    readme = (tmp_path / "results" / "README.md").read_text()
    assert "| smoke | FAILED |" in readme and "unrecognized arguments: --no-such-flag" in readme


def test_a_run_stopped_at_the_deadline_ends_after_a_whole_epoch_and_resumes(gpu_suite, tmp_path):
    run = tmp_path / "run"
    overrides = {"data": "digits", "img_size": 8, "batch_size": 64, "epochs": 3, "device": "cpu"}
    argv = gpu_suite.command("train-run", recipe="fast", model="resnet20", seed=0, run=run)
    job = gpu_suite.Job("resnet20", 0, run, argv + gpu_suite.flags(overrides), epochs=3)
    job.start(child_env(), tmp_path / "stopped.log")
    while not job.poll(time.monotonic(), deadline=0.0, grace_s=float("inf")):  # the deadline has passed
        time.sleep(0.01)
    log = (tmp_path / "stopped.log").read_text()
    assert job.code == 130 and job.status.startswith("stopped after epoch"), log
    assert 1 <= job.epochs_done < 3  # stopped at the first epoch boundary it saw, not killed before one
    assert "continue with: attnlab train --resume" in log

    resumed = gpu_suite.Job("resnet20", 0, run, gpu_suite.command("train-resume", run=run), epochs=3)
    resumed.start(child_env(), tmp_path / "resumed.log")
    while not resumed.poll(time.monotonic(), deadline=float("inf"), grace_s=0.0):
        time.sleep(0.05)
    assert resumed.status == "done", (tmp_path / "resumed.log").read_text()
    assert [row["epoch"] for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3]
    assert config_from_run(run).epochs == 3


def test_flags_spell_every_kind_of_override(gpu_suite):
    overrides = {"img_size": 16, "channels_last": True, "hflip": False, "milestones": [8, 16], "attention_kwargs": {}}
    assert gpu_suite.flags(overrides) == [
        "--img-size", "16", "--channels-last", "--no-hflip", "--milestones", "8", "16", "--attention-kwargs", "{}"
    ]  # fmt: skip
