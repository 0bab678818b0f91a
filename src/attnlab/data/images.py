"""Decoding images once into a uint8 cache, skipping broken files, with an optional on-disk copy.

An :class:`ImageSet` is one split: int64 labels plus uint8 (3, size, size) squares, decoded on first use. It holds
them in memory when they fit in ``max_cache_bytes``; otherwise each batch is decoded again by DataLoader
workers (large data such as ImageNet). Unreadable, truncated and non-image files are skipped with a warning and
counted, or raise at once with ``strict``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset

from attnlab.utils import atomic_write, check_writable_folder, progress_bar

DEFAULT_MAX_CACHE_BYTES = 8 * 2**30
CACHE_FORMAT = 1  # bump when the cached pixels would change for the same files


def read_image(path: str | Path, size: int, fit: str) -> torch.Tensor:
    """An image file as uint8 (3, size, size): 'squash' resizes the whole image, 'crop' resizes the short side to
    ``size`` and keeps the central square. Raises OSError/ValueError for unreadable or truncated files."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEG: let libjpeg decode at a reduced scale when it can
        image = image.convert("RGB")
    if fit == "crop":
        scale = size / min(image.size)
        width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((width, height), Image.BILINEAR)
        left, top = (width - size) // 2, (height - size) // 2
        image = image.crop((left, top, left + size, top + size))
    else:
        image = image.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous()


UNREADABLE_IMAGE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def read_image_files(paths: list[str | Path], size: int, fit: str) -> torch.Tensor:
    """uint8 (N, 3, size, size) of image files (see :func:`read_image`); ValueError naming the first file that
    is missing, unreadable or too large to decode safely."""
    images = []
    for path in paths:
        try:
            images.append(read_image(path, size, fit))
        except Image.DecompressionBombError as err:
            raise ValueError(f"cannot read image {path}: it is too large to decode safely ({err})") from None
        except UNREADABLE_IMAGE as err:
            raise ValueError(f"cannot read image {path} ({type(err).__name__}: {err})") from None
    return torch.stack(images)


def resize_array(images: torch.Tensor, size: int, fit: str) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8 (N, 3, size, size) with the same ``fit`` as :func:`read_image`."""
    height, width = images.shape[-2:]
    if fit == "crop" and height != width:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        images = images[..., top : top + side, left : left + side]
    if images.shape[-2:] == (size, size):
        return images.contiguous()
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)


@dataclass
class FileSource:
    """Image files with their labels (an ImageFolder split)."""

    folder: Path
    files: list[Path]
    labels: list[int]


@dataclass
class ArraySource:
    """Images already in memory as uint8 (N, 3, H, W) with (N,) labels (CIFAR batches, digits)."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor


class DecodedFiles(Dataset):
    """``files[i]`` decoded to uint8 (3, size, size) -> (i, image), or (i, error message) when it cannot be read."""

    def __init__(self, files: list[Path], size: int, fit: str):
        self.files, self.size, self.fit = files, size, fit

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | str]:
        try:
            return index, read_image(self.files[index], self.size, self.fit)
        except UNREADABLE_IMAGE as err:
            return index, f"{type(err).__name__}: {err}"


def as_list(batch: list) -> list:
    return batch


