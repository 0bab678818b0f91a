"""PNG plots of a run: accuracy and loss curves, a prediction grid, a confusion matrix."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from attnlab.utils import new_figure


def plot_curves(history: list[dict], path: Path) -> Path:
    """Accuracy and loss per epoch, train vs val, side by side."""
    epochs = [row["epoch"] for row in history]
    fig = new_figure(10, 4)
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("acc", "loss")):
        ax.plot(epochs, [row[f"train_{metric}"] for row in history], label="train")
        ax.plot(epochs, [row[f"val_{metric}"] for row in history], label="val")
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=100)
    return path


def plot_confusion(confusion: torch.Tensor, classes: list[str], path: Path) -> Path:
    """Confusion matrix (rows: true class, columns: predicted), counts written in the cells for small sets."""
    n = len(classes)
    side = max(4, 0.45 * n + 2)
    fig = new_figure(side, side)
    ax = fig.subplots()
    ax.imshow(confusion.numpy(), cmap="Blues")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true", title="confusion matrix")
    ax.set_xticklabels(classes, rotation=90, fontsize=7)
    ax.set_yticklabels(classes, fontsize=7)
    if n <= 20:
        peak = confusion.max().item() or 1
        for i in range(n):
            for j in range(n):
                value = confusion[i, j].item()
                color = "white" if value > peak / 2 else "black"
                ax.text(j, i, value, ha="center", va="center", fontsize=6, color=color)
    fig.savefig(path, dpi=100)
    return path


def plot_predictions(
    images: torch.Tensor, true: list[int], predicted: list[int], classes: list[str], path: Path
) -> Path:
    """A grid of uint8 (N, 3, H, W) images titled 'predicted / true', wrong ones in red."""
    cols = 4
    rows = max(1, -(-len(images) // cols))
    fig = new_figure(cols * 2.2, rows * 2.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, t, p in zip(axes.flat, images, true, predicted):
        ax.imshow(image.permute(1, 2, 0).numpy())
        ax.set_title(f"{classes[p]} / {classes[t]}", fontsize=7, color="black" if p == t else "red")
    fig.suptitle("predicted / true", fontsize=9)
    fig.savefig(path, dpi=100)
    return path


@torch.no_grad()
def plot_run(
    run_dir: Path, history: list[dict], confusion: torch.Tensor, model: nn.Module, val_batches, classes: list[str]
) -> None:
    """A run's plots in ``run_dir``: curves.png, confusion.png (of the last evaluation), predictions.png (16
    validation images, titled predicted / true)."""
    plot_curves(history, run_dir / "curves.png")
    plot_confusion(confusion, classes, run_dir / "confusion.png")
    raw, labels = val_batches.sample(16)
    logits = model.eval()(val_batches.prepare(raw))
    plot_predictions(raw, labels.tolist(), logits.argmax(1).tolist(), classes, run_dir / "predictions.png")
