"""Evaluation: loss, top-1/top-5, per-class accuracy, confusion matrix, inference throughput."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.engine.distributed import reduce_sums, reduce_tensor_sum
from attnlab.utils import autocast


@dataclass
class EvalResult:
    """Metrics over a whole evaluation set (all processes); ``images_per_s`` counts model time only."""

    loss: float
    top1: float
    top5: float
    confusion: torch.Tensor  # (classes, classes), rows = true class, columns = predicted
    images: int
    images_per_s: float

    @property
    def per_class_accuracy(self) -> list[float]:
        totals = self.confusion.sum(1).clamp_min(1)
        return (self.confusion.diag() / totals).tolist()

    def to_dict(self, class_names: list[str] | None = None) -> dict:
        names = class_names or [str(i) for i in range(len(self.confusion))]
        return {
            "loss": self.loss,
            "top1": self.top1,
            "top5": self.top5,
            "images": self.images,
            "images_per_s": self.images_per_s,
            "per_class_accuracy": dict(zip(names, self.per_class_accuracy)),
            "confusion_matrix": self.confusion.tolist(),
        }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> EvalResult:
    """Evaluate ``model`` over (images (N, 3, H, W), labels (N,)) batches; under DDP each process passes its
    shard and the sums are reduced, so every process gets the metrics of the whole set."""
    model.eval()
    loss_sum, top1, top5, count = 0.0, 0, 0, 0
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    compute_s = 0.0
    for images, labels in batches:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        start = time.perf_counter()
        with autocast(device, amp_dtype):
            logits = model(images).float()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        compute_s += time.perf_counter() - start
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        topk = logits.topk(min(5, num_classes), dim=1).indices
        top1 += (topk[:, 0] == labels).sum().item()
        top5 += (topk == labels[:, None]).any(1).sum().item()
        count += len(labels)
        confusion += torch.bincount(labels * num_classes + topk[:, 0], minlength=num_classes**2).view_as(confusion)
    loss_sum, top1, top5, count, compute_s = reduce_sums(loss_sum, top1, top5, count, compute_s, device=device)
    confusion = reduce_tensor_sum(confusion).cpu()
    if count == 0:
        raise ValueError("evaluation got no images: the validation split is empty")
    return EvalResult(loss_sum / count, top1 / count, top5 / count, confusion, int(count), count / max(compute_s, 1e-9))
