"""The excitation study of Hu, Shen, Sun, "Squeeze-and-Excitation Networks" (CVPR 2018, Section 7.2 / Fig. 6):
mean gate activation per channel for a few classes and over all classes, block by block.

The paper finds the gates class-agnostic in early blocks, class-specific in later ones, and saturated (near 1)
in the last stage. Per block we report two numbers for that: *class specificity*, the mean over channels of the
standard deviation across classes of the class-mean gate value, and *saturation*, the mean gate value.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attnlab.analysis.gates import last_block_per_stage, record_gates
from attnlab.utils import new_figure


@dataclass
class BlockExcitation:
    """Gate statistics of one attention block over the analysed images.

    ``counts`` (K,) images per class; ``mean`` / ``std`` (K, F) per-class mean and within-class (population) std
    of each of the block's F gate values (channels); ``overall_mean`` / ``overall_std`` (F,) over all images.
    """

    path: str
    stage: int | None
    counts: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    overall_mean: torch.Tensor
    overall_std: torch.Tensor

    @property
    def specificity(self) -> float:
        """Mean over channels of the std across classes (with images) of the class means."""
        seen = self.counts > 0
        if seen.sum() < 2:
            return 0.0
        return self.mean[seen].std(0, correction=0).mean().item()

    @property
    def saturation(self) -> float:
        """Mean gate value over all images and channels."""
        return self.overall_mean.mean().item()

    @property
    def within_class_std(self) -> float:
        """Mean over classes (with images) and channels of the within-class std: the scale of image-to-image noise
        that ``specificity`` should be read against."""
        return self.std[self.counts > 0].mean().item()

    def summary(self) -> dict:
        return {
            "block": self.path,
            "stage": self.stage,
            "channels": self.mean.shape[1],
            "images": int(self.counts.sum()),
            "class_specificity": self.specificity,
            "within_class_std": self.within_class_std,
            "saturation": self.saturation,
        }


@torch.no_grad()
def excitation_statistics(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    blocks: Sequence[str],
    stages: dict[str, int] | None = None,
    images_per_class: int = 50,
    device: str | torch.device = "cpu",
) -> list[BlockExcitation]:
    """Gate statistics of the attention modules at ``blocks`` over at most ``images_per_class`` images of each
    class from ``batches`` of (images (N, 3, H, W), labels (N,)); stops reading once every class is full."""
    if images_per_class < 1:
        raise ValueError(f"images_per_class must be >= 1, got {images_per_class}")
    model.eval()
    counts = torch.zeros(num_classes, dtype=torch.int64)
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    with record_gates(model, blocks) as records:
        for images, labels in batches:
            labels = labels.cpu()
            keep = torch.zeros(len(labels), dtype=torch.bool)
            for i, label in enumerate(labels.tolist()):
                if counts[label] < images_per_class:
                    keep[i] = True
                    counts[label] += 1
            if keep.any():
                model(images[keep.to(images.device)].to(device))
                for path in blocks:
                    values = torch.cat(records[path], dim=1).double().cpu()  # (n, F)
                    records[path].clear()
                    if path not in sums:
                        sums[path] = torch.zeros(num_classes, values.shape[1], dtype=torch.float64)
                        squares[path] = torch.zeros_like(sums[path])
                    sums[path].index_add_(0, labels[keep], values)
                    squares[path].index_add_(0, labels[keep], values.square())
            if (counts >= images_per_class).all():
                break
    if counts.sum() == 0:
        raise ValueError("no images to analyse: the data gave no batches")
    results = []
    for path in blocks:
        n = counts.clamp_min(1).double()[:, None]
        mean = sums[path] / n
        std = (squares[path] / n - mean.square()).clamp_min(0).sqrt()
        total = counts.sum().double()
        overall_mean = sums[path].sum(0) / total
        overall_std = (squares[path].sum(0) / total - overall_mean.square()).clamp_min(0).sqrt()
        results.append(
            BlockExcitation(
                path,
                (stages or {}).get(path),
                counts.clone(),
                mean.float(),
                std.float(),
                overall_mean.float(),
                overall_std.float(),
            )
        )
    return results


def sample_channels(num_channels: int, num_samples: int) -> list[int]:
    """``num_samples`` channel indices spaced uniformly over 0..num_channels-1 (all when there are fewer)."""
    if num_samples < 1:
        raise ValueError(f"the number of channels to show must be >= 1, got {num_samples}")
    if num_channels <= num_samples:
        return list(range(num_channels))
    return torch.linspace(0, num_channels - 1, num_samples).round().long().tolist()


def default_classes(num_classes: int, count: int = 4) -> list[int]:
    """``count`` class indices spread evenly over the class list (the SENet figure shows 4 classes)."""
    return sorted(set(torch.linspace(0, num_classes - 1, min(count, num_classes)).round().long().tolist()))


def write_excitation_report(
    blocks: Sequence[BlockExcitation], class_names: Sequence[str], chosen: Sequence[int], channels: int, out: str | Path
) -> dict:
    """Write ``activations.csv`` (block, stage, channel, class, images, mean, std on the sampled channels, for the
    ``chosen`` classes and 'all'), ``activations.png`` (one panel per block) and ``activations.json`` (the
    per-block summary); return the JSON dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "activations.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["block", "stage", "channel", "class", "images", "mean", "std"])
        for block in blocks:
            for c in sample_channels(block.mean.shape[1], channels):
                for k in chosen:
                    writer.writerow(
                        [
                            block.path,
                            block.stage,
                            c,
                            class_names[k],
                            int(block.counts[k]),
                            f"{block.mean[k, c].item():.6f}",
                            f"{block.std[k, c].item():.6f}",
                        ]
                    )
                writer.writerow(
                    [
                        block.path,
                        block.stage,
                        c,
                        "all",
                        int(block.counts.sum()),
                        f"{block.overall_mean[c].item():.6f}",
                        f"{block.overall_std[c].item():.6f}",
                    ]
                )
    plot_excitations(blocks, class_names, chosen, channels, out / "activations.png")
    report = {
        "classes": [class_names[k] for k in chosen],
        "channels_shown": channels,
        "gate_values": "per-image gate outputs averaged over space for spatial gates; PSA/SK: softmax branch weights",
        "class_specificity": "mean over channels of the std across all classes of the class-mean gate value",
        "saturation": "mean gate value over all images and channels",
        "blocks": [block.summary() for block in blocks],
    }
    (out / "activations.json").write_text(json.dumps(report, indent=2))
    return report


