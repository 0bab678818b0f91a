"""Small image trees for the data tests."""

from pathlib import Path

from PIL import Image

# One solid colour per class, so a cached pixel tells which file it came from.
COLORS = {"cat": (255, 0, 0), "dog": (0, 255, 0), "owl": (0, 0, 255)}


def write_images(folder: Path, color: tuple[int, int, int], count: int, size: tuple[int, int] = (12, 10)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", size, color).save(folder / f"img{i}.png")
