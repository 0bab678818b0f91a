import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from attnlab.data import AUGMENTS, IMAGENET_MEAN, IMAGENET_STD, Preprocess
from attnlab.data.augment import affine_sample, color_jitter, fast_augment, random_resized_crop


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def noise(n=4, size=16):
    return torch.rand(n, 3, size, size, generator=generator(1))


def test_identity_affine_copies_pixels():
    images = noise()
    out = affine_sample(images, torch.eye(2).expand(4, 2, 2), torch.zeros(4, 2), 16)
    torch.testing.assert_close(out, images)


def test_full_crop_without_flip_is_the_identity():
    images = noise()
    out = random_resized_crop(images, 16, (1.0, 1.0), generator(), hflip=False, ratio=(1.0, 1.0))
    torch.testing.assert_close(out, images)


def shifted(image, dx, dy):
    """image (3, S, S) moved right by dx and down by dy pixels (the uncovered border left as NaN)."""
    out = torch.full_like(image, float("nan"))
    size = image.shape[-1]
    out[:, max(dy, 0) : size + min(dy, 0), max(dx, 0) : size + min(dx, 0)] = image[
        :, max(-dy, 0) : size + min(-dy, 0), max(-dx, 0) : size + min(-dx, 0)
    ]
    return out


@pytest.mark.parametrize("hflip", [False, True])
def test_fast_is_a_whole_pixel_shift_and_flip(hflip):
    images = noise(n=16)
    out = fast_augment(images, 16, generator(), hflip)
    flips = 0
    for image, result in zip(images, out):
        candidates = [(image, False)] + ([(image.flip(-1), True)] if hflip else [])
        matches = [
            flipped
            for source, flipped in candidates
            for dx in range(-2, 3)
            for dy in range(-2, 3)
            if torch.equal(torch.where(shifted(source, dx, dy).isnan(), result, shifted(source, dx, dy)), result)
        ]
        assert matches, "output is not a shifted copy of its input"
        flips += matches[0]
    assert (flips > 0) == hflip  # 16 fair coin flips all heads: probability 2**-16


def test_keras_geometry_keeps_constant_images_and_brightness_stays_in_range():
    images = torch.full((32, 3, 8, 8), 128, dtype=torch.uint8)
    out = Preprocess("keras", 8, 8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)).train(images, generator())
    per_image = out.flatten(1)
    # 'nearest' (border) fill: no black corners, one brightness factor U(0.7, 1.3) per image
    torch.testing.assert_close(per_image.amin(1), per_image.amax(1))
    factors = per_image[:, 0] / (128 / 255)
    assert factors.min() >= 0.7 and factors.max() <= 1.3 and factors.std() > 0.05


def test_paddle_rotation_fills_black_corners():
    images = torch.full((16, 3, 16, 16), 255, dtype=torch.uint8)
    out = Preprocess("paddle", 16, 16, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)).train(images, generator())
    assert (out[:, :, 0, 0] == 0).any()  # a rotated corner
    assert (out[:, :, 8, 8] > 0.5).all()  # the centre always stays image


def test_color_jitter_factors_of_a_grey_image():
    grey = torch.full((64, 3, 4, 4), 0.5)
    out = color_jitter(grey, 0.2, 0.0, 0.0, generator())
    # saturation and contrast leave a flat grey image as it is; brightness scales it by U(0.8, 1.2)
    assert out.amin() >= 0.4 - 1e-6 and out.amax() <= 0.6 + 1e-6
    torch.testing.assert_close(out[:, 0], out[:, 2])


def test_same_generator_state_same_augmentation():
    images = (noise() * 255).to(torch.uint8)
    for name in AUGMENTS:
        preprocess = Preprocess(name, 12, 16, IMAGENET_MEAN, IMAGENET_STD)
        first, again = preprocess.train(images, generator(3)), preprocess.train(images, generator(3))
        assert first.shape == (4, 3, 12, 12) and torch.equal(first, again)


def test_eval_center_crop_and_normalisation():
    cache = torch.arange(8 * 8, dtype=torch.uint8).view(1, 1, 8, 8).expand(1, 3, 8, 8)
    resize_256_crop_224 = Preprocess("imagenet", 4, 8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    torch.testing.assert_close(resize_256_crop_224.eval(cache), cache[..., 2:6, 2:6].float() / 255)
    rescale = Preprocess("keras", 8, 8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    torch.testing.assert_close(rescale.eval(cache), cache.float() / 255)
    imagenet = Preprocess("resize", 8, 8, IMAGENET_MEAN, IMAGENET_STD)
    expected = (cache[0, 0, 1, 2] / 255 - IMAGENET_MEAN[1]) / IMAGENET_STD[1]
    assert math.isclose(imagenet.eval(cache)[0, 1, 1, 2].item(), expected.item(), rel_tol=1e-6)


def test_preprocess_round_trip_and_unknown_policy():
    preprocess = Preprocess("fast", 32, 40, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), hflip=False)
    assert Preprocess.from_dict(preprocess.to_dict()) == preprocess
    with pytest.raises(ValueError, match="augment must be one of keras, paddle, imagenet, fast, resize, got 'autoaug'"):
        Preprocess("autoaug", 32, 32, (0.0,) * 3, (1.0,) * 3)


class CrossDeviceCopies(TorchDispatchMode):
    """Records whether each copy between devices was asked for with non_blocking (a blocking host-to-GPU copy
    from pageable memory makes the host wait for the GPU)."""

    def __init__(self):
        super().__init__()
        self.non_blocking = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is torch.ops.aten._to_copy.default and args[0].device != out.device:
            self.non_blocking.append(bool(kwargs.get("non_blocking")))
        return out


@pytest.mark.parametrize("augment", sorted(AUGMENTS))
def test_augmentation_never_makes_the_host_wait_for_the_device(augment):
    preprocess = Preprocess(augment, 16, 20, IMAGENET_MEAN, IMAGENET_STD)
    images = torch.zeros(4, 3, 20, 20, dtype=torch.uint8, device="meta")  # another device, without a GPU
    with CrossDeviceCopies() as copies:
        assert preprocess.train(images, generator()).shape == (4, 3, 16, 16)
        preprocess.eval(images)
    assert copies.non_blocking and all(copies.non_blocking)
