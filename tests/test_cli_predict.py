"""``attnlab predict`` over files, folders and globs in batches, with JSON / CSV output."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attnlab.cli import main
from attnlab.engine.predict import collect_images, load_classifier, predict_images

TINY = ["--epochs", "1", "--img-size", "8", "--cache-size", "8", "--batch-size", "4", "--device", "cpu"]


def write_image(path: Path, channel: int, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 60, (8, 8, 3), dtype=np.uint8)
    pixels[2:6, 2:6, channel] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A resnet20 trained for one epoch on a 3-class folder of 8x8 images."""
    root = tmp_path_factory.mktemp("predict")
    for split in ("train", "test"):
        for k, name in enumerate(("red", "green", "blue")):
            for i in range(3):
                write_image(root / "data" / split / name / f"{i}.png", k, 10 * k + i)
    assert main(["train", "--data", str(root / "data"), "--out", str(root / "run"), *TINY]) == 0
    return root / "run"


@pytest.fixture
def photos(tmp_path) -> Path:
    """photos/a.png, photos/b.jpg, photos/sub/c.png, photos/.hidden/d.png, photos/notes.txt, one/e.png."""
    for i, name in enumerate(("photos/a.png", "photos/b.jpg", "photos/sub/c.png", "photos/.hidden/d.png", "one/e.png")):
        write_image(tmp_path / name, i % 3, i)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    return tmp_path


def test_collect_images_expands_folders_and_globs_in_order_without_repeats(photos):
    got = collect_images([photos / "one/e.png", photos / "photos", str(photos / "photos/*.png"), photos / "one"])
    rel = [p.relative_to(photos).as_posix() for p in got]
    assert rel == ["one/e.png", "photos/a.png", "photos/b.jpg", "photos/sub/c.png"]
    assert [p.name for p in collect_images([str(photos / "photos/**/*.png")])] == ["a.png", "c.png"]


@pytest.mark.parametrize(
    "item, message",
    [("missing.png", "no image file or folder at"), ("empty", "holds no image files"), ("none/*.png", "matches no")],
)
def test_collect_images_names_what_finds_nothing(tmp_path, item, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=message):
        collect_images([str(tmp_path / item)])


def test_batches_give_the_same_predictions_as_single_images(run, photos):
    classifier = load_classifier(run, "cpu", "off")
    paths = collect_images([photos / "photos", photos / "one"])
    one = list(predict_images(classifier, paths, topk=3, batch_size=1))
    many = list(predict_images(classifier, paths, topk=3, batch_size=3))
    assert [p.path for p in one] == [str(p) for p in paths]
    for a, b in zip(one, many):
        assert [c for c, _ in a.top] == [c for c, _ in b.top]
        assert np.allclose([v for _, v in a.top], [v for _, v in b.top], atol=1e-5)
    assert classifier.classes == ["blue", "green", "red"] and classifier.name == "resnet20"


def test_predict_writes_json_and_csv_for_files_folders_and_globs(run, photos, capsys):
    out_json, out_csv = photos / "p.json", photos / "p.csv"
    argv = ["predict", str(run), str(photos / "one/e.png"), str(photos / "photos"), str(photos / "one/*.png")]
    argv += ["--topk", "2", "--batch-size", "2", "--device", "cpu", "--json", str(out_json), "--csv", str(out_csv)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    paths = [str(photos / p) for p in ("one/e.png", "photos/a.png", "photos/b.jpg", "photos/sub/c.png")]
    assert [line.split()[0] for line in table.splitlines()] == [path + ":" for path in paths]
    report = json.loads(out_json.read_text())
    assert report["model"] == "resnet20" and report["classes"] == ["blue", "green", "red"]
    assert [row["path"] for row in report["predictions"]] == paths
    for row in report["predictions"]:
        probabilities = [t["probability"] for t in row["top"]]
        assert len(row["top"]) == 2 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-6 and {t["class"] for t in row["top"]} < set(report["classes"])
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert [r["path"] for r in rows] == paths
    assert list(rows[0]) == ["path", "class_1", "probability_1", "class_2", "probability_2", "error"]
    for r, row in zip(rows, report["predictions"]):
        assert r["class_1"] == row["top"][0]["class"] and float(r["probability_1"]) == pytest.approx(
            row["top"][0]["probability"], abs=1e-6
        )
    assert main(argv) == 2 and "add --overwrite" in capsys.readouterr().err  # no silent overwrite
    assert main([*argv, "--overwrite"]) == 0


def test_json_to_stdout_is_pure_json(run, photos, capsys):
    assert main(["predict", str(run), str(photos / "one"), "--json", "-", "--topk", "9"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["predictions"][0]["top"]) == 3  # top-k stops at the number of classes


def test_a_corrupt_image_among_many_is_skipped_named_and_exits_2(run, photos, capsys):
    (photos / "photos" / "broken.png").write_bytes(b"not a png")
    out_json = photos / "p.json"
    assert main(["predict", str(run), str(photos / "photos"), "--json", str(out_json)]) == 2
    captured = capsys.readouterr()
    assert "skipped: cannot read image" in captured.err and "broken.png" in captured.err
    assert "1 of 4 images could not be read" in captured.err and "Traceback" not in captured.err
    rows = {Path(row["path"]).name: row for row in json.loads(out_json.read_text())["predictions"]}
    assert "cannot read image" in rows["broken.png"]["error"] and len(rows["a.png"]["top"]) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.png"], "no image file or folder at"),
        (["empty"], "holds no image files"),
        (["none/*.jpg"], "matches no image files"),
        (["one", "--topk", "0"], "--topk must be"),
        (["one", "--batch-size", "0"], "--batch-size must be"),
        (["one", "--json", "same", "--csv", "same"], "give two files"),
        (["one", "--device", "tpu"], "unknown device"),
    ],
)
def test_bad_inputs_exit_2_with_the_fix(run, photos, capsys, args, message):
    (photos / "empty").mkdir()
    args = [str(photos / a) if i == 0 else a for i, a in enumerate(args)]
    assert main(["predict", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
