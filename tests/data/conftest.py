from pathlib import Path

import pytest
from data_helpers import COLORS, write_images


@pytest.fixture
def image_tree(tmp_path):
    """``make({'train': 4, 'test': 2})``: an ImageFolder tree of solid-colour PNGs, that many per class."""

    def make(splits: dict[str, int], classes: dict = COLORS, root: Path | None = None) -> Path:
        root = root or tmp_path / "data"
        for split, count in splits.items():
            for name, color in classes.items():
                write_images(root / split / name, color, count)
        return root

    return make
