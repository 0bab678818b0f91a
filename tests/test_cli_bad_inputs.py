"""Every bad input ends with exit code 2 and one message that names the problem and the fix, never a traceback.

Each case runs the real CLI entry point (``attnlab.cli.main``) and checks the exit code, that no "Traceback" is
printed, and a key phrase of the expected message.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from attnlab.cli import main

TINY = ["--epochs", "1", "--img-size", "8", "--cache-size", "8", "--batch-size", "4", "--device", "cpu"]
TINY += ["--amp", "off"]


def write_images(root: Path, classes=("a", "b"), per_class: int = 3, splits=("train", "test")) -> Path:
    rng = np.random.default_rng(0)
    for split in splits:
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8)
                pixels[2:6, 2:6, k] = 255
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    """Data, two trained runs (plain and SE) and a collection of broken files."""
    root = tmp_path_factory.mktemp("bad-inputs")
    p = {"root": root, "data": write_images(root / "data")}
    for name, model in (("run", "resnet20"), ("se_run", "se_resnet20")):
        assert main(["train", "--model", model, "--data", str(p["data"]), "--out", str(root / name), *TINY]) == 0
        p[name] = root / name
    p["ckpt"] = p["run"] / "best.safetensors"
    p["other_classes"] = write_images(root / "other_classes", classes=("x", "y", "z"))
    p["train_only"] = write_images(root / "train_only", splits=("train",))
    p["empty"] = root / "empty"
    p["empty"].mkdir()
    corrupt = root / "corrupt"
    for split in ("train", "test"):
        (corrupt / split / "a").mkdir(parents=True)
        (corrupt / split / "a" / "0.png").write_bytes(b"not a png")
    files = {
        "file.txt": "just text\n",
        "broken.yaml": "epochs: [1, 2\n",
        "list.yaml": "- 1\n- 2\n",
        "unknown_field.yaml": "epochz: 3\n",
        "ill_typed.yaml": "momentum: fast\n",
        "python_tag.yaml": "epochs: !!python/object/apply:os.system ['echo hi']\n",
        "compare_escape.yaml": "models:\n  - model: resnet20\n    label: ../../escaped\n",
        "compare_no_models.yaml": "recipe: fast\n",
        "compare_models_scalar.yaml": "models: 3\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
        p[name] = root / name
    p["truncated"] = root / "truncated.safetensors"
    p["truncated"].write_bytes(p["ckpt"].read_bytes()[:200])
    p["foreign"] = root / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(p["foreign"]))
    p["pickle"] = root / "evil.pt"
    p["pickle"].write_bytes(b"\x80\x04cos\nsystem\n(S'echo pwned'\ntR.")  # a pickle that would run a command
    p["resnet18_state"] = root / "resnet18.pt"
    torch.save(__import__("torchvision").models.resnet18().state_dict(), p["resnet18_state"])
    p["bomb"] = root / "bomb.png"
    Image.new("1", (20000, 20000)).save(p["bomb"])  # 400 Mpx: over PIL's decompression-bomb limit
    # checkpoints whose metadata lies: another architecture, an unknown model kwarg, no preprocess, broken JSON
    state = dict(__import__("safetensors.torch", fromlist=["load_file"]).load_file(str(p["ckpt"])))
    metadata = json.loads((p["run"] / "best.json").read_text())
    for name, change in {
        "other_arch": lambda m: {**m, "model": "resnet32"},
        "bad_kwarg": lambda m: {**m, "model_kwargs": {**m["model_kwargs"], "depthh": 3}},
        "no_preprocess": lambda m: {k: v for k, v in m.items() if k != "preprocess"},
    }.items():
        p[name] = root / f"{name}.safetensors"
        save_file(state, str(p[name]), metadata={"attnlab": json.dumps(change(metadata))})
    p["bad_header"] = root / "bad_header.safetensors"
    save_file(state, str(p["bad_header"]), metadata={"attnlab": "{not json"})
    p["onnx_out"] = root / "exists.onnx"
    p["onnx_out"].write_text("x")
    p["no_config"] = root / "no_config"
    p["no_config"].mkdir()
    for name, text in (("empty_config", ""), ("list_config", "- 1\n"), ("typed_config", "epochs: ten\n")):
        (root / name).mkdir()
        (root / name / "config.yaml").write_text(text)
        p[name] = root / name
    return {k: str(v) for k, v in p.items()}


def train(p, *args):
    return ["train", "--data", p["data"], "--out", str(Path(p["root"]) / "new_run"), *TINY, *args]


def on_run(command, p, *args):
    return [command, p["run"], "--data", p["data"], *args, "--device", "cpu"]


CASES = [
    # training hyper-parameters
    ("lr-nan", lambda p: train(p, "--lr", "nan"), "lr must be a finite number"),
    ("lr-inf", lambda p: train(p, "--lr", "inf"), "lr must be a finite number"),
    ("lr-negative", lambda p: train(p, "--lr", "-1"), "lr must be > 0"),
    ("milestones-negative", lambda p: train(p, "--schedule", "step", "--milestones", "-3"), "milestones"),
    ("epochs-zero", lambda p: train(p, "--epochs", "0"), "epochs must be >= 1"),
    ("epochs-word", lambda p: train(p, "--epochs", "ten"), "invalid int value"),
    ("batch-zero", lambda p: train(p, "--batch-size", "0"), "batch_size must be >= 1"),
    ("img-size-zero", lambda p: train(p, "--img-size", "0"), "img_size must be >= 1"),
    ("img-size-huge", lambda p: train(p, "--img-size", "100000"), "img_size must be <= 4096"),
    ("cache-size-zero", lambda p: train(p, "--cache-size", "0"), "cache_size must be >= 1"),
    ("workers-negative", lambda p: train(p, "--workers", "-1"), "workers must be >= 0"),
    ("label-smoothing", lambda p: train(p, "--label-smoothing", "1.5"), "label_smoothing must be in [0, 1)"),
    ("ema-over-one", lambda p: train(p, "--ema", "2"), "ema decay must be in (0, 1)"),
    ("grad-clip-zero", lambda p: train(p, "--grad-clip", "0"), "grad_clip must be > 0"),
    ("mixup-negative", lambda p: train(p, "--mixup", "-1"), "mixup must be >= 0"),
    ("warmup-negative", lambda p: train(p, "--warmup-steps", "-1"), "warmup_steps must be >= 0"),
    ("momentum-negative", lambda p: train(p, "--momentum", "-0.5"), "momentum must be >= 0"),
    ("optimizer-unknown", lambda p: train(p, "--optimizer", "sgdd"), "invalid choice: 'sgdd'"),
    ("amp-unknown", lambda p: train(p, "--amp", "fp8"), "invalid choice: 'fp8'"),
    ("device-unknown", lambda p: train(p, "--device", "gpu"), "unknown device 'gpu'"),
    ("attention-kwargs-list", lambda p: train(p, "--attention", "se", "--attention-kwargs", "[1]"), "JSON object"),
    ("attention-kwargs-json", lambda p: train(p, "--attention-kwargs", "{bad"), "JSON object"),
    (
        "attention-kwarg-unknown",
        lambda p: train(p, "--attention", "se", "--attention-kwargs", '{"ratio": 2}'),
        "unexpected keyword argument 'ratio'",
    ),
    ("model-typo", lambda p: train(p, "--model", "resnt20"), "Did you mean 'resnet20'"),
    ("summary-attention-typo", lambda p: ["summary", "resnet20", "--attention", "eac"], "unknown attention 'eac'"),
    ("attention-typo", lambda p: train(p, "--attention", "eac"), "unknown attention 'eac'. Did you mean"),
    ("attach-conv-module", lambda p: train(p, "--attach", "psa"), "conv-replacement module"),
    ("attach-no-match", lambda p: train(p, "--attach", "eca", "--attach-where", "nomatch.*"), "matches no module"),
    # recipes and run configs
    ("recipe-typo", lambda p: train(p, "--recipe", "keras-flower"), "Did you mean 'keras-flowers'"),
    ("recipe-missing", lambda p: train(p, "--recipe", "missing.yaml"), "does not exist"),
    ("recipe-broken-yaml", lambda p: train(p, "--recipe", p["broken.yaml"]), "is not valid YAML"),
    ("recipe-list", lambda p: train(p, "--recipe", p["list.yaml"]), "must hold a YAML mapping"),
    ("recipe-unknown-field", lambda p: train(p, "--recipe", p["unknown_field.yaml"]), "unknown fields ['epochz']"),
    ("recipe-ill-typed", lambda p: train(p, "--recipe", p["ill_typed.yaml"]), "momentum must be a finite number"),
    ("recipe-python-tag", lambda p: train(p, "--recipe", p["python_tag.yaml"]), "is not valid YAML"),
    ("resume-missing", lambda p: ["train", "--resume", p["no_config"]], "holds no config.yaml"),
    ("resume-empty-config", lambda p: ["train", "--resume", p["empty_config"]], "is empty"),
    ("resume-list-config", lambda p: ["train", "--resume", p["list_config"]], "must hold a YAML mapping"),
    ("resume-typed-config", lambda p: ["train", "--resume", p["typed_config"]], "epochs must be an integer"),
    ("resume-and-overwrite", lambda p: ["train", "--resume", p["run"], "--overwrite"], "give one of them"),
    ("resume-and-config", lambda p: ["train", "--resume", p["run"], "--config", p["list.yaml"]], "start new runs"),
    # data
    ("data-missing", lambda p: train(p, "--data", p["root"] + "/nope"), "nope"),
    ("data-empty", lambda p: train(p, "--data", p["empty"]), "empty"),
    ("data-no-val", lambda p: train(p, "--data", p["train_only"]), "test"),
    ("data-corrupt", lambda p: train(p, "--data", p["root"] + "/corrupt"), "no readable images"),
    ("cache-dir-file", lambda p: train(p, "--cache-dir", p["file.txt"]), "is a file"),
    # outputs
    ("out-is-file", lambda p: [*train(p)[:4], p["file.txt"], *TINY], "is a file"),
    ("out-under-file", lambda p: [*train(p)[:4], p["file.txt"] + "/run", *TINY], "a part of that path is a file"),
    ("out-holds-run", lambda p: [*train(p)[:4], p["run"], *TINY], "already holds a run"),
    # weights to start from
    ("init-from-missing", lambda p: train(p, "--init-from", p["root"] + "/nope.pt"), "no state dict at"),
    ("init-from-pickle", lambda p: train(p, "--init-from", p["pickle"]), "weights only"),
    ("init-from-truncated", lambda p: train(p, "--init-from", p["truncated"]), "truncated"),
    ("init-from-other-arch", lambda p: train(p, "--init-from", p["resnet18_state"]), "does not fit"),
    # eval and checkpoints
    ("eval-missing", lambda p: ["eval", p["root"] + "/nope"], "no run directory or checkpoint"),
    ("eval-empty-dir", lambda p: ["eval", p["empty"]], "holds no best.safetensors"),
    ("eval-truncated", lambda p: ["eval", p["truncated"], "--data", p["data"]], "truncated"),
    ("eval-foreign", lambda p: ["eval", p["foreign"], "--data", p["data"]], "no attnlab metadata"),
    ("eval-other-arch", lambda p: ["eval", p["other_arch"], "--data", p["data"]], "do not match"),
    ("eval-bad-kwarg", lambda p: ["eval", p["bad_kwarg"], "--data", p["data"]], "depthh"),
    ("eval-no-preprocess", lambda p: ["eval", p["no_preprocess"], "--data", p["data"]], "no preprocess record"),
    ("eval-bad-header", lambda p: ["eval", p["bad_header"], "--data", p["data"]], "bad_header.safetensors"),
    ("eval-out-file", lambda p: [*on_run("eval", p), "--out", p["file.txt"]], "is a file"),
    (
        "eval-batch-zero",
        lambda p: [*on_run("eval", p), "--batch-size", "0", "--out", p["root"] + "/e1"],
        "--batch-size must be",
    ),
    (
        "eval-workers-negative",
        lambda p: [*on_run("eval", p), "--workers", "-2", "--out", p["root"] + "/e2"],
        "workers must be",
    ),
    (
        "eval-other-classes",
        lambda p: ["eval", p["run"], "--data", p["other_classes"], "--out", p["root"] + "/e3"],
        "differ from the checkpoint's",
    ),
    (
        "eval-device",
        lambda p: ["eval", p["run"], "--data", p["data"], "--device", "tpu", "--out", p["root"] + "/e4"],
        "unknown device",
    ),
    # predict
    ("predict-missing-image", lambda p: ["predict", p["run"], p["root"] + "/nope.jpg"], "no image file or folder"),
    ("predict-empty-folder", lambda p: ["predict", p["run"], p["empty"]], "holds no image files"),
    ("predict-glob-no-match", lambda p: ["predict", p["run"], p["root"] + "/*.webp"], "matches no image files"),
    ("predict-corrupt-among-many", lambda p: ["predict", p["run"], p["root"] + "/corrupt", p["data"]], "0.png"),
    ("predict-batch-zero", lambda p: ["predict", p["run"], p["data"], "--batch-size", "0"], "--batch-size must be"),
    ("predict-json-exists", lambda p: ["predict", p["run"], p["data"], "--json", p["file.txt"]], "--overwrite"),
    ("predict-not-an-image", lambda p: ["predict", p["run"], p["file.txt"]], "cannot read image"),
    ("predict-topk-negative", lambda p: ["predict", p["run"], p["file.txt"], "--topk", "-1"], "--topk must be"),
    ("predict-bomb", lambda p: ["predict", p["run"], p["bomb"]], "too large"),
    # export
    ("export-opset", lambda p: ["export", p["run"], "--opset", "0", "--out", p["root"] + "/x.onnx"], "opset must be"),
    ("export-atol", lambda p: ["export", p["run"], "--atol", "0", "--out", p["root"] + "/y.onnx"], "atol must be > 0"),
    ("export-exists", lambda p: ["export", p["run"], "--out", p["onnx_out"]], "exists already"),
    ("export-format", lambda p: ["export", p["run"], "--format", "tflite"], "invalid choice"),
    # compare
    ("compare-label-escape", lambda p: ["compare", "--config", p["compare_escape.yaml"]], "must be a plain name"),
    ("compare-config-missing", lambda p: ["compare", "--config", p["root"] + "/nope.yaml"], "does not exist"),
    ("compare-config-broken", lambda p: ["compare", "--config", p["broken.yaml"]], "is not valid YAML"),
    ("compare-config-list", lambda p: ["compare", "--config", p["list.yaml"]], "must hold a YAML mapping"),
    ("compare-no-models", lambda p: ["compare", "--config", p["compare_no_models.yaml"]], "no 'models' list"),
    ("compare-models-scalar", lambda p: ["compare", "--config", p["compare_models_scalar.yaml"]], "non-empty list"),
    ("compare-models-empty", lambda p: ["compare", "--models", ""], "give the models"),
    ("compare-seeds-zero", lambda p: ["compare", "--models", "resnet20", "--seeds", "0"], "seeds must be >= 1"),
    ("compare-model-flag", lambda p: ["compare", "--model", "resnet20"], "unrecognized arguments"),
    ("compare-model-typo", lambda p: ["compare", "--models", "resnt20", "--out", p["root"] + "/c"], "Did you mean"),
    # bench and summary
    ("bench-model-typo", lambda p: ["bench", "--models", "resnt50"], "Did you mean 'resnet50'"),
    ("bench-batch-zero", lambda p: ["bench", "--models", "resnet20", "--batch-size", "0"], "batch_size must be"),
    ("bench-repeats-zero", lambda p: ["bench", "--models", "resnet20", "--repeats", "0"], "repeats must be"),
    ("bench-device", lambda p: ["bench", "--models", "resnet20", "--device", "gpu"], "unknown device"),
    ("summary-model-typo", lambda p: ["summary", "resnt20"], "Did you mean 'resnet20'"),
    ("summary-img-size", lambda p: ["summary", "resnet20", "--img-size", "0"], "--img-size must be"),
    ("summary-input-size-gone", lambda p: ["summary", "resnet20", "--input-size", "32"], "unrecognized arguments"),
    ("summary-num-classes", lambda p: ["summary", "resnet20", "--num-classes", "0"], "num_classes must be"),
    # analyze
    (
        "analyze-no-attention",
        lambda p: ["analyze", "activations", p["run"], "--data", p["data"], "--out", p["root"] + "/a0"],
        "has no attention modules",
    ),
    (
        "ablate-mode",
        lambda p: [
            "analyze",
            "ablate",
            p["se_run"],
            "--data",
            p["data"],
            "--modes",
            "zero",
            "--out",
            p["root"] + "/a1",
        ],
        "ablation modes must be among",
    ),
    (
        "activations-class",
        lambda p: [
            "analyze",
            "activations",
            p["se_run"],
            "--data",
            p["data"],
            "--classes",
            "q",
            "--out",
            p["root"] + "/a2",
        ],
        "unknown classes ['q']",
    ),
    (
        "activations-images",
        lambda p: [
            "analyze",
            "activations",
            p["se_run"],
            "--data",
            p["data"],
            "--images-per-class",
            "0",
            "--out",
            p["root"] + "/a3",
        ],
        "images_per_class must be >= 1",
    ),
    (
        "activations-channels",
        lambda p: [
            "analyze",
            "activations",
            p["se_run"],
            "--data",
            p["data"],
            "--channels",
            "0",
            "--out",
            p["root"] + "/a4",
        ],
        "channels to show must be >= 1",
    ),
    (
        "activations-out-file",
        lambda p: ["analyze", "activations", p["se_run"], "--data", p["data"], "--out", p["file.txt"]],
        "is a file",
    ),
    (
        "cam-missing-image",
        lambda p: ["analyze", "cam", p["se_run"], p["root"] + "/nope.png", "--out", p["root"] + "/a5"],
        "cannot read image",
    ),
    (
        "cam-target",
        lambda p: [
            "analyze",
            "cam",
            p["se_run"],
            p["root"] + "/data/test/a/0.png",
            "--target",
            "layer9",
            "--out",
            p["root"] + "/a6",
        ],
        "has no module 'layer9'",
    ),
    (
        "sweep-even-k",
        lambda p: ["analyze", "kernel-sweep", "--data", p["data"], "--k", "4", "--out", p["root"] + "/k1", *TINY],
        "k_size must be an odd integer",
    ),
    ("sweep-k-words", lambda p: ["analyze", "kernel-sweep", "--k", "a,b"], "--k: takes comma-separated integers"),
    ("train-config-missing", lambda p: ["train", "--config", p["root"] + "/nope.yaml"], "does not exist"),
    ("train-config-unknown", lambda p: ["train", "--config", p["unknown_field.yaml"]], "unknown fields ['epochz']"),
    ("bench-amp-switch", lambda p: ["bench", "--models", "resnet20", "--amp"], "expected one argument"),
    (
        "sweep-no-eca",
        lambda p: ["analyze", "kernel-sweep", "--model", "resnet20", "--out", p["root"] + "/k2"],
        "has no ECA modules",
    ),
]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_enough_cases():
    assert len(CASES) >= 60 and len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("name, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_message(name, argv, expected, paths, capsys):
    code, output = run_cli(argv(paths), capsys)
    assert code == 2, output[-3000:]
    assert "Traceback" not in output
    assert expected in output, output[-3000:]
    assert "weights_only=False" not in output  # never advice to load unsafely


def test_export_without_the_onnx_extra_names_the_install_line(paths, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    code, output = run_cli(["export", paths["run"], "--out", paths["root"] + "/z.onnx"], capsys)
    assert code == 2 and "pip install 'attnlab[onnx]'" in output and "Traceback" not in output


def test_internal_errors_are_one_line_with_the_traceback_in_a_file(paths, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("attnlab.cli.summary_of", broken, raising=False)
    monkeypatch.setattr("attnlab.cli.attnlab.summary", broken)
    code, output = run_cli(["summary", "resnet20"], capsys)
    assert code == 1 and "internal error: RuntimeError: a bug" in output and "Traceback" not in output
    trace_file = output.split("traceback is in ")[1].split(" ")[0]
    assert "Traceback" in Path(trace_file).read_text()


def test_ctrl_c_exits_130_with_the_resume_command(paths, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("attnlab.cli.train", interrupted)
    out = paths["root"] + "/interrupted"
    code, output = run_cli(["train", "--data", paths["data"], "--out", out, *TINY], capsys)
    assert code == 130 and f"attnlab train --resume {out}" in output


def test_a_full_disk_is_one_message_naming_resume(paths, capsys, monkeypatch):
    def full(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr("os.replace", full)
    code, output = run_cli(train(paths, "--out", paths["root"] + "/full"), capsys)
    assert code == 2 and "the disk is full" in output and "--resume" in output and "Traceback" not in output


def test_a_truncated_image_cache_is_rebuilt_not_fatal(paths, capsys, tmp_path):
    cache = tmp_path / "cache"
    args = ["--cache-dir", str(cache)]
    assert run_cli(train(paths, "--out", str(tmp_path / "r1"), *args), capsys)[0] == 0
    for file in cache.glob("*.safetensors"):
        file.write_bytes(file.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unreadable.*decoding the images again"):
        assert run_cli(train(paths, "--out", str(tmp_path / "r2"), *args), capsys)[0] == 0


def test_run_files_get_the_usual_permissions(paths):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("best.safetensors", "config.yaml", "metrics.csv"):
        assert (Path(paths["run"]) / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_one_class_data_warns(tmp_path, capsys):
    data = write_images(tmp_path / "one", classes=("only",))
    with pytest.warns(UserWarning, match="only one class"):
        run_cli(["train", "--data", str(data), "--out", str(tmp_path / "r"), *TINY], capsys)
