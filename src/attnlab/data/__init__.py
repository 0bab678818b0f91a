"""Data for training and evaluation: ImageFolder trees, CIFAR python batches and the embedded digits, decoded
once into a uint8 cache, batched and augmented on the device.

``load_splits('digits', size=32)`` -> :class:`Splits` (classes, train and val :class:`ImageSet`);
:class:`Batches` iterates one split for one process with a :class:`Preprocess` policy (see ``AUGMENTS``).
"""

from attnlab.data.augment import AUGMENTS, IMAGENET_MEAN, IMAGENET_STD, Augment, Preprocess
from attnlab.data.formats import Splits, load_splits, read_cifar_batch
from attnlab.data.images import ImageSet, read_image, read_image_files
from attnlab.data.loader import Batches, epoch_generator

__all__ = [
    "AUGMENTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Augment",
    "Batches",
    "ImageSet",
    "Preprocess",
    "Splits",
    "epoch_generator",
    "load_splits",
    "read_cifar_batch",
    "read_image",
    "read_image_files",
]
