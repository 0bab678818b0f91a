import pickle
import warnings

import numpy as np
import pytest
import torch
from data_helpers import COLORS, write_images

from attnlab.data import images as images_module
from attnlab.data import load_splits, read_cifar_batch


def solid(color, size):
    return torch.tensor(color, dtype=torch.uint8)[:, None, None].expand(3, size, size)


def test_image_folder_pairs_each_file_with_its_class(image_tree):
    root = image_tree({"train": 4, "test": 2})
    splits = load_splits(str(root), size=8)
    assert splits.classes == ["cat", "dog", "owl"] and splits.class_to_index == {"cat": 0, "dog": 1, "owl": 2}
    assert (len(splits.train), len(splits.val)) == (12, 6)
    images, labels = splits.val.cache
    assert images.shape == (6, 3, 8, 8) and images.dtype == torch.uint8
    for image, label in zip(images, labels):
        assert torch.equal(image, solid(COLORS[splits.classes[label]], 8))


def test_val_folder_is_preferred_and_explicit_trees_work(image_tree, tmp_path):
    root = image_tree({"train": 2, "val": 1, "test": 3})
    assert len(load_splits(str(root), size=4).val) == 3  # val/ (1 per class) wins over test/
    splits = load_splits(None, train=str(root / "train"), val=str(root / "test"), size=4)
    assert (len(splits.train), len(splits.val)) == (6, 9)
    only_val = load_splits(None, val=str(root / "test"), size=4)
    assert only_val.train is None and only_val.classes == ["cat", "dog", "owl"]


