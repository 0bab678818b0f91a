"""attach_yolo: presets, errors, and attention that survives Ultralytics' training, checkpoints, reload and export.

Offline and CPU-sized: models come from the YAML files shipped with ultralytics, data are tiny generated sets,
Ultralytics' settings live in a temporary folder and nothing downloads (YOLO_OFFLINE, plots and AMP off).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attnlab.integrations.ultralytics import attach_yolo, onnx_max_error, yolo_points
from attnlab.retrofit import SCALE_PARAM, attached_paths, detach

TRAIN = dict(epochs=1, batch=4, workers=0, device="cpu", plots=False, amp=False, verbose=False, exist_ok=True)


@pytest.fixture(scope="module")
def YOLO(tmp_path_factory):
    """ultralytics.YOLO, imported with its settings in a temporary folder and offline."""
    config = tmp_path_factory.mktemp("ultralytics-config")
    saved = {k: os.environ.get(k) for k in ("YOLO_CONFIG_DIR", "YOLO_OFFLINE", "YOLO_AUTOINSTALL")}
    os.environ.update(YOLO_CONFIG_DIR=str(config), YOLO_OFFLINE="1", YOLO_AUTOINSTALL="false")
    # Importing ultralytics replaces PIL.Image.open process-wide (a HEIF patch that imports pi_heif on an unreadable
    # file); put PIL's own back afterwards so the other tests in this worker see plain PIL errors.
    pil_open = Image.open
    ultralytics = pytest.importorskip(
        "ultralytics", reason="ultralytics is not installed (optional extra: pip install 'attnlab[ultralytics]')"
    )
    yield ultralytics.YOLO
    Image.open = pil_open
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _image(rng: np.random.Generator, side: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def cls_data(tmp_path_factory) -> Path:
    """An ImageFolder with train/ and val/, two classes of four 32 px noise images each."""
    root = tmp_path_factory.mktemp("cls")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("a", "b"):
            for i in range(4):
                _image(rng, 32, root / split / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def det_data(tmp_path_factory) -> Path:
    """A YOLO-format detection set (images/, labels/, data.yaml): four 64 px images with one box each per split."""
    root = tmp_path_factory.mktemp("det")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(4):
            _image(rng, 64, root / "images" / split / f"{i}.png")
            label = root / "labels" / split / f"{i}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(f"{i % 2} 0.5 0.5 0.4 0.3\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: a\n  1: b\n")
    return root / "data.yaml"


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model.float().eval()(x)
    return out[0] if isinstance(out, (tuple, list)) else out


def test_presets_place_attention_where_they_say(YOLO):
    yolo = YOLO("yolov8n.yaml", verbose=False)
    model = yolo.model
    c2f = [f"model.{i}.cv2" for i in (2, 4, 6, 8, 12, 15, 18, 21)]
    assert yolo_points(model, "c2f") == c2f
    assert yolo_points(model, "backbone") == c2f[:4]
    assert yolo_points(model, "neck") == c2f[4:]
    assert yolo_points(model, "sppf") == ["model.8.cv2"]  # layer 8 (a C2f) feeds SPPF
    assert yolo_points(model, ["sppf", "neck", "model.0"]) == ["model.8.cv2", *c2f[4:], "model.0"]
    report = attach_yolo(yolo, "eca", where="neck")
    assert report.paths == attached_paths(yolo.model) == c2f[4:]
    assert report.report.max_abs_diff == 0  # identity at init
    assert "head 12 C2f" in str(report) and "4 modules" in str(report)
    yolo.model.fuse()  # what predict, val and export do: the BNs go, the attention on the Conv modules stays
    assert attached_paths(yolo.model) == c2f[4:]


def test_yolo11_blocks_are_c2f_family(YOLO):
    assert yolo_points(YOLO("yolo11n-cls.yaml", verbose=False).model, "c2f") == [f"model.{i}.cv2" for i in (2, 4, 6, 8)]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("c2", "Did you mean 'c2f'"),
        (["model.99.cv2"], "matches no module path"),
        ("sppf", "no SPPF layer"),
        ("neck", "no C2f-family block"),
        ([], "where must be a preset"),
        (["model.*.cv2.bn"], "attach after the Conv module instead, e.g. 'model.2.cv2'"),
    ],
)
def test_placements_that_match_nothing_are_errors(YOLO, where, message):
    yolo = YOLO("yolov8n-cls.yaml", verbose=False)
    with pytest.raises(ValueError, match=message):
        attach_yolo(yolo, "se", where=where)
    assert attached_paths(yolo.model) == []


def test_attach_yolo_takes_the_yolo_object_not_its_network(YOLO):
    with pytest.raises(ValueError, match="takes an ultralytics YOLO object"):
        attach_yolo(YOLO("yolov8n-cls.yaml", verbose=False).model, "eca")
    with pytest.raises(ValueError, match="multiple of 32"):
        attach_yolo(YOLO("yolov8n-cls.yaml", verbose=False), "eca", imgsz=48)


def _check_trained_run(YOLO, yolo, trainer, paths: list[str], x: torch.Tensor) -> None:
    """The trainer's model and EMA, the YOLO object after training and its reloaded checkpoints all hold the gates
    at ``paths``, the gates trained, and the checkpoints compute what the in-memory EMA computes."""
    assert attached_paths(trainer.model) == attached_paths(trainer.ema.ema) == attached_paths(yolo.model) == paths
    scales = [getattr(trainer.ema.ema.get_submodule(p), SCALE_PARAM) for p in paths]
    assert all(float(s) != 0 for s in scales)  # the blends moved off 0, so dropped gates would change outputs
    in_memory = _outputs(copy.deepcopy(trainer.ema.ema).half(), x)  # checkpoints store the EMA in float16
    for checkpoint in (trainer.last, trainer.best):
        reloaded = YOLO(str(checkpoint)).model
        assert attached_paths(reloaded) == paths
        torch.testing.assert_close(_outputs(reloaded, x), in_memory, rtol=0, atol=0)
    torch.testing.assert_close(_outputs(yolo.model, x), in_memory, rtol=0, atol=0)
    plain = copy.deepcopy(yolo.model)
    detach(plain)
    assert not torch.equal(_outputs(plain, x), in_memory)


@pytest.fixture(scope="module")
def trained_cls(YOLO, cls_data, tmp_path_factory):
    """A yolov8n-cls with ECA after every C2f block, trained one epoch: (the YOLO object, the attention paths)."""
    yolo = YOLO("yolov8n-cls.yaml", verbose=False)
    report = attach_yolo(yolo, "eca", where="c2f")
    yolo.train(data=str(cls_data), imgsz=32, project=str(tmp_path_factory.mktemp("runs")), name="cls", **TRAIN)
    return yolo, report.paths


def test_classifier_keeps_attention_through_training_checkpoints_and_reload(YOLO, trained_cls):
    yolo, paths = trained_cls
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    _check_trained_run(YOLO, yolo, yolo.trainer, paths, x)


def test_detector_keeps_attention_through_training_checkpoints_and_reload(YOLO, det_data, tmp_path):
    yolo = YOLO("yolov8n.yaml", verbose=False)
    report = attach_yolo(yolo, "se", where=["sppf", "neck"])
    yolo.train(data=str(det_data), imgsz=32, project=str(tmp_path), name="det", **TRAIN)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    _check_trained_run(YOLO, yolo, yolo.trainer, report.paths, x)


def test_trained_checkpoint_fine_tunes_with_its_attention_weights(YOLO, trained_cls, cls_data, tmp_path):
    yolo, _ = trained_cls
    reloaded = YOLO(str(yolo.trainer.best))
    with pytest.raises(ValueError, match="already carries attention"):
        attach_yolo(reloaded, "se", where="c2f")
    attach_yolo(reloaded, "eca", where="c2f")  # the same attention: kept, weights included
    attach_yolo(reloaded, "eca", where="c2f")  # again: its trainer callback replaces the first one
    carried = {k: v.clone() for k, v in reloaded.model.state_dict().items() if ".attention" in k}
    overrides = {**TRAIN, "model": str(yolo.trainer.best), "data": str(cls_data), "imgsz": 32}
    trainer = reloaded._smart_load("trainer")(
        overrides={**overrides, "project": str(tmp_path), "name": "tune"}, _callbacks=reloaded.callbacks
    )
    built = trainer.get_model(cfg=reloaded.model.yaml, weights=reloaded.model, verbose=False)
    assert attached_paths(built) == attached_paths(reloaded.model)
    torch.testing.assert_close({k: v for k, v in built.state_dict().items() if ".attention" in k}, carried)


def test_plain_pretrained_weights_load_with_only_the_attention_missing(YOLO, trained_cls, cls_data, tmp_path):
    """The trainer's network built from plain pretrained weights computes what they compute (identity at init)."""
    yolo, _ = trained_cls
    pretrained = YOLO(str(yolo.trainer.best))
    detach(pretrained.model)  # a plain yolov8n-cls with trained weights, as YOLO("yolov8n-cls.pt") would be
    plain = copy.deepcopy(pretrained.model)
    attach_yolo(pretrained, "se", where="backbone")
    overrides = {**TRAIN, "model": str(yolo.trainer.best), "data": str(cls_data), "imgsz": 32, "project": str(tmp_path)}
    trainer = pretrained._smart_load("trainer")(overrides=overrides, _callbacks=pretrained.callbacks)
    built = trainer.get_model(cfg=plain.yaml, weights=pretrained.model, verbose=False)
    missing = set(built.state_dict()) - set(plain.state_dict())
    assert missing and all(".attention." in k or k.endswith(".attention_scale") for k in missing)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_outputs(built, x), _outputs(plain, x), rtol=0, atol=0)


