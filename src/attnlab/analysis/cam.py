"""Class activation maps through the ``grad-cam`` package (pytorch-grad-cam: Grad-CAM, Grad-CAM++, Score-CAM,
Eigen-CAM, LayerCAM) on the backbone's last stage or the last attention module, and heat maps overlaid on the
images.

The last stage is the last entry of the model's ``feature_info`` (timm's interface, which attnlab backbones and
timm models offer); for other models (torchvision's) it is found by :func:`last_conv_stage`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attnlab.analysis.gates import attention_stage_map, last_block_per_stage
from attnlab.data import Preprocess, read_image_files
from attnlab.engine.checkpoint import require_metadata
from attnlab.utils import new_figure, unknown_name_error

# method -> grad-cam class name
CAM_METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "scorecam": "ScoreCAM",
    "eigencam": "EigenCAM",
    "layercam": "LayerCAM",
}
CAM_TARGETS = ("stage", "gate")
# Score-CAM runs one forward pass per channel of the target layer; its masked copies of an image go through the
# model this many at a time (grad-cam's default is 16)
SCORECAM_BATCH_SIZE = 4


def cam_class(method: str) -> type:
    """The grad-cam class of ``method`` (one of :data:`CAM_METHODS`); ValueError for another name or when grad-cam
    is not installed."""
    if method not in CAM_METHODS:
        raise unknown_name_error("CAM method", method, list(CAM_METHODS))
    try:
        import pytorch_grad_cam
    except ImportError:
        raise ValueError("CAM needs the grad-cam package: pip install 'attnlab[cam]'") from None
    return getattr(pytorch_grad_cam, CAM_METHODS[method])


def _output_shapes(model: nn.Module, layers: dict[str, nn.Module], image: torch.Tensor) -> list[tuple[str, tuple]]:
    """(name, output shape) of each call of ``layers`` during one forward pass of ``image``, in execution order."""
    calls: list[tuple[str, tuple]] = []
    handles = [
        layer.register_forward_hook(lambda _m, _i, out, name=name: calls.append((name, tuple(out.shape))))
        for name, layer in layers.items()
    ]
    try:
        with torch.no_grad():
            model.eval()(image)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _is_spatial(shape: tuple) -> bool:
    """Whether ``shape`` is that of an (N, C, h, w) map with more than one position."""
    return len(shape) == 4 and shape[2] * shape[3] > 1


def last_conv_stage(model: nn.Module, images: torch.Tensor) -> str:
    """For a model without ``feature_info``: the name of the last top-level child (in execution order) whose
    output is a spatial map larger than 1x1 (``layer4`` of a torchvision ResNet, ``features`` of its MobileNet)."""
    calls = _output_shapes(model, dict(model.named_children()), images[:1])
    maps = [name for name, shape in calls if _is_spatial(shape)]
    if not maps:
        raise ValueError(
            f"no top-level module of {type(model).__name__} outputs a spatial map larger than 1x1 for "
            f"{tuple(images.shape[2:])} images; use larger images or name the layer (--target MODULE)"
        )
    return maps[-1]


def last_stage(model: nn.Module, images: torch.Tensor) -> str:
    """The module of the backbone's last stage: ``feature_info[-1]['module']`` (timm's interface), else
    :func:`last_conv_stage`."""
    info = getattr(model, "feature_info", None)
    if isinstance(info, list) and info and isinstance(info[-1], dict) and "module" in info[-1]:
        return info[-1]["module"]
    return last_conv_stage(model, images)


def cam_target_layer(model: nn.Module, images: torch.Tensor, target: str = "stage") -> str:
    """Name of the module whose output a CAM explains: ``'stage'`` the backbone's last stage (:func:`last_stage`),
    ``'gate'`` the last attention module (in module order, of the last stage), anything else a module path.
    ValueError unless the module runs once per forward pass of ``images`` (N, C, H, W) and outputs a spatial map."""
    if target == "stage":
        name = last_stage(model, images)
    elif target == "gate":
        name = last_block_per_stage(attention_stage_map(model), model)[-1]
    else:
        name = target
    try:
        layer = model.get_submodule(name)
    except AttributeError:
        children = [child for child, _ in model.named_children()]
        raise ValueError(
            f"model has no module {name!r}; use --target {'|'.join(CAM_TARGETS)} or a module path such as "
            f"{children[-1] if children else 'layer3'} (its top-level modules are {children})"
        ) from None
    shapes = [shape for _, shape in _output_shapes(model, {name: layer}, images[:1])]
    if len(shapes) != 1 or not _is_spatial(shapes[0]):
        raise ValueError(
            f"{name} ({type(layer).__name__}) must run once per forward pass and output a spatial (N, C, h, w) map "
            f"larger than 1x1; it gave {shapes} for {tuple(images.shape[2:])} images. Choose another --target"
        )
    return name


def class_activation_maps(
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    method: str = "gradcam",
    classes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CAMs by grad-cam's ``method`` of the output of module ``layer`` for ``images`` (N, C, H, W).

    Grad-CAM's map of class c is ``ReLU(sum_k a_k A_k)`` with ``A`` the (N, K, h, w) output of ``layer`` and ``a_k``
    the spatial mean of d logit_c / d A_k; grad-cam upsamples each map bilinearly to (H, W) and min-max normalises
    it (an all-zero map stays zero). ``classes`` (N,) defaults to the predictions; Eigen-CAM ignores them.
    The model is left in eval mode (grad-cam puts it there), without parameter gradients.
    Returns (maps (N, H, W) in [0, 1], classes (N,), softmax probability of those classes (N,)).
    """
    if images.dim() != 4:
        raise ValueError(f"expected an image batch (N, C, H, W), got shape {tuple(images.shape)}")
    cam_type = cam_class(method)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    # grad-cam keeps the hooked output itself on the CPU (``.cpu()`` does not copy there), and the blocks modify
    # it in place afterwards (``out += identity``, in-place ReLU): a copy at hook time keeps A as the layer gave it
    cam = cam_type(model, [model.get_submodule(layer)], reshape_transform=torch.clone)
    if method == "scorecam":
        cam.batch_size = SCORECAM_BATCH_SIZE
    targets = None if classes is None else [ClassifierOutputTarget(int(c)) for c in classes]
    try:
        # the input joins the graph so that A needs a gradient even for a parameter-free stem
        with torch.set_grad_enabled(cam.uses_gradients):
            maps = cam(images.detach().requires_grad_(cam.uses_gradients), targets)
        logits = cam.outputs.detach().float()
    finally:
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)  # grad-cam's backward fills the parameters' .grad
    if classes is None:
        classes = logits.argmax(1)
    classes = classes.to(logits.device)
    probs = logits.softmax(1).gather(1, classes[:, None])[:, 0]
    return torch.from_numpy(maps).to(images.device), classes, probs