def test_broken_files_are_skipped_counted_or_fatal_with_strict(image_tree):
    root = image_tree({"train": 3, "test": 1})
    cat = root / "train" / "cat"
    jpeg = cat / "good.jpg"
    write_images(cat, (1, 2, 3), 1)
    (cat / "img0.png").rename(jpeg)  # a real PNG named .jpg still decodes
    data = (cat / "img1.png").read_bytes()
    (cat / "truncated.png").write_bytes(data[: len(data) // 2])
    (cat / "notes.txt").write_text("not an image")
    (cat / "empty.jpg").write_bytes(b"")
    (cat / ".DS_Store").write_bytes(b"\0\1")  # hidden files are not listed at all
    splits = load_splits(str(root), size=4)
    with pytest.warns(UserWarning, match=r"skipped 3 of 12 files in .*train"):
        assert len(splits.train) == 9
    assert sorted(p.rsplit("/", 1)[1] for p, _ in splits.train.skipped) == ["empty.jpg", "notes.txt", "truncated.png"]
    strict = load_splits(str(root), size=4, strict=True)
    with pytest.raises(ValueError, match=r"cannot read image .*(empty.jpg|notes.txt|truncated.png).*--strict"):
        len(strict.train)


def test_class_with_no_readable_image_is_an_error(image_tree):
    root = image_tree({"train": 2, "test": 1})
    for path in (root / "test" / "dog").iterdir():
        path.write_text("corrupt")
    with pytest.raises(ValueError, match=r"test/dog have no readable images"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        len(load_splits(str(root), size=4).val)


def test_structure_errors_name_the_folder(image_tree, tmp_path):
    root = image_tree({"train": 2, "test": 1})
    (root / "train" / "emu").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*train/emu is empty"):
        load_splits(str(root), size=4)
    (root / "train" / "emu").rmdir()
    write_images(root / "train" / "emu", (9, 9, 9), 1)
    mismatch = r"differ between .*train and .*test: only in train: \['emu'\], only in test: \[\]"
    with pytest.raises(ValueError, match=mismatch):
        load_splits(str(root), size=4)
    no_val = image_tree({"train": 1}, root=tmp_path / "no_val")
    with pytest.raises(ValueError, match=r"no_val has no val/ or test/ folder"):
        load_splits(str(no_val), size=4)
    with pytest.raises(ValueError, match=r"has no train/ folder"):
        load_splits(str(root / "test"), size=4)
    with pytest.raises(ValueError, match="no such folder"):
        load_splits(str(tmp_path / "missing"), size=4)


def write_batch(path, contents):
    with open(path, "wb") as f:
        pickle.dump(contents, f, protocol=2)  # the layout and protocol of the published batches


def test_cifar10_python_batches(tmp_path):
    rng = np.random.default_rng(0)
    rows = {
        name: rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        for name, n in [("data_batch_1", 3), ("data_batch_2", 2), ("test_batch", 2)]
    }
    labels = {"data_batch_1": [0, 1, 2], "data_batch_2": [2, 0], "test_batch": [1, 1]}
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for name, data in rows.items():
        write_batch(root / name, {b"batch_label": b"x", b"data": data, b"labels": labels[name]})
    write_batch(root / "batches.meta", {b"label_names": [b"plane", b"car", b"bird"], b"num_vis": 3072})
    splits = load_splits(str(tmp_path), size=32)  # finds the extracted child folder
    assert splits.classes == ["plane", "car", "bird"]
    images, train_labels = splits.train.cache
    assert train_labels.tolist() == [0, 1, 2, 2, 0]
    # a row is the red, green and blue 32x32 planes, each row-major
    assert images[3, 1, 5, 7] == rows["data_batch_2"][0, 1024 + 5 * 32 + 7]
    assert torch.equal(images[0].flatten(), torch.from_numpy(rows["data_batch_1"][0]))
    assert splits.val.cache[1].tolist() == [1, 1]
    assert load_splits(str(root), size=16).val.cache[0].shape == (2, 3, 16, 16)


def test_cifar100_python_batches(tmp_path):
    data = np.zeros((2, 3072), dtype=np.uint8)
    for name in ("train", "test"):
        write_batch(tmp_path / name, {b"data": data, b"fine_labels": [1, 0], b"coarse_labels": [0, 0]})
    write_batch(tmp_path / "meta", {b"fine_label_names": [b"apple", b"bee"], b"coarse_label_names": [b"x"]})
    splits = load_splits(str(tmp_path), size=32)
    assert splits.classes == ["apple", "bee"] and splits.train.cache[1].tolist() == [1, 0]


class Exploit:
    def __reduce__(self):
        import os

        return os.system, ("touch pwned",)


def test_cifar_reader_refuses_pickles_that_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_batch(tmp_path / "data_batch_1", {b"data": Exploit()})
    with pytest.raises(ValueError, match=r"data_batch_1 is not a CIFAR python batch \(global .*system is not allowed"):
        read_cifar_batch(tmp_path / "data_batch_1")
    assert not (tmp_path / "pwned").exists()


def test_digits_fixed_stratified_split():
    from sklearn.datasets import load_digits

    target = load_digits().target
    splits = load_splits("digits", size=8)
    assert splits.classes == [str(d) for d in range(10)] and not splits.mirror_invariant
    val_counts = torch.bincount(splits.val.labels, minlength=10)
    assert val_counts.tolist() == [round(0.2 * (target == d).sum()) for d in range(10)]
    assert len(splits.train) + len(splits.val) == len(target) == 1797
    images = splits.train.cache[0]
    assert images.shape[1:] == (3, 8, 8) and images.max() == 255  # digits' 0..16 scaled to 0..255
    assert torch.equal(images[:, 0], images[:, 2])  # grey
    again = load_splits("digits", size=8)
    assert torch.equal(again.val.labels, splits.val.labels) and torch.equal(again.val.cache[0], splits.val.cache[0])
    assert load_splits("digits", size=32).val.cache[0].shape[-1] == 32


def test_disk_cache_is_reused_and_keyed_by_the_files(image_tree, tmp_path, monkeypatch):
    root = image_tree({"train": 2, "test": 1})
    cache_dir = tmp_path / "cache"
    first = load_splits(str(root), size=4, cache_dir=str(cache_dir))
    assert len(first.train) == 6
    assert len(list(cache_dir.glob("train-4px-*.safetensors"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(images_module, "read_image", no_decoding)
    cached = load_splits(str(root), size=4, cache_dir=str(cache_dir))
    assert torch.equal(cached.train.cache[0], first.train.cache[0])
    monkeypatch.undo()
    write_images(root / "train" / "cat", (7, 7, 7), 3)  # a changed file list gets a new cache file
    assert len(load_splits(str(root), size=4, cache_dir=str(cache_dir)).train) == 7
    assert len(list(cache_dir.glob("train-4px-*.safetensors"))) == 2


def test_streaming_gives_the_cached_images(image_tree):
    root = image_tree({"train": 2, "test": 2})
    cached = load_splits(str(root), size=4).val
    streamed = load_splits(str(root), size=4, max_cache_bytes=0).val
    assert cached.in_memory and not streamed.in_memory
    ((images, labels),) = streamed.stream([torch.arange(6)])
    assert torch.equal(images, cached.cache[0]) and torch.equal(labels, cached.cache[1])
