import json
from pathlib import Path

import pytest

from attnlab.analysis.kernel_sweep import (
    plot_kernel_sweep,
    resolved_kernel_sizes,
    run_kernel_sweep,
    summarize,
    sweep_markdown,
    sweep_runs,
)
from attnlab.engine.config import resolve_config


def base_config(**overrides):
    return resolve_config("fast", **{"model": "eca_resnet20", "epochs": 2, **overrides})


class FakeTrain:
    """Writes two epochs of metrics with an accuracy that encodes (k, seed); records how it was called."""

    def __init__(self):
        self.calls = []

    def __call__(self, config, resume=False):
        self.calls.append((Path(config.out).name, resume))
        k = config.attention_kwargs.get("k_size", 0)
        rows = [{"epoch": e, "val_acc": (k + config.seed) / 100 + e / 1000} for e in range(1, config.epochs + 1)]
        Path(config.out).mkdir(parents=True, exist_ok=True)
        (Path(config.out) / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_resolved_kernel_sizes():
    assert resolved_kernel_sizes(base_config()) == [3] * 9  # psi(16) = psi(32) = psi(64) = 3
    assert resolved_kernel_sizes(base_config(attention_kwargs={"k_size": 7})) == [7] * 9
    with pytest.raises(ValueError, match="no ECA modules"):
        resolved_kernel_sizes(base_config(model="se_resnet20"))


def test_runs_cover_every_k_and_seed(tmp_path):
    runs = sweep_runs(base_config(attention_kwargs={"gamma": 2}), [3, 5], [0, 1], tmp_path)
    assert [Path(r.run_dir).name for r, _ in runs] == ["k3-s0", "k3-s1", "k5-s0", "k5-s1", "adaptive-s0", "adaptive-s1"]
    assert [c.attention_kwargs for _, c in runs][::2] == [{"gamma": 2, "k_size": 3}, {"gamma": 2, "k_size": 5}, {"gamma": 2}]
    assert [c.seed for _, c in runs] == [0, 1] * 3
    with pytest.raises(ValueError, match="k_size must be an odd integer"):
        sweep_runs(base_config(), [4], [0], tmp_path)


def test_sweep_skips_finished_and_resumes_started_runs(tmp_path):
    fake = FakeTrain()
    runs = run_kernel_sweep(base_config(), [3, 5], [0, 1], tmp_path, train=fake)
    assert len(fake.calls) == 6 and not any(resume for _, resume in fake.calls)
    assert [r.val_acc for r in runs] == pytest.approx([0.032, 0.042, 0.052, 0.062, 0.002, 0.012])
    assert runs[0].best_val_acc == pytest.approx(0.032)
    # an interrupted run: one epoch written and a training state saved
    (tmp_path / "k5-s1" / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_acc": 0.5}) + "\n")
    (tmp_path / "k5-s1" / "resume.safetensors").write_bytes(b"")
    fake.calls.clear()
    run_kernel_sweep(base_config(), [3, 5], [0, 1], tmp_path, train=fake)
    assert fake.calls == [("k5-s1", True)]

    rows = summarize(runs)
    assert [r["setting"] for r in rows] == ["k=3", "k=5", "adaptive"]
    assert rows[0]["val_acc_mean"] == pytest.approx(0.037)
    assert rows[0]["val_acc_std"] == pytest.approx(0.01 / 2**0.5)  # sample std of two values 0.01 apart
    table = sweep_markdown(rows, [3] * 9)
    assert "| adaptive (k = 3) | 2 | 0.70 +- 0.71 | 0.20, 1.20 |" in table
    assert plot_kernel_sweep(rows, [3] * 9, tmp_path / "sweep.png").stat().st_size > 0
