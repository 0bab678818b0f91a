"""The data formats ``--data`` accepts: ImageFolder trees, CIFAR-10/100 python batches, and the embedded digits.

- ImageFolder: ``DIR/train`` and ``DIR/val`` (or ``DIR/test``) each with one sub-folder per class, or two such
  trees given as ``train=`` and ``val=``. Classes are the sorted folder names.
- CIFAR python batches (Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009):
  ``data_batch_*`` / ``test_batch`` / ``batches.meta`` (CIFAR-10) or ``train`` / ``test`` / ``meta`` (CIFAR-100),
  read with an unpickler that only accepts the numpy array globals these files contain.
- ``digits``: scikit-learn's 1797 8x8 handwritten digits (the UCI optdigits test set, Alpaydin and Kaynak, 1998),
  shipped with scikit-learn, with a fixed stratified 80/20 split; no download.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from attnlab.data.images import DEFAULT_MAX_CACHE_BYTES, ArraySource, FileSource, ImageSet

VAL_FOLDERS = ("val", "test")
DIGITS_VAL_FRACTION = 0.2


@dataclass
class Splits:
    """The classes and the train and validation :class:`ImageSet` of a data set (``train`` is None when only a
    validation tree was given, e.g. for ``attnlab eval --val DIR``). ``mirror_invariant`` is False where a
    horizontal flip changes what an image shows (digits), so augmentation leaves flips out by default."""

    classes: list[str]
    train: ImageSet | None
    val: ImageSet
    mirror_invariant: bool = True

    @property
    def class_to_index(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.classes)}


# --------------------------------------------------------------------------------------------------- ImageFolder


def class_folders(root: Path) -> list[Path]:
    """The class sub-folders of an ImageFolder split, sorted; raises ValueError naming ``root`` when unusable."""
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; expected a folder with one sub-folder of images per class")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    hidden = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("."))
    if hidden:
        warnings.warn(f"{root}: hidden folders {hidden} are not classes and are ignored", stacklevel=2)
    if not folders:
        raise ValueError(f"{root} has no class sub-folders; put each class's images in {root}/<class name>/")
    return folders


def folder_source(root: Path) -> tuple[list[str], FileSource]:
    """(class names, files with labels) of one ImageFolder split; every file is listed, unreadable ones are
    skipped when decoding. Raises ValueError naming an empty class folder."""
    files, labels = [], []
    classes = []
    for label, folder in enumerate(class_folders(root)):
        members = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not members:
            raise ValueError(f"class folder {folder} is empty; add its images or remove the folder")
        classes.append(folder.name)
        files += members
        labels += [label] * len(members)
    return classes, FileSource(root, files, labels)


def check_same_classes(train_root: Path, train_classes: list[str], val_root: Path, val_classes: list[str]) -> None:
    if train_classes != val_classes:
        only_train = sorted(set(train_classes) - set(val_classes))
        only_val = sorted(set(val_classes) - set(train_classes))
        raise ValueError(
            f"class folders differ between {train_root} and {val_root}: only in {train_root.name}: {only_train}, "
            f"only in {val_root.name}: {only_val}; both splits need the same class sub-folders"
        )


def find_val_folder(root: Path) -> Path:
    for name in VAL_FOLDERS:
        if (root / name).is_dir():
            return root / name
    raise ValueError(f"{root} has no val/ or test/ folder; add one, or pass the splits as --train DIR --val DIR")


# ----------------------------------------------------------------------------------------------------- CIFAR


def numpy_reconstruct_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR batch may reference: numpy's array reconstruction (under its numpy 1 and numpy 2
    module names) and ``_codecs.encode``, which Python 3 protocol-2 pickles use for bytes."""
    import codecs

    reconstruct = np.ndarray(0).__reduce__()[0]  # numpy's own _reconstruct, whatever module it lives in
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR batches that refuses every global but numpy's array reconstruction, so a crafted
    file cannot run code."""

    allowed = numpy_reconstruct_globals()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch") from None


def read_cifar_batch(path: Path) -> dict[str, object]:
    """A CIFAR python batch as a dict with str keys; raises ValueError naming ``path`` for anything else."""
    try:
        with open(path, "rb") as f:
            batch = NumpyOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"{path} is not a CIFAR python batch ({err})") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path} is not a CIFAR python batch (holds a {type(batch).__name__}, not a dict)")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}


def cifar_root(root: Path) -> Path | None:
    """The folder holding CIFAR python batches: ``root`` or its extracted ``cifar-10-batches-py`` /
    ``cifar-100-python`` child; None when there is none."""
    for folder in (root, root / "cifar-10-batches-py", root / "cifar-100-python"):
        if (folder / "batches.meta").is_file() or (folder / "meta").is_file():
            return folder
    return None


def cifar_splits(root: Path) -> tuple[list[str], ArraySource, ArraySource]:
    """(class names, train, test) of CIFAR-10 or CIFAR-100 python batches in ``root``."""
    if (root / "batches.meta").is_file():
        names_key, labels_key = "label_names", "labels"
        meta, train_files, test_files = root / "batches.meta", sorted(root.glob("data_batch_*")), [root / "test_batch"]
    else:
        names_key, labels_key = "fine_label_names", "fine_labels"
        meta, train_files, test_files = root / "meta", [root / "train"], [root / "test"]
    classes = [name.decode() if isinstance(name, bytes) else name for name in read_cifar_batch(meta)[names_key]]

    def read(files: list[Path], split: str) -> ArraySource:
        missing = [str(f) for f in files if not f.is_file()]
        if not files or missing:
            raise ValueError(f"CIFAR {split} batches missing in {root}: {missing or 'data_batch_*'}")
        batches = [read_cifar_batch(f) for f in files]
        data = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        labels = np.concatenate([np.asarray(b[labels_key], dtype=np.int64) for b in batches])
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
            raise ValueError(
                f"CIFAR {split} batches in {root} hold data of shape {data.shape} with {len(labels)} "
                "labels; expected (N, 3072) uint8 rows of 32x32 RGB and N labels"
            )
        images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
        return ArraySource(f"{root}:{split}", images, torch.from_numpy(labels))

    return classes, read(train_files, "train"), read(test_files, "test")


# ---------------------------------------------------------------------------------------------------- digits


def digits_splits() -> tuple[list[str], ArraySource, ArraySource]:
    """(classes '0'..'9', train, val) of scikit-learn's digits as uint8 RGB 8x8 images; the same stratified
    split every time (20% of each class, chosen with a fixed seed, is validation)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(np.round(digits.images * (255 / 16)).astype(np.uint8))[:, None].expand(-1, 3, -1, -1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    rng = np.random.default_rng(0)
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    for digit in range(10):
        members = np.flatnonzero(digits.target == digit)
        is_val[rng.permutation(members)[: round(DIGITS_VAL_FRACTION * len(members))]] = True
    classes = [str(d) for d in range(10)]
    return (
        classes,
        ArraySource("digits:train", images[~is_val].contiguous(), labels[~is_val]),
        ArraySource("digits:val", images[is_val].contiguous(), labels[is_val]),
    )


# ------------------------------------------------------------------------------------------------- load_splits


def load_splits(
    data: str | None = "digits",
    *,
    train: str | None = None,
    val: str | None = None,
    size: int,
    fit: str = "crop",
    strict: bool = False,
    cache_dir: str | None = None,
    workers: int = 0,
    max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES,
) -> Splits:
    """The train and validation splits of ``data`` ('digits', an ImageFolder root with train/ and val/ or test/,
    or a folder of CIFAR python batches), or of the trees ``train`` and ``val``. Only file listing and class
    checks happen here; images are decoded to uint8 squares of ``size`` on first use (see :class:`ImageSet`)."""
    if data and (train or val):
        raise ValueError("give either --data DIR or --train DIR --val DIR, not both")
    options = dict(strict=strict, cache_dir=cache_dir, workers=workers, max_cache_bytes=max_cache_bytes)

    def image_set(source: FileSource | ArraySource, classes: list[str]) -> ImageSet:
        return ImageSet(source, classes, size, fit, **options)

    if data == "digits":
        classes, train_source, val_source = digits_splits()
        return Splits(classes, image_set(train_source, classes), image_set(val_source, classes), mirror_invariant=False)
    if data:
        root = Path(data)
        if not root.is_dir():
            raise ValueError(
                f"--data {data}: no such folder; give 'digits', an ImageFolder root with train/ and "
                "test/ (or val/) class folders, or a folder of CIFAR python batches"
            )
        if (batches := cifar_root(root)) is not None:
            classes, train_source, val_source = cifar_splits(batches)
            return Splits(classes, image_set(train_source, classes), image_set(val_source, classes))
        if not (root / "train").is_dir():
            raise ValueError(
                f"{root} has no train/ folder; expected {root}/train and {root}/test (or val) with one "
                "sub-folder per class, or CIFAR python batches"
            )
        train, val = str(root / "train"), str(find_val_folder(root))
    if not val:
        raise ValueError("no validation data: pass --val DIR (a folder with one sub-folder per class)")
    val_classes, val_source = folder_source(Path(val))
    if train is None:
        return Splits(val_classes, None, image_set(val_source, val_classes))
    classes, train_source = folder_source(Path(train))
    check_same_classes(Path(train), classes, Path(val), val_classes)
    return Splits(classes, image_set(train_source, classes), image_set(val_source, classes))
