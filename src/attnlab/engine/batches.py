"""From a training config (or a checkpoint's metadata) to the data layer's splits, preprocessing and batches."""

from __future__ import annotations

import torch

from attnlab.data import AUGMENTS, IMAGENET_MEAN, IMAGENET_STD, Batches, Preprocess, Splits, load_splits
from attnlab.engine.checkpoint import require_metadata
from attnlab.engine.config import TrainConfig
from attnlab.utils import check_int, check_positive_int


def splits_for(config: TrainConfig) -> Splits:
    """The config's data, listed and checked (images are decoded on first use); ``train``/``val`` trees replace
    ``data``."""
    data = None if config.train or config.val else config.data
    return load_splits(
        data,
        train=config.train,
        val=config.val,
        size=config.cache_size or config.img_size,
        fit=AUGMENTS[config.augment].fit,
        strict=config.strict,
        cache_dir=config.cache_dir,
        workers=config.workers,
    )


def preprocess_for(config: TrainConfig, splits: Splits) -> Preprocess:
    """The config's preprocessing; ``normalize: dataset`` measures the training images' channel mean and std, and
    ``hflip`` unset flips unless the data set is not mirror-invariant (digits)."""
    if config.normalize == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif config.normalize == "rescale":
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    else:
        mean, std = splits.train.channel_stats()
    hflip = splits.mirror_invariant if config.hflip is None else config.hflip
    return Preprocess(config.augment, config.img_size, config.cache_size or config.img_size, mean, std, hflip)


def train_val_batches(
    splits: Splits, preprocess: Preprocess, config: TrainConfig, rank: int, world_size: int, device: torch.device
) -> tuple[Batches, Batches]:
    """This process's training and validation batches."""
    common = dict(seed=config.seed, rank=rank, world_size=world_size, device=device)
    return (
        Batches(splits.train, preprocess, batch_size=config.batch_size, train=True, **common),
        Batches(splits.val, preprocess, batch_size=config.batch_size, train=False, **common),
    )


def eval_batches_for(
    metadata: dict,
    *,
    data: str | None,
    val: str | None,
    batch_size: int,
    workers: int = 0,
    device: torch.device | str = "cpu",
) -> Batches:
    """Validation batches of ``data`` (its val/test split) or of the tree ``val`` (neither: the validation data of
    the run), prepared as the checkpoint with ``metadata`` was evaluated during training; raises ValueError if the
    classes differ from the checkpoint's."""
    check_positive_int("--batch-size", batch_size)
    check_int("--workers", workers, 0)
    require_metadata(metadata, "preprocess", "classes")
    preprocess = Preprocess.from_dict(metadata["preprocess"])
    if not data and not val:
        trained_on = metadata.get("config", {})
        data, val = (None, trained_on["val"]) if trained_on.get("val") else (trained_on.get("data"), None)
    if not data and not val:
        raise ValueError(
            "say what to evaluate on: --data (digits, a folder with val/ or test/, CIFAR batches) or --val DIR"
        )
    splits = load_splits(data, val=val, size=preprocess.cache_size, fit=preprocess.fit, workers=workers)
    if splits.classes != metadata["classes"]:
        raise ValueError(
            f"the data's classes {splits.classes} differ from the checkpoint's {metadata['classes']}; "
            "evaluate on data with the same class folders"
        )
    return Batches(splits.val, preprocess, batch_size=batch_size, train=False, device=device)
