from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# One solid colour per class, so a cached pixel tells which file it came from.
COLORS = {"cat": (255, 0, 0), "dog": (0, 255, 0), "owl": (0, 0, 255)}


def write_images(folder: Path, color: tuple[int, int, int], count: int, size: tuple[int, int] = (12, 10)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", size, color).save(folder / f"img{i}.png")


@pytest.fixture
def image_tree(tmp_path):
    """``make(splits={'train': 4, 'test': 2}, classes=COLORS)``: an ImageFolder tree of solid-colour PNGs."""

    def make(splits: dict[str, int] | None = None, classes: dict = COLORS, root: Path | None = None) -> Path:
        root = root or tmp_path / "data"
        for split, count in (splits or {"train": 4, "test": 2}).items():
            for name, color in classes.items():
                write_images(root / split / name, color, count)
        return root

    return make


@pytest.fixture
def noise_image():
    return np.random.default_rng(0).integers(0, 256, (3, 16, 16), dtype=np.uint8)
