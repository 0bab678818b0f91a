"""Batched per-sample augmentation as tensor ops on CPU or CUDA (the GPU-side pipeline of Keller Jordan's
airbench, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", 2024), one policy per recipe.

Every policy turns a float batch (N, 3, S, S) in [0, 1], read from the uint8 cache, into a float batch
(N, 3, size, size) in [0, 1]. Random parameters come from a CPU ``torch.Generator``, so a batch's augmentation
depends only on the generator state, whatever the device; they reach the device by asynchronous copies
(:func:`to_device`), so augmenting a batch never makes the host wait for the GPU. Geometric transforms are one
``affine_grid`` + ``grid_sample`` per sample batch, mapping output coordinates to input coordinates in [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_device(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """CPU ``values`` in ``like``'s dtype on its device. The host-to-device copy is queued without waiting for the
    device (a plain ``.to`` from pageable memory synchronises the stream); the host buffer is staged at once, so it
    may be freed right after."""
    return values.to(device=like.device, dtype=like.dtype, non_blocking=True)


def uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """(n,) float32 samples of U(low, high) on the CPU."""
    return low + (high - low) * torch.rand(n, generator=generator)


def flip_signs(n: int, generator: torch.Generator, hflip: bool) -> torch.Tensor:
    """(n,) x-axis signs: -1 (a horizontal flip) with probability 1/2 each when ``hflip``, else all +1."""
    signs = torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1
    return signs if hflip else torch.ones(n)


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """(n,) radians -> (n, 2, 2) rotation matrices."""
    cos, sin = angles.cos(), angles.sin()
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


def affine_sample(
    images: torch.Tensor,
    linear: torch.Tensor,
    shift: torch.Tensor,
    size: int,
    *,
    padding: str = "zeros",
    mode: str = "bilinear",
) -> torch.Tensor:
    """Sample (N, 3, size, size) from ``images`` (N, 3, H, W) at ``linear @ p + shift`` for each output point p.

    ``linear`` is (N, 2, 2) and ``shift`` (N, 2), both in normalised coordinates (-1 and 1 are the image edges);
    ``padding`` is grid_sample's fill outside the input: 'zeros', 'border' (Keras' 'nearest') or 'reflection'.
    """
    theta = to_device(torch.cat([linear, shift[:, :, None]], 2), images)
    grid = F.affine_grid(theta, [len(images), 3, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode=padding, align_corners=False)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 3, size, size), bilinear with antialiasing (no-op when the size already matches)."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def center_crop(images: torch.Tensor, fraction: float) -> torch.Tensor:
    """The central ``fraction`` of each side of an (N, 3, H, W) batch (e.g. 224/256)."""
    height, width = images.shape[-2:]
    crop_h, crop_w = round(height * fraction), round(width * fraction)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return images[..., top : top + crop_h, left : left + crop_w]


def random_resized_crop(
    images: torch.Tensor,
    size: int,
    scale: tuple[float, float],
    generator: torch.Generator,
    hflip: bool,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """torchvision's RandomResizedCrop (+ RandomHorizontalFlip when ``hflip``) per sample: a crop of area
    ``scale`` x the image's and aspect ratio in ``ratio`` (log-uniform), resized to ``size``. Crops that would not
    fit are clamped to the image side (torchvision retries, then falls back to a central crop)."""
    n = len(images)
    area = uniform(n, *scale, generator)
    log_ratio = uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator)
    width = (area * log_ratio.exp()).sqrt().clamp(max=1)
    height = (area / log_ratio.exp()).sqrt().clamp(max=1)
    center_x = uniform(n, -1, 1, generator) * (1 - width)
    center_y = uniform(n, -1, 1, generator) * (1 - height)
    linear = torch.zeros(n, 2, 2)
    linear[:, 0, 0] = width * flip_signs(n, generator, hflip)
    linear[:, 1, 1] = height
    return affine_sample(images, linear, torch.stack([center_x, center_y], 1), size)


def random_rotation(images: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each sample by U(-degrees, degrees) about its centre, black fill (torchvision's RandomRotation)."""
    n = len(images)
    angles = uniform(n, -degrees, degrees, generator).deg2rad()
    return affine_sample(images, rotation_matrices(angles), torch.zeros(n, 2), images.shape[-1])


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma with the ITU-R 601 weights torchvision uses."""
    weights = to_device(torch.tensor([0.299, 0.587, 0.114]), images)
    return (images * weights[:, None, None]).sum(1, keepdim=True)


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N,) -> (N, 1, 1, 1) on ``like``'s device, for broadcasting over a batch."""
    return to_device(values, like)[:, None, None, None]


def color_jitter(
    images: torch.Tensor, brightness: float, contrast: float, saturation: float, generator: torch.Generator
) -> torch.Tensor:
    """torchvision's ColorJitter per sample (factors U(1 - x, 1 + x)), in the fixed order brightness, contrast,
    saturation (torchvision shuffles the order per call)."""
    n = len(images)
    images = (images * per_sample(uniform(n, 1 - brightness, 1 + brightness, generator), images)).clamp(0, 1)
    mean = grayscale(images).mean((1, 2, 3), keepdim=True)
    factor = per_sample(uniform(n, 1 - contrast, 1 + contrast, generator), images)
    images = (factor * images + (1 - factor) * mean).clamp(0, 1)
    factor = per_sample(uniform(n, 1 - saturation, 1 + saturation, generator), images)
    return (factor * images + (1 - factor) * grayscale(images)).clamp(0, 1)


# ------------------------------------------------------------------------------------------------ the policies


