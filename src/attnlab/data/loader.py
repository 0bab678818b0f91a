"""Batches of one split for one process: order, sharding over DDP processes, augmentation on the device."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from attnlab.data.augment import Preprocess
from attnlab.data.images import ImageSet


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator that depends only on (seed, epoch, stream): an epoch replays exactly after a resume."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_009 + stream)


class Batches:
    """Normalised float (B, 3, img_size, img_size) images and int64 (B,) labels of ``images`` for process
    ``rank`` of ``world_size``, ``len()`` batches per epoch.

    Training (``train=True``): the order is a permutation drawn from ``epoch_generator(seed, epoch)``, the same
    in every process; each global batch of ``batch_size`` is split into ``world_size`` equal parts, and a last
    incomplete batch is dropped (it would leave BatchNorm a handful of samples). Augmentation draws from a
    generator seeded by (seed, epoch, rank). Evaluation: the fixed order, process ``rank`` takes every
    ``world_size``-th image, so the per-process sums of a metric add up to the exact total.
    """

    def __init__(
        self,
        images: ImageSet,
        preprocess: Preprocess,
        *,
        batch_size: int,
        train: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ):
        if train and batch_size % world_size:
            raise ValueError(
                f"batch_size {batch_size} must be divisible by the number of processes ({world_size}); "
                f"use --batch-size {batch_size - batch_size % world_size or world_size}"
            )
        self.images, self.preprocess, self.batch_size, self.train = images, preprocess, batch_size, train
        self.seed, self.rank, self.world_size, self.device = seed, rank, world_size, torch.device(device)
        self.on_device = None

    def __len__(self) -> int:
        if self.train:
            return max(1, len(self.images) // self.batch_size)
        return -(-len(self.index_shard()) // self.batch_size)

    def index_shard(self) -> torch.Tensor:
        return torch.arange(self.rank, len(self.images), self.world_size)

    def index_batches(self, epoch: int) -> list[torch.Tensor]:
        """This process's indices of each batch of ``epoch``."""
        if not self.train:
            return list(self.index_shard().split(self.batch_size))
        order = torch.randperm(len(self.images), generator=epoch_generator(self.seed, epoch))
        batches = order.split(self.batch_size)
        if len(batches) > 1 and len(batches[-1]) < self.batch_size:
            batches = batches[:-1]
        return [batch.tensor_split(self.world_size)[self.rank] for batch in batches]

    def raw_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """uint8 (B, 3, S, S) and labels on the device. An in-memory cache moves to the GPU once (as airbench does)."""
        index_batches = self.index_batches(epoch)
        if not self.images.in_memory:
            for images, labels in self.images.stream(index_batches):
                yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
            return
        if self.on_device is None:
            self.on_device = tuple(t.to(self.device) for t in self.images.cache)
        images, labels = self.on_device
        for indices in index_batches:
            indices = indices.to(self.device, non_blocking=True)  # an async copy: no wait for the GPU per batch
            yield images[indices], labels[indices]

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The (images, labels) batches of ``epoch``, augmented when training."""
        generator = epoch_generator(self.seed, epoch, stream=1 + self.rank)
        for images, labels in self.raw_batches(epoch):
            yield (self.preprocess.train(images, generator) if self.train else self.preprocess.eval(images)), labels

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` evenly spaced uint8 images (N, 3, S, S) and their labels, on the CPU (for a prediction grid)."""
        indices = torch.linspace(0, len(self.images) - 1, min(n, len(self.images))).long()
        if self.images.in_memory:
            return self.images.images(indices)
        return next(self.images.stream([indices]))

    def prepare(self, raw: torch.Tensor) -> torch.Tensor:
        """uint8 images from :meth:`sample` -> the model's evaluation input on the device."""
        return self.preprocess.eval(raw.to(self.device))
