"""Predicting the classes of image files in batches: ``attnlab predict``.

Two steps, so that other model formats can slot in: a loader returns a :class:`Classifier` (a forward function
plus the class names and the preprocessing the model was trained with), and :func:`predict_images` runs it over
the files that :func:`collect_images` finds in files, folders and glob patterns.
"""

from __future__ import annotations

import csv
import glob
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from attnlab.data import Preprocess, read_image_files
from attnlab.engine.checkpoint import require_metadata
from attnlab.engine.inference import checkpoint_path, load_model
from attnlab.utils import autocast, check_positive_int, resolve_amp, resolve_device

GLOB_CHARACTERS = frozenset("*?[")


@dataclass
class Classifier:
    """A model ready to predict: ``forward`` maps normalised float images (N, 3, S, S) on ``device`` to logits
    (N, len(classes)); ``preprocess`` turns image files into those inputs as the model's training evaluated them."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    classes: list[str]
    preprocess: Preprocess
    device: torch.device
    name: str
    source: str


@dataclass
class Prediction:
    """The top-k (class name, probability) of one image file, or why it could not be read (``top`` empty)."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None


def load_classifier(run_or_ckpt: str | Path, device: str | torch.device = "auto", amp: str = "auto") -> Classifier:
    """The :class:`Classifier` of an attnlab run directory or ``.safetensors`` checkpoint, on ``device`` with the
    mixed precision ``amp`` (one of ``utils.AMP_MODES``)."""
    device = resolve_device(device)
    model, metadata = load_model(run_or_ckpt, device)
    return classifier_for(model, metadata, str(checkpoint_path(run_or_ckpt)), device, amp)


def classifier_for(
    model: Callable[[torch.Tensor], torch.Tensor],
    metadata: dict,
    source: str,
    device: str | torch.device = "cpu",
    amp: str = "off",
) -> Classifier:
    """The :class:`Classifier` of a loaded model (a module or an exported file's runner) and the metadata it was
    saved with (``classes``, ``preprocess``, ``model``)."""
    require_metadata(metadata, "preprocess", "classes")
    device = resolve_device(device)
    amp_dtype = resolve_amp(amp, device)

    @torch.no_grad()
    def forward(images: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp_dtype):
            return model(images).float()

    return Classifier(
        forward,
        list(metadata["classes"]),
        Preprocess.from_dict(metadata["preprocess"]),
        device,
        metadata.get("model", Path(source).stem),
        source,
    )


def image_suffixes() -> frozenset[str]:
    """File suffixes PIL can open (``.jpg``, ``.png``, ...), lower case."""
    return frozenset(suffix.lower() for suffix in Image.registered_extensions())


def _images_in(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """The image files of ``inputs``, in order and without repeats: a file as given (whatever its suffix), a
    folder's image files (by suffix, recursively, hidden ones skipped), a glob pattern's matches (``**`` recurses;
    quoted patterns work too), files by suffix and folders as above. FileNotFoundError naming the input that
    finds nothing."""
    suffixes = image_suffixes()
    found: dict[Path, None] = {}
    for item in inputs:
        path = Path(item)
        if path.is_file():
            found[path] = None
            continue
        if path.is_dir():
            files = _images_in(path, suffixes)
            if not files:
                raise FileNotFoundError(
                    f"the folder {path} holds no image files ({', '.join(sorted(suffixes)[:6])}, ...); give a folder "
                    "of images, image files or a glob pattern such as 'photos/**/*.jpg'"
                )
        elif GLOB_CHARACTERS & set(str(item)):
            files = []
            for match in map(Path, sorted(glob.glob(str(item), recursive=True))):
                if match.is_dir():
                    files += _images_in(match, suffixes)
                elif match.suffix.lower() in suffixes:
                    files.append(match)
            if not files:
                raise FileNotFoundError(f"the pattern {item} matches no image files; check the pattern and its folder")
        else:
            raise FileNotFoundError(f"no image file or folder at {path}; check the path")
        found.update(dict.fromkeys(files))
    if not found:
        raise FileNotFoundError("no images given; give image files, folders or glob patterns")
    return list(found)


def predict_images(
    classifier: Classifier, paths: Sequence[str | Path], *, topk: int = 5, batch_size: int = 64
) -> Iterator[Prediction]:
    """One :class:`Prediction` per file of ``paths``, in order, run ``batch_size`` images at a time. A file that
    cannot be decoded yields a Prediction with its ``error`` instead of stopping the others."""
    check_positive_int("topk", topk)
    check_positive_int("batch_size", batch_size)
    preprocess = classifier.preprocess
    k = min(topk, len(classifier.classes))
    for start in range(0, len(paths), batch_size):
        chunk = [str(p) for p in paths[start : start + batch_size]]
        images, readable, errors = [], [], {}
        for path in chunk:
            try:
                images.append(read_image_files([path], preprocess.cache_size, preprocess.fit))
                readable.append(path)
            except ValueError as err:
                errors[path] = str(err)
        tops = {}
        if images:
            batch = preprocess.eval(torch.cat(images).to(classifier.device))
            values, indices = classifier.forward(batch).softmax(1).topk(k, dim=1)
            for path, vs, ids in zip(readable, values.tolist(), indices.tolist()):
                tops[path] = [(classifier.classes[i], v) for v, i in zip(vs, ids)]
        for path in chunk:
            yield Prediction(path, tops.get(path, []), errors.get(path))


def predictions_json(classifier: Classifier, predictions: Sequence[Prediction]) -> str:
    """JSON of the predictions: the model, then per image its path and top-k classes with probabilities, or its
    error."""
    rows = [
        {"path": p.path, "error": p.error}
        if p.error
        else {"path": p.path, "top": [{"class": c, "probability": v} for c, v in p.top]}
        for p in predictions
    ]
    report = {"model": classifier.name, "checkpoint": classifier.source, "classes": classifier.classes}
    return json.dumps({**report, "predictions": rows}, indent=2) + "\n"


def predictions_csv(predictions: Sequence[Prediction]) -> str:
    """CSV with one row per image: path, class_1, probability_1, ..., class_k, probability_k, error."""
    topk = max(len(p.top) for p in predictions)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(
        ["path", *[f"{name}_{i}" for i in range(1, topk + 1) for name in ("class", "probability")], "error"]
    )
    for p in predictions:
        cells = [value for name, prob in p.top for value in (name, f"{prob:.6f}")]
        writer.writerow([p.path, *cells, *[""] * (2 * topk - len(cells)), p.error or ""])
    return text.getvalue()


def predictions_table(predictions: Sequence[Prediction]) -> str:
    """One readable line per image: its path and top-k classes with probabilities."""
    width = max(len(p.path) for p in predictions) + 1
    return "\n".join(
        f"{p.path + ':':<{width}}  "
        + ("  ".join(f"{name} {prob:.3f}" for name, prob in p.top) or f"(unreadable: {p.error})")
        for p in predictions
    )
