"""Run folders: safe default names, no silent overwrite, one writer, provenance."""

import json
import os
import signal
import subprocess
import sys

import pytest
from engine_helpers import TINY

from attnlab.engine import config_from_run, load_weights, resolve_config, train
from attnlab.engine.rundir import RunLock, default_run_dir, run_name, safe_component


def test_default_names_are_one_safe_component_and_say_what_differs():
    attached = resolve_config("fast", model="torchvision:resnet18", attach="eca")
    assert run_name(attached) == "torchvision-resnet18-attach-eca-fast-s0"
    assert run_name(resolve_config("fast", model="torchvision:resnet18", attach="se")) != run_name(attached)
    assert safe_component("../../escaped") == "..-..-escaped" and "/" not in safe_component("a/b:c")
    assert safe_component("..") == "run" and safe_component("") == "run"


def test_default_names_never_reuse_a_folder_holding_a_run(tmp_path):
    config = resolve_config("fast", model="resnet20")
    first = default_run_dir(config, tmp_path)
    first.mkdir()
    (first / "config.yaml").write_text("model: resnet20\n")
    second = default_run_dir(config, tmp_path)
    assert second.name == first.name + "-2"


def test_a_run_folder_is_never_overwritten_silently(tmp_path):
    run = tmp_path / "run"
    train(resolve_config("fast", model="resnet20", epochs=1, out=str(run), **TINY))
    before = (run / "last.safetensors").read_bytes()
    with pytest.raises(ValueError, match="already holds a run.*--resume.*--overwrite"):
        train(resolve_config("fast", model="resnet20", epochs=1, seed=1, out=str(run), **TINY))
    assert (run / "last.safetensors").read_bytes() == before
    (run / "notes.txt").write_text("mine")
    train(resolve_config("fast", model="resnet20", epochs=1, seed=1, out=str(run), **TINY), overwrite=True)
    assert load_weights(run / "last.safetensors")[1]["config"]["seed"] == 1
    assert (run / "notes.txt").read_text() == "mine"  # --overwrite deletes run files only


def test_one_writer_per_folder_and_a_killed_holder_frees_it(tmp_path):
    with RunLock(tmp_path), pytest.raises(ValueError, match=f"another attnlab process \\(PID {os.getpid()}\\)"):
        RunLock(tmp_path).__enter__()
    holder = "import sys, os, signal; from attnlab.engine.rundir import RunLock; RunLock(sys.argv[1]).__enter__(); "
    holder += "os.kill(os.getpid(), signal.SIGKILL)"
    result = subprocess.run(
        [sys.executable, "-c", holder, str(tmp_path)], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    assert result.returncode == -signal.SIGKILL
    with RunLock(tmp_path):  # the OS released the killed process's lock
        pass


def test_a_failed_start_leaves_no_folder(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="no train/ folder"):
        train(resolve_config("fast", model="resnet20", data=str(tmp_path), out=str(out), **TINY))
    assert not out.exists()


def test_a_run_stopped_before_its_first_epoch_resumes_from_the_start(tmp_path, monkeypatch):
    run = tmp_path / "run"
    config = resolve_config("fast", model="resnet20", epochs=1, out=str(run), **TINY)

    def stop(self, epoch):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("attnlab.engine.trainer.Trainer.train_epoch", stop)
        with pytest.raises(KeyboardInterrupt):
            train(config)
    assert (run / "config.yaml").is_file() and not (run / "resume.safetensors").exists()
    metrics = train(config_from_run(run), resume=True)
    assert metrics["epoch"] == 1


def test_provenance_records_each_session(tmp_path):
    run = tmp_path / "run"
    train(resolve_config("fast", model="resnet20", epochs=1, out=str(run), **TINY))
    train(config_from_run(run, epochs=2), resume=True)
    sessions = json.loads((run / "provenance.json").read_text())["sessions"]
    assert len(sessions) == 2 and all(s["finished"] for s in sessions)
    for key in ("attnlab", "torch", "torchvision", "git_commit", "command", "device", "hardware", "started"):
        assert key in sessions[0]
    assert sessions[0]["device"] == "cpu" and sessions[0]["torch"]