@dataclass
class CamPanel:
    """One model's column of a CAM figure: ``images`` (N, H, W, 3) in [0, 1] as the model saw them, ``maps``
    (N, H, W) in [0, 1], one caption per image, and the explained module (``layer``)."""

    title: str
    images: torch.Tensor
    maps: torch.Tensor
    captions: Sequence[str]
    layer: str


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
    target: str = "stage",
    method: str = "gradcam",
) -> CamPanel:
    """CAMs (``method``) of a trained model (and its checkpoint ``metadata``) on image files, of the module
    :func:`cam_target_layer` picks for ``target``, captioned with the predicted class and its probability."""
    require_metadata(metadata, "preprocess", "classes")
    inputs, shown = prepare_image_files(paths, Preprocess.from_dict(metadata["preprocess"]))
    inputs = inputs.to(device)
    layer = cam_target_layer(model, inputs, target)
    maps, classes, probs = class_activation_maps(model, inputs, layer, method)
    captions = [f"{metadata['classes'][c]} {p:.2f}" for c, p in zip(classes.tolist(), probs.tolist())]
    return CamPanel(title, shown, maps.cpu(), captions, layer)


def plot_cams(panels: Sequence[CamPanel], path: str | Path, names: Sequence[str] | None = None) -> Path:
    """One row per image: the image (as the first model saw it), then each model's heat map over its input, titled
    with the model, the explained module and the predicted class."""
    n, cols = len(panels[0].images), 1 + len(panels)
    fig = new_figure(2.6 * cols, 3.0 * n)
    axes = fig.subplots(n, cols, squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(panels[0].images[i].numpy())
        axes[i, 0].set_title(names[i] if names else f"image {i}", fontsize=8)
        for ax, panel in zip(axes[i, 1:], panels):
            ax.imshow(panel.images[i].numpy())
            ax.imshow(panel.maps[i].cpu().numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_title(f"{panel.title}\n{panel.layer}\n{panel.captions[i]}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