def plot_excitations(
    blocks: Sequence[BlockExcitation], class_names: Sequence[str], chosen: Sequence[int], channels: int, path: Path
) -> Path:
    """One panel per block: class means (band: +- within-class std) and the all-class mean on sampled channels."""
    fig = new_figure(10, 2.6 * len(blocks))
    axes = fig.subplots(len(blocks), 1, squeeze=False)
    for ax, block in zip(axes[:, 0], blocks):
        index = sample_channels(block.mean.shape[1], channels)
        x = range(len(index))
        for k in chosen:
            mean, std = block.mean[k, index], block.std[k, index]
            line = ax.plot(x, mean, lw=1.2, label=class_names[k])[0]
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.12, lw=0)
        ax.plot(x, block.overall_mean[index], "k--", lw=1.5, label="all")
        ax.set_title(
            f"{block.path} (stage {block.stage}): specificity {block.specificity:.3f}, "
            f"saturation {block.saturation:.3f}",
            fontsize=9,
        )
        ax.set_ylabel("activation")
        ticks = list(x)[:: max(1, len(index) // 10)]
        ax.set_xticks(ticks, [str(index[t]) for t in ticks], fontsize=7)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("channel index")
    axes[0, 0].legend(fontsize=7, ncol=min(5, len(chosen) + 1), loc="best")
    fig.savefig(path, dpi=100)
    return path


def resolve_classes(names: Sequence[str] | None, class_names: Sequence[str]) -> list[int]:
    """Indices of the class ``names`` (default: ``default_classes``); ValueError naming the known classes."""
    if not names:
        return default_classes(len(class_names))
    unknown = [n for n in names if n not in class_names]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; the checkpoint's classes are {list(class_names)}")
    return [list(class_names).index(n) for n in names]


def excitation_study(
    model: nn.Module,
    stages: dict[str, int],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    class_names: Sequence[str],
    out: str | Path,
    *,
    classes: Sequence[str] | None = None,
    extra_blocks: Sequence[str] = (),
    images_per_class: int = 50,
    channels: int = 50,
    device: str | torch.device = "cpu",
) -> dict:
    """The whole study: the last attention block of each stage plus ``extra_blocks`` (in network order), the
    ``classes`` shown (names; default 4 spread over the list); writes the report files to ``out``, returns the
    JSON dict."""
    chosen = resolve_classes(classes, class_names)
    order = {path: i for i, (path, _) in enumerate(model.named_modules())}
    unknown = [b for b in extra_blocks if b not in order]
    if unknown:
        raise ValueError(f"unknown blocks {unknown}; the attention blocks are {sorted(stages, key=order.get)}")
    blocks = sorted({*last_block_per_stage(stages, model), *extra_blocks}, key=order.get)
    results = excitation_statistics(model, batches, len(class_names), blocks, stages, images_per_class, device)
    return write_excitation_report(results, class_names, chosen, channels, out)


def excitation_table(report: dict) -> str:
    """The per-block summary of a report as aligned text."""
    lines = [
        (
            f"{'block':<28} {'stage':>5} {'channels':>8} {'images':>6} {'specificity':>11} "
            f"{'within-class std':>16} {'saturation':>10}"
        )
    ]
    lines += [
        f"{b['block']:<28} {b['stage'] if b['stage'] is not None else '-':>5} {b['channels']:>8} {b['images']:>6} "
        f"{b['class_specificity']:>11.4f} {b['within_class_std']:>16.4f} {b['saturation']:>10.4f}"
        for b in report["blocks"]
    ]
    return "\n".join(lines)
