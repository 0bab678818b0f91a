"""Fault injection: a run that fails at any file write of an epoch commit (an exception, or kill -9 in a
subprocess) and is then resumed ends exactly as an uninterrupted run: the same last and best weights, and one
metrics row per epoch.

Every file attnlab writes goes through ``os.replace`` (atomic writes), so counting its calls enumerates the
commit points; the failure is injected at each of them in turn.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attnlab.engine import config_from_run, load_weights, resolve_config, train

EPOCHS = 3
SETTINGS = {
    "model": "resnet20",
    "epochs": EPOCHS,
    "img_size": 8,
    "cache_size": 8,
    "batch_size": 6,
    "device": "cpu",
    "amp": "off",
    "deterministic": True,
}
KILL_SCRIPT = """
import json, os, signal, sys
import torch
from attnlab.engine import resolve_config, train
kill_at, settings = int(sys.argv[1]), json.loads(sys.argv[2])
torch.set_num_threads(int(sys.argv[3]))  # the test process's: float sums depend on the thread count
calls, real_replace = [0], os.replace
def replace(src, dst):
    calls[0] += 1
    if calls[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst)
os.replace = replace
train(resolve_config("fast", **settings))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crash-data")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k in range(3):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = rng.integers(0, 80, (8, 8, 3), dtype=np.uint8)
                pixels[2:6, 2:6, k] = 255
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> tuple[Path, list[str]]:
    """An uninterrupted run, and the file names of its atomic writes in order."""
    out = tmp_path_factory.mktemp("crash-reference") / "run"
    writes = []
    real_replace = os.replace

    def recording(src, dst):
        writes.append(Path(dst).name)
        return real_replace(src, dst)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", recording)
        train(resolve_config("fast", data=str(data), out=str(out), **SETTINGS))
    return out, writes


def commit_writes(writes: list[str]) -> list[int]:
    """1-based indices of the writes that commit epochs: from the first epoch's resume state to the last metrics."""
    first = writes.index("resume.safetensors")
    last = len(writes) - 1 - writes[::-1].index("metrics.jsonl")
    return list(range(first + 1, last + 2))


def assert_same_run(run: Path, reference: Path) -> None:
    for name in ("last.safetensors", "best.safetensors"):
        got, got_meta = load_weights(run / name)
        want, want_meta = load_weights(reference / name)
        assert got_meta["epoch"] == want_meta["epoch"], name
        assert got.keys() == want.keys() and all(got[k].equal(want[k]) for k in want), name
    rows = (run / "metrics.csv").read_text().splitlines()
    want_rows = (reference / "metrics.csv").read_text().splitlines()
    assert len(rows) == len(want_rows) == EPOCHS + 1  # the header and one row per epoch
    columns = want_rows[0].split(",")
    stable = [columns.index(c) for c in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")]
    assert [[r.split(",")[i] for i in stable] for r in rows] == [[r.split(",")[i] for i in stable] for r in want_rows]
    assert not list(run.glob(".*.tmp"))


def test_the_reference_run_commits_every_epoch(reference):
    _, writes = reference
    assert writes.count("resume.safetensors") == EPOCHS
    assert writes.count("metrics.csv") == EPOCHS
    # the resume state is the commit: each epoch's other files come after it
    first = writes.index("resume.safetensors")
    assert "last.safetensors" not in writes[:first] and "metrics.csv" not in writes[:first]


def test_an_exception_at_any_commit_write_resumes_to_the_same_run(data, reference, tmp_path):
    ref_dir, writes = reference
    for fail_at in commit_writes(writes):
        run = tmp_path / f"fail{fail_at}"
        calls, real_replace = [0], os.replace

        def failing(src, dst, calls=calls, fail_at=fail_at, real_replace=real_replace):
            calls[0] += 1
            if calls[0] == fail_at:
                raise OSError(28, "No space left on device", str(dst))
            return real_replace(src, dst)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(os, "replace", failing)
            with pytest.raises(OSError, match="No space left"):
                train(resolve_config("fast", data=str(data), out=str(run), **SETTINGS))
        train(config_from_run(run), resume=True)
        assert_same_run(run, ref_dir)


def test_kill_9_at_commit_writes_resumes_to_the_same_run(data, reference, tmp_path):
    ref_dir, writes = reference
    indices = commit_writes(writes)
    # the second epoch's commit, write by write: the resume state, then each file made from it
    second = [i for i in indices if i > writes.index("resume.safetensors") + 1][: len(indices) // EPOCHS + 1]
    settings = json.dumps({**SETTINGS, "data": str(data)})
    for kill_at in second:
        run = tmp_path / f"kill{kill_at}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        run_settings = json.dumps({**json.loads(settings), "out": str(run)})
        script = [sys.executable, "-c", KILL_SCRIPT, str(kill_at), run_settings, str(torch.get_num_threads())]
        result = subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
        train(config_from_run(run), resume=True)  # the killed process's lock is gone with it
        assert_same_run(run, ref_dir)
