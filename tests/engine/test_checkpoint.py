import json
import os

import pytest
import torch
from safetensors.torch import load_file

from attnlab.engine.checkpoint import atomic_write, load_state, load_weights, save_state, save_weights


def test_weights_round_trip_with_metadata(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    meta = {"model": "tiny", "attention_layers": [{"path": "a", "k_size": 3}], "epoch": 2}
    path = save_weights(tmp_path / "best.safetensors", model.state_dict(), meta)
    state, loaded_meta = load_weights(path)
    assert loaded_meta == meta
    assert json.loads(path.with_suffix(".json").read_text()) == meta
    for key, value in model.state_dict().items():
        torch.testing.assert_close(state[key], value)
    assert set(load_file(path)) == set(model.state_dict())  # a plain safetensors state dict for other tools


def test_training_state_round_trip_without_pickle(tmp_path):
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": [{"x": 1.5}],
        "none": None,
        "best": float("-inf"),
    }
    path = save_state(tmp_path / "resume.safetensors", state, {"epoch": 3})
    loaded, meta = load_state(path)
    assert meta == {"epoch": 3}
    assert loaded["history"] == [{"x": 1.5}] and loaded["none"] is None and loaded["best"] == float("-inf")
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.99)
    assert list(loaded["optimizer"]["state"]) == [0, 1]  # integer keys survive
    fresh = torch.optim.Adam(torch.nn.Linear(4, 3).parameters(), lr=1e-3)
    fresh.load_state_dict(loaded["optimizer"])
    torch.testing.assert_close(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    with open(path, "rb") as f:
        assert b"pickle" not in f.read(200) and path.suffix == ".safetensors"


def test_state_refuses_objects_that_need_pickle(tmp_path):
    with pytest.raises(TypeError, match="cannot store set"):
        save_state(tmp_path / "s.safetensors", {"bad": {1, 2}}, {})


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "last.safetensors"
    target.write_text("old")

    def broken(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise KeyboardInterrupt  # e.g. interrupted mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["last.safetensors"]  # no temp file left behind


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_weights(tmp_path / "nope.safetensors")
    save_weights(tmp_path / "w.safetensors", {"a": torch.zeros(1)}, {})
    with pytest.raises(ValueError, match="not an attnlab training state"):
        load_state(tmp_path / "w.safetensors")


@pytest.mark.parametrize("load", [load_weights, load_state])
def test_truncated_or_foreign_file_names_the_problem(tmp_path, load):
    path = save_weights(tmp_path / "w.safetensors", {"a": torch.zeros(1000)}, {})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"cannot read .*w\.safetensors.*truncated, or not a safetensors file"):
        load(path)
    path.write_bytes(b"PK\x03\x04 a zip file, say")
    with pytest.raises(ValueError, match="cannot read"):
        load(path)
