"""PNG plots of a run: accuracy, loss and learning-rate curves, a prediction grid, a confusion matrix.

The prediction grid and the confusion matrix say in their titles which weights they show (e.g. "last checkpoint,
epoch 10 of 10"), since a run folder holds both a ``best`` and a ``last`` checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from attnlab.utils import new_figure


def checkpoint_label(path: str | Path, metadata: dict) -> str:
    """What a plot shows, e.g. 'best checkpoint, epoch 7 of 10' ('best.safetensors' and 'last.safetensors' by their
    role; other files by name)."""
    name = Path(path).name
    role = {"best.safetensors": "best checkpoint", "last.safetensors": "last checkpoint"}.get(name, name)
    epochs = metadata.get("config", {}).get("epochs")
    return f"{role}, epoch {metadata.get('epoch', '?')}" + (f" of {epochs}" if epochs else "")


def epoch_axis(ax, epochs: list[int]) -> None:
    """Whole epochs on the x axis: every epoch of a short run, whole numbers only on a long one."""
    from matplotlib.ticker import MaxNLocator

    if len(epochs) <= 20:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def loss_axis(ax, values: list[float]) -> bool:
    """A log-scale y axis (so one spike does not flatten the rest) with plain numbers as labels, when every value
    is positive; returns whether it is log."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    log = all(v > 0 for v in values)
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        narrow = max(values) < 10 * min(values)  # within one decade the powers of 10 alone leave no label
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g") if narrow else NullFormatter())
    return log


def plot_curves(history: list[dict], path: Path) -> Path:
    """Accuracy, loss (log scale, so one spike does not flatten the rest; linear if a loss is 0) and learning rate
    per epoch, train vs val, with whole-epoch ticks and the best validation epoch marked."""
    epochs = [row["epoch"] for row in history]
    best = max(history, key=lambda row: row["val_acc"])["epoch"]
    fig = new_figure(14, 4)
    axes = fig.subplots(1, 3)
    for ax, metric in zip(axes[:2], ("acc", "loss")):
        for split in ("train", "val"):
            ax.plot(epochs, [row[f"{split}_{metric}"] for row in history], label=split, marker=".")
        ax.axvline(best, color="gray", ls=":", label=f"best val acc (epoch {best})")
        ax.set(xlabel="epoch", ylabel=metric)
    axes[0].set_title("top-1 accuracy per epoch")
    log = loss_axis(axes[1], [row[f"{split}_loss"] for row in history for split in ("train", "val")])
    axes[1].set_title("loss per epoch" + " (log scale)" * log)
    axes[2].plot(epochs, [row["lr"] for row in history], marker=".", color="tab:green")
    axes[2].set(xlabel="epoch", ylabel="learning rate", title="learning rate (last step of each epoch)")
    axes[2].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in axes:
        epoch_axis(ax, epochs)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.savefig(path, dpi=100)
    return path


def plot_confusion(confusion: torch.Tensor, classes: list[str], path: Path, source: str = "") -> Path:
    """Confusion matrix (rows: true class, columns: predicted) coloured by the fraction of each true class, counts
    in the cells (up to 40 classes) in a font sized to the cell and a colour that contrasts with it (zeros in
    grey); ``source`` (e.g. :func:`checkpoint_label`) goes under the title."""
    n = len(classes)
    side = max(4, 0.45 * n + 2)
    fig = new_figure(side, side)
    ax = fig.subplots()
    fractions = (confusion.double() / confusion.sum(1, keepdim=True).clamp_min(1)).numpy()
    ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    title = "confusion matrix (colour: share of the true class)" + (f"\n{source}" if source else "")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted class", ylabel="true class")
    ax.set_title(title, fontsize=9)
    label_size = min(9, max(5, 120 / n))
    ax.set_xticklabels(classes, rotation=90, fontsize=label_size)
    ax.set_yticklabels(classes, fontsize=label_size)
    if n <= 40:
        cell_points = 72 * (side - 2) / n  # about the side of one cell on the page
        digits = len(str(confusion.max().item()))
        size = min(14, 0.45 * cell_points, cell_points / (0.65 * digits + 0.4))
        for i in range(n):
            for j in range(n):
                value = confusion[i, j].item()
                color = "white" if fractions[i, j] > 0.5 else "black" if value else "darkgray"
                ax.text(j, i, value, ha="center", va="center", fontsize=size, color=color)
    fig.savefig(path, dpi=100)
    return path


def plot_predictions(
    images: torch.Tensor, true: list[int], predicted: list[int], classes: list[str], path: Path, source: str = ""
) -> Path:
    """A grid of uint8 (N, 3, H, W) images titled 'predicted / true', wrong ones in red; ``source`` (e.g.
    :func:`checkpoint_label`) goes into the figure title."""
    cols = 4
    rows = max(1, -(-len(images) // cols))
    fig = new_figure(cols * 2.2, rows * 2.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, t, p in zip(axes.flat, images, true, predicted):
        ax.imshow(image.permute(1, 2, 0).numpy())
        ax.set_title(f"{classes[p]} / {classes[t]}", fontsize=7, color="black" if p == t else "red")
    fig.suptitle("predicted / true (wrong in red)" + (f": {source}" if source else ""), fontsize=9)
    fig.savefig(path, dpi=100)
    return path


@torch.no_grad()
def plot_run(
    run_dir: Path,
    history: list[dict],
    confusion: torch.Tensor,
    model: nn.Module,
    val_batches,
    classes: list[str],
    source: str,
) -> None:
    """A run's plots in ``run_dir``: curves.png, confusion.png (of the last evaluation), predictions.png (16
    validation images, titled predicted / true); ``source`` says which weights (e.g. 'last checkpoint, epoch 10
    of 10') and goes into the titles of the last two."""
    plot_curves(history, run_dir / "curves.png")
    plot_confusion(confusion, classes, run_dir / "confusion.png", source)
    raw, labels = val_batches.sample(16)
    logits = model.eval()(val_batches.prepare(raw))
    plot_predictions(raw, labels.tolist(), logits.argmax(1).tolist(), classes, run_dir / "predictions.png", source)