class ImageSet:
    """One split: ``labels`` (N,) int64 and ``images(indices)`` -> uint8 (B, 3, size, size), decoded on first use.

    ``skipped`` lists (file, reason) for each file that could not be decoded; ``in_memory`` says whether the
    decoded images are cached (the size fits ``max_cache_bytes``) or decoded again per batch.
    """

    def __init__(
        self,
        source: FileSource | ArraySource,
        classes: list[str],
        size: int,
        fit: str,
        *,
        strict: bool = False,
        cache_dir: str | Path | None = None,
        workers: int = 0,
        max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES,
    ):
        self.source, self.classes, self.size, self.fit = source, classes, size, fit
        self.strict, self.workers, self.max_cache_bytes = strict, workers, max_cache_bytes
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.skipped: list[tuple[str, str]] = []

    @property
    def name(self) -> str:
        return str(self.source.folder if isinstance(self.source, FileSource) else self.source.name)

    @property
    def in_memory(self) -> bool:
        return 3 * self.size**2 * len(self.source.labels) <= self.max_cache_bytes

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def labels(self) -> torch.Tensor:
        if self.in_memory:
            return self.cache[1]
        return torch.as_tensor(self.source.labels, dtype=torch.int64)

    @cached_property
    def cache(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images uint8 (N, 3, size, size), labels (N,)) of everything decodable, from disk when cached there."""
        if isinstance(self.source, ArraySource):
            chunks = [resize_array(chunk, self.size, self.fit) for chunk in self.source.images.split(1024)]
            return torch.cat(chunks), self.source.labels
        path = None
        if self.cache_dir:
            check_writable_folder(self.cache_dir, "--cache-dir")
            path = self.cache_dir / f"{self.cache_key()}.safetensors"
        if path is not None and path.is_file():
            try:
                with safe_open(str(path), framework="pt") as f:
                    skipped = [tuple(item) for item in json.loads(f.metadata()["skipped"])]
                    images, labels = f.get_tensor("images"), f.get_tensor("labels")
                self.skipped = skipped
                self.report_skipped()
                return images, labels
            except (SafetensorError, KeyError, TypeError, ValueError) as err:  # a truncated or foreign file
                warnings.warn(f"the image cache {path} is unreadable ({err}); decoding the images again", stacklevel=2)
        images = torch.empty(len(self.source.files), 3, self.size, self.size, dtype=torch.uint8)
        kept = torch.zeros(len(self.source.files), dtype=torch.bool)
        loader = DataLoader(
            DecodedFiles(self.source.files, self.size, self.fit),
            batch_size=32,
            num_workers=min(self.workers, len(self.source.files) // 32),  # a handful of files: no worker start-up
            collate_fn=as_list,
        )
        for batch in progress_bar(loader, desc=f"decoding {self.source.folder.name}", total=len(loader)):
            for index, image in batch:
                if isinstance(image, str):
                    self.skip(index, image)
                else:
                    images[index], kept[index] = image, True
        labels = torch.tensor(self.source.labels, dtype=torch.int64)[kept]
        images = images[kept]
        self.report_skipped()
        self.check_classes_present(labels)
        if path is not None:
            metadata = {"skipped": json.dumps(self.skipped)}
            atomic_write(path, lambda tmp: save_file({"images": images, "labels": labels}, tmp, metadata=metadata))
        return images, labels

    def cache_key(self) -> str:
        """A hash of the file list (paths, sizes, modification times), the image size and the fit."""
        files = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in self.source.files]
        text = json.dumps([CACHE_FORMAT, self.size, self.fit, self.source.labels, files])
        return f"{self.source.folder.name}-{self.size}px-{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    def skip(self, index: int, reason: str) -> None:
        file = str(self.source.files[index])
        if self.strict:
            raise ValueError(
                f"cannot read image {file} ({reason}); remove or fix it, or train without --strict "
                "to skip unreadable files"
            )
        self.skipped.append((file, reason))

    def report_skipped(self) -> None:
        if self.skipped:
            examples = "; ".join(f"{file} ({reason})" for file, reason in self.skipped[:3])
            warnings.warn(
                f"skipped {len(self.skipped)} of {len(self.source.files)} files in {self.name} that are not "
                f"readable images: {examples}{' ...' if len(self.skipped) > 3 else ''}",
                stacklevel=2,
            )

    def check_classes_present(self, labels: torch.Tensor) -> None:
        counts = torch.bincount(labels, minlength=len(self.classes))
        empty = [self.classes[i] for i in range(len(self.classes)) if counts[i] == 0]
        if empty:
            raise ValueError(
                f"class folder(s) {', '.join(str(Path(self.name) / c) for c in empty)} have no readable "
                "images; add images or remove the folder"
            )

    def images(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 (B, 3, size, size), labels (B,)) at ``indices`` (in-memory sets only)."""
        images, labels = self.cache
        return images[indices], labels[indices]

    def stream(self, index_batches: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Iterate (uint8 images, labels) for each index batch, resizing arrays per batch, or decoding files in
        DataLoader workers and dropping (with a warning) those that cannot be read."""
        if isinstance(self.source, ArraySource):
            for indices in index_batches:
                yield resize_array(self.source.images[indices], self.size, self.fit), self.source.labels[indices]
            return
        loader = DataLoader(
            DecodedFiles(self.source.files, self.size, self.fit),
            batch_sampler=[batch.tolist() for batch in index_batches],
            num_workers=self.workers,
            collate_fn=as_list,
        )
        for batch in loader:
            good = []
            for index, image in batch:
                if isinstance(image, str):
                    self.skip(index, image)
                    warnings.warn(f"skipped unreadable image {self.source.files[index]} ({image})", stacklevel=2)
                else:
                    good.append((index, image))
            if good:
                yield torch.stack([image for _, image in good]), self.labels[[index for index, _ in good]]

    def channel_stats(self, max_images: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std in [0, 1] over up to ``max_images`` evenly spaced images."""
        indices = torch.linspace(0, len(self) - 1, min(len(self), max_images)).long()
        if self.in_memory:
            images = self.images(indices)[0]
        else:
            images = torch.cat([batch for batch, _ in self.stream(list(indices.split(256)))])
        pixels = images.permute(1, 0, 2, 3).reshape(3, -1).double() / 255
        return tuple(pixels.mean(1).tolist()), tuple(pixels.std(1).clamp_min(1e-3).tolist())