def test_onnx_export_of_a_trained_checkpoint_holds_the_gates_and_matches_pytorch(YOLO, trained_cls):
    """What ``yolo export model=best.pt format=onnx`` does, checked against the reloaded PyTorch model."""
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (optional extra: pip install 'attnlab[onnx]')")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install 'attnlab[onnx]'")
    yolo, paths = trained_cls
    reloaded = YOLO(str(yolo.trainer.best))
    path = reloaded.export(format="onnx", imgsz=32, simplify=False, dynamic=False)
    ops = [node.op_type for node in onnx.load(path).graph.node]
    assert ops.count("Sub") == len(paths)  # one blend, x + s * (gate(x) - x), per attention; plain YOLO has no Sub
    max_abs, max_rel = onnx_max_error(path, reloaded, imgsz=32, batch=1)
    assert max_abs < 1e-5 and max_rel < 1e-4


def test_checkpoint_without_attnlab_installed_names_attnlab(YOLO, trained_cls):
    """What a user without attnlab sees (as the module docstring says)."""
    yolo, _ = trained_cls
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class NoAttnlab(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "attnlab":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, NoAttnlab())
        from ultralytics import YOLO
        YOLO(sys.argv[1])
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(yolo.trainer.best)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode != 0
    assert "appears to require 'attnlab'" in done.stdout + done.stderr
    assert "ModuleNotFoundError: No module named 'attnlab'" in done.stderr
