"""Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017) on the last convolutional stage, and heat maps overlaid on the images.

The last stage is what the model's ``forward_features`` returns (timm's interface, which attnlab backbones and
timm models offer); for other models (torchvision's) it is found by :func:`last_conv_stage`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.data import Preprocess, read_image_files
from attnlab.engine.checkpoint import require_metadata
from attnlab.utils import new_figure


def last_conv_stage(model: nn.Module, images: torch.Tensor) -> str:
    """For a model without ``forward_features``: the name of the last top-level child (in execution order) whose
    output is a spatial map larger than 1x1 (``layer4`` of a torchvision ResNet, ``features`` of its MobileNet)."""
    order: list[tuple[str, tuple[int, ...]]] = []
    handles = [
        child.register_forward_hook(lambda _m, _i, out, name=name: order.append((name, tuple(out.shape))))
        for name, child in model.named_children()
    ]
    try:
        with torch.no_grad():
            model.eval()(images[:1])
    finally:
        for handle in handles:
            handle.remove()
    maps = [name for name, shape in order if len(shape) == 4 and shape[2] * shape[3] > 1]
    if not maps:
        raise ValueError(
            f"no top-level module of {type(model).__name__} outputs a spatial map larger than 1x1 for "
            f"{tuple(images.shape[2:])} images; use larger images or name the layer (target_layer=...)"
        )
    return maps[-1]


def grad_cam(
    model: nn.Module, images: torch.Tensor, target_layer: str | None = None, classes: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grad-CAM maps for ``images`` (N, C, H, W).

    The map of class c is ``ReLU(sum_k a_k A_k)`` with ``A`` the (N, K, h, w) output of ``target_layer``
    (default: ``model.forward_features``, else :func:`last_conv_stage`) and ``a_k`` the spatial mean of
    d logit_c / d A_k; it is upsampled bilinearly to (H, W) and divided by its maximum (an all-zero map stays zero).
    ``classes`` (N,) defaults to the predictions.
    Returns (maps (N, H, W) in [0, 1], classes (N,), softmax probability of those classes (N,)).
    """
    if images.dim() != 4:
        raise ValueError(f"expected an image batch (N, C, H, W), got shape {tuple(images.shape)}")
    model.eval()
    with torch.enable_grad():
        # the input joins the graph so that A needs a gradient even for a parameter-free stem
        activation, logits = _activation_and_logits(model, images.detach().requires_grad_(), target_layer)
        if classes is None:
            classes = logits.argmax(1)
        classes = classes.to(logits.device)
        (grads,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), activation)
    weights = grads.mean((2, 3), keepdim=True)
    maps = F.relu((weights * activation).sum(1, keepdim=True)).detach().float()
    maps = F.interpolate(maps, size=images.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    peak = maps.flatten(1).amax(1).clamp_min(torch.finfo(maps.dtype).tiny)
    probs = logits.detach().softmax(1).gather(1, classes[:, None])[:, 0]
    return maps / peak[:, None, None], classes, probs


def _activation_and_logits(
    model: nn.Module, images: torch.Tensor, target_layer: str | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the explained activation A, float logits) of one forward pass."""
    if target_layer is None and hasattr(model, "forward_features"):
        activation = model.forward_features(images)
        return activation, model.forward_head(activation).float()
    try:
        layer = model.get_submodule(target_layer or last_conv_stage(model, images))
    except AttributeError:
        children = [name for name, _ in model.named_children()]
        raise ValueError(f"model has no module {target_layer!r}; its top-level modules are {children}") from None
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        logits = model(images).float()
    finally:
        handle.remove()
    return captured[-1], logits


@dataclass
class CamPanel:
    """One model's column of a CAM figure: ``images`` (N, H, W, 3) in [0, 1] as the model saw them, ``maps``
    (N, H, W) in [0, 1], one caption per image."""

    title: str
    images: torch.Tensor
    maps: torch.Tensor
    captions: Sequence[str]


def prepare_image_files(paths: Sequence[str | Path], preprocess) -> tuple[torch.Tensor, torch.Tensor]:
    """Image files -> (model input (N, 3, S, S) prepared as the run evaluated, the same images (N, S, S, 3) in
    [0, 1] for display). ``preprocess`` is the checkpoint's :class:`attnlab.data.Preprocess`."""
    raw = read_image_files(list(paths), preprocess.cache_size, preprocess.fit)
    inputs = preprocess.eval(raw)
    mean, std = (torch.tensor(v)[:, None, None] for v in (preprocess.mean, preprocess.std))
    return inputs, (inputs * std + mean).clamp(0, 1).permute(0, 2, 3, 1)


def cam_panel(
    title: str,
    model: nn.Module,
    metadata: dict,
    paths: Sequence[str | Path],
    device: str | torch.device = "cpu",
    target_layer: str | None = None,
) -> CamPanel:
    """Grad-CAM of a trained model (and its checkpoint ``metadata``) on image files, captioned with the predicted
    class and its probability."""
    require_metadata(metadata, "preprocess", "classes")
    inputs, shown = prepare_image_files(paths, Preprocess.from_dict(metadata["preprocess"]))
    maps, classes, probs = grad_cam(model, inputs.to(device), target_layer)
    captions = [f"{metadata['classes'][c]} {p:.2f}" for c, p in zip(classes.tolist(), probs.tolist())]
    return CamPanel(title, shown, maps.cpu(), captions)


def plot_cams(panels: Sequence[CamPanel], path: str | Path, names: Sequence[str] | None = None) -> Path:
    """One row per image: the image (as the first model saw it), then each model's heat map over its input."""
    n, cols = len(panels[0].images), 1 + len(panels)
    fig = new_figure(2.6 * cols, 2.8 * n)
    axes = fig.subplots(n, cols, squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(panels[0].images[i].numpy())
        axes[i, 0].set_title(names[i] if names else f"image {i}", fontsize=8)
        for ax, panel in zip(axes[i, 1:], panels):
            ax.imshow(panel.images[i].numpy())
            ax.imshow(panel.maps[i].cpu().numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_title(f"{panel.title}\n{panel.captions[i]}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