def keras_augment(images: torch.Tensor, size: int, generator: torch.Generator, hflip: bool) -> torch.Tensor:
    """Keras ImageDataGenerator(rotation_range=20, width_shift_range=0.1, height_shift_range=0.1, shear_range=10,
    zoom_range=0.1, horizontal_flip=True, brightness_range=(0.7, 1.3), fill_mode='nearest'): one affine per sample
    (rotation, shift, shear and independent x/y zoom as in ``apply_affine_transform``), then brightness."""
    n = len(images)
    rotation = rotation_matrices(uniform(n, -20, 20, generator).deg2rad())
    shear_angle = uniform(n, -10, 10, generator).deg2rad()
    shear = torch.zeros(n, 2, 2)
    shear[:, 0, 0], shear[:, 0, 1], shear[:, 1, 1] = 1, -shear_angle.sin(), shear_angle.cos()
    zoom = torch.diag_embed(torch.stack([uniform(n, 0.9, 1.1, generator), uniform(n, 0.9, 1.1, generator)], 1))
    flip = torch.diag_embed(torch.stack([flip_signs(n, generator, hflip), torch.ones(n)], 1))
    shift = 2 * uniform(2 * n, -0.1, 0.1, generator).view(n, 2)  # a fraction of the side; [-1, 1] spans 2
    images = affine_sample(images, rotation @ shear @ zoom @ flip, shift, size, padding="border")
    return (images * per_sample(uniform(n, 0.7, 1.3, generator), images)).clamp(0, 1)


def paddle_augment(images: torch.Tensor, size: int, generator: torch.Generator, hflip: bool) -> torch.Tensor:
    """The PaddlePaddle AlexNet-ECA pipeline after Resize(130): RandomResizedCrop(128, scale=(0.6, 1)),
    ColorJitter(0.2, 0.2, 0.2), RandomHorizontalFlip, RandomRotation(20)."""
    images = random_resized_crop(images, size, (0.6, 1.0), generator, hflip)
    images = color_jitter(images, 0.2, 0.2, 0.2, generator)
    return random_rotation(images, 20, generator)


def imagenet_augment(images: torch.Tensor, size: int, generator: torch.Generator, hflip: bool) -> torch.Tensor:
    """The SE/ECA papers' ImageNet training crop: RandomResizedCrop(size, scale=(0.08, 1)) + horizontal flip."""
    return random_resized_crop(images, size, (0.08, 1.0), generator, hflip)


def fast_augment(images: torch.Tensor, size: int, generator: torch.Generator, hflip: bool) -> torch.Tensor:
    """Random crop with size/8 pixels of reflection padding (4 px at 32) + horizontal flip: whole-pixel
    translations, sampled with 'nearest' so pixels are copied, not interpolated."""
    images = resize(images, size)
    n, pad = len(images), size // 8
    shift = torch.randint(-pad, pad + 1, (n, 2), generator=generator).float() * (2 / size)
    flip = torch.diag_embed(torch.stack([flip_signs(n, generator, hflip), torch.ones(n)], 1))
    return affine_sample(images, flip, shift, size, padding="reflection", mode="nearest")


def no_augment(images: torch.Tensor, size: int, generator: torch.Generator, hflip: bool) -> torch.Tensor:
    """Only resize to ``size`` (the EPSANet CIFAR seed trains on resized images)."""
    return resize(images, size)


@dataclass(frozen=True)
class Augment:
    """A named policy: how decoded images become the square cache (``fit``: 'squash' resizes the whole image,
    as Keras' target_size does; 'crop' resizes the short side and keeps the central square), the training
    transform, and whether evaluation center-crops img_size/cache_size of the cache ('resize 256, crop 224')."""

    fit: str
    train: Callable[[torch.Tensor, int, torch.Generator, bool], torch.Tensor]
    eval_crop: bool


AUGMENTS: dict[str, Augment] = {
    "keras": Augment("squash", keras_augment, eval_crop=False),
    "paddle": Augment("crop", paddle_augment, eval_crop=True),
    "imagenet": Augment("crop", imagenet_augment, eval_crop=True),
    "fast": Augment("crop", fast_augment, eval_crop=False),
    "resize": Augment("squash", no_augment, eval_crop=False),
}


@dataclass(frozen=True)
class Preprocess:
    """Cache (uint8, cache_size) -> model input (float, img_size, normalised): stored in every checkpoint so
    ``eval`` and ``predict`` prepare images exactly as training evaluated them."""

    augment: str
    img_size: int
    cache_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    hflip: bool = True

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")

    @property
    def fit(self) -> str:
        return AUGMENTS[self.augment].fit

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        mean = to_device(torch.tensor(self.mean), images)[:, None, None]
        std = to_device(torch.tensor(self.std), images)[:, None, None]
        return (images - mean) / std

    def train(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """uint8 (N, 3, cache_size, cache_size) -> augmented, normalised float (N, 3, img_size, img_size)."""
        augment = AUGMENTS[self.augment].train
        return self.normalize(augment(images.float() / 255, self.img_size, generator, self.hflip))

    def eval(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, cache_size, cache_size) -> normalised float (N, 3, img_size, img_size), no randomness."""
        images = images.float() / 255
        if AUGMENTS[self.augment].eval_crop and self.img_size < images.shape[-1]:
            images = center_crop(images, self.img_size / images.shape[-1])
        return self.normalize(resize(images, self.img_size))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Preprocess:
        return cls(**{**values, "mean": tuple(values["mean"]), "std": tuple(values["std"])})
