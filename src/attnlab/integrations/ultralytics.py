"""Attention in Ultralytics YOLO models that survives training, checkpoints, reload and export.

``attnlab.attach`` works on a YOLO network in memory, but ``YOLO.train()`` builds a new network from the model's
YAML, so the trained model, ``last.pt``/``best.pt`` and their reloads would silently have no attention.
:func:`attach_yolo` attaches to ``yolo.model`` *and* registers a trainer callback that makes every network the
trainer builds (for training, fine-tuning or resuming) carry the same attention at the same paths, identity at
the start as ``attach`` promises; from pretrained weights every tensor loads except the new attention ones, and
attention weights that the weights carry (a checkpoint trained with attention) load too. The trainer's EMA copy
and the checkpoints are taken from that network, so they carry it as well.

Checkpoints are Ultralytics' pickled modules: they reference attnlab's attention classes and its forward hook by
import path, so ``YOLO("best.pt")`` needs attnlab installed. Without it, loading fails with Ultralytics' warning that
the checkpoint "appears to require 'attnlab'" and ``ModuleNotFoundError: No module named 'attnlab'``; with
``YOLO_AUTOINSTALL`` on and a network, Ultralytics first tries ``pip install attnlab`` by itself. Ultralytics'
opt-in restricted loading (``ULTRALYTICS_SAFE_LOAD=1``) refuses the attnlab classes (not on its allow-list).
Training must run in one process (CPU or one GPU): Ultralytics does not run callbacks in DDP workers.

Ultralytics is AGPL-3.0; it is an optional extra (``pip install 'attnlab[ultralytics]'``), imported only inside
these functions.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from attnlab.retrofit import (
    ATTENTION_CHILD,
    SCALE_PARAM,
    AttachReport,
    AttentionName,
    attach,
    attached_paths,
    detach,
)
from attnlab.utils import check_positive_int, max_error, unknown_name_error

PRESETS = {
    "c2f": "after the last conv (cv2) of every C2f-family block (C2f, C3k2, ...)",
    "backbone": "'c2f', in the backbone only",
    "neck": "'c2f', in the neck only (the YAML's head section without its Detect/Classify layer)",
    "sppf": "after the layer that feeds SPPF (its last conv for a C2f-family block)",
}


def _ultralytics():
    try:
        import ultralytics
    except ImportError:
        raise ValueError(
            "attnlab.integrations.ultralytics needs ultralytics, which is not installed: "
            "pip install 'attnlab[ultralytics]' (ultralytics is AGPL-3.0)"
        ) from None
    return ultralytics


@dataclass(frozen=True)
class YoloAttachReport:
    """What :func:`attach_yolo` inserted where: ``attach``'s report plus, per point, the YOLO layer it follows
    (``'backbone 2 C2f'``: YAML section, layer index, layer type)."""

    report: AttachReport
    layers: tuple[str, ...]

    @property
    def paths(self) -> list[str]:
        return [p.path for p in self.report.points]

    def __str__(self) -> str:
        points = self.report.points
        width = max(len("path"), *(len(p.path) for p in points))
        layer_width = max(len("layer"), *map(len, self.layers))
        name_width = max(len("attention"), *(len(p.attention) for p in points))
        lines = [
            f"{'path':<{width}}  {'layer':<{layer_width}}  {'attention':<{name_width}}  {'channels':>8}  {'params':>7}"
        ]
        lines += [
            f"{p.path:<{width}}  {layer:<{layer_width}}  {p.attention:<{name_width}}  {p.channels:>8}  {p.params:>7,}"
            for p, layer in zip(points, self.layers)
        ]
        lines.append(str(self.report).splitlines()[-1])
        return "\n".join(lines)


def _layers(model: nn.Module) -> list[tuple[int, str, nn.Module]]:
    """(index, YAML section, layer) of the model's top-level layers (``model.model``)."""
    backbone = len(model.yaml["backbone"])
    return [(i, "backbone" if i < backbone else "head", layer) for i, layer in enumerate(model.model)]


def _output_conv(index: int, layer: nn.Module) -> str:
    """Path of the module whose output is the layer's output: a C2f-family block's last conv, else the layer."""
    from ultralytics.nn.modules.block import C2f

    return f"model.{index}.cv2" if isinstance(layer, C2f) else f"model.{index}"


def _preset_points(model: nn.Module, preset: str) -> list[str]:
    from ultralytics.nn.modules.block import SPPF, C2f

    layers = _layers(model)
    name = model.yaml.get("yaml_file") or type(model).__name__
    if preset == "sppf":
        points = [_output_conv(i - 1, layers[i - 1][2]) for i, _, layer in layers if isinstance(layer, SPPF)]
        if not points:
            raise ValueError(f"{name} has no SPPF layer (classification models have none); use where='c2f'")
        return points
    sections = {"c2f": ("backbone", "head"), "backbone": ("backbone",), "neck": ("head",)}[preset]
    points = [_output_conv(i, layer) for i, part, layer in layers if part in sections and isinstance(layer, C2f)]
    if not points:
        found = sorted({type(layer).__name__ for _, part, layer in layers if part in sections})
        raise ValueError(
            f"{name} has no C2f-family block (C2f, C3k2, ...) in {' or '.join(sections)} (layers there: "
            f"{', '.join(found)}); use another preset ({', '.join(PRESETS)}) or glob patterns such as ['model.*.cv2']"
        )
    return points


def yolo_points(model: nn.Module, where: str | Sequence[str]) -> list[str]:
    """Insertion paths in a YOLO network (``yolo.model``) for a preset (:data:`PRESETS`), or for a list of presets
    and glob patterns over ``named_modules()`` paths (``['model.*.cv2']``), in that order without repeats."""
    items = [where] if isinstance(where, str) else list(where)
    if not items or not all(isinstance(item, str) for item in items):
        raise ValueError(f"where must be a preset ({', '.join(PRESETS)}) or a list of presets and glob patterns")
    points = []
    for item in items:
        if item in PRESETS:
            points += _preset_points(model, item)
        elif isinstance(where, str):
            error = unknown_name_error("YOLO placement preset", item, list(PRESETS))
            raise ValueError(f"{error} For module paths pass a list of glob patterns, e.g. where=['model.*.cv2']")
        else:
            _check_not_batch_norm(model, item)
            points.append(item)
    return list(dict.fromkeys(points))


def _check_not_batch_norm(model: nn.Module, pattern: str) -> None:
    norms = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and fnmatch.fnmatchcase(n, pattern)]
    if norms:
        raise ValueError(
            f"pattern {pattern!r} matches BatchNorm layers ({norms[0]!r}, ...): Ultralytics fuses each conv's BN "
            "into the conv for inference and export and deletes the BN, with the attention on it; attach after "
            f"the Conv module instead, e.g. {norms[0].rsplit('.', 1)[0]!r}"
        )


def _example(model: nn.Module, imgsz: int) -> torch.Tensor:
    param = next(model.parameters())
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, model.yaml.get("channels", 3), imgsz, imgsz, generator=generator)
    return x.to(param.device, param.dtype)


def _attention(model: nn.Module, path: str) -> nn.Module:
    return getattr(model.get_submodule(path), ATTENTION_CHILD)


def _attention_keys(model: nn.Module) -> list[str]:
    prefixes = tuple(f"{p}.{ATTENTION_CHILD}." for p in attached_paths(model))
    scales = {f"{p}.{SCALE_PARAM}" for p in attached_paths(model)}
    return [k for k in model.state_dict() if k.startswith(prefixes) or k in scales]


@dataclass
class _CarryAttention:
    """The ``on_pretrain_routine_start`` callback: wraps the trainer's ``get_model`` so every network it builds
    gets the attention at ``paths`` and the attention weights of the weights it is built from, where they fit."""

    attention: AttentionName
    paths: list[str]
    init: str | None
    imgsz: int
    kwargs: dict[str, Any]

    def __call__(self, trainer) -> None:
        build = trainer.get_model

        def get_model(cfg=None, weights=None, verbose=True):
            model = build(cfg=cfg, weights=weights, verbose=verbose)
            attach(
                model, self.attention, self.paths, init=self.init, example=_example(model, self.imgsz), **self.kwargs
            )
            keys = _attention_keys(model)
            source = weights.state_dict() if isinstance(weights, nn.Module) else {}
            own = model.state_dict()
            loaded = {k: source[k] for k in keys if k in source and source[k].shape == own[k].shape}
            model.load_state_dict(loaded, strict=False)
            if verbose:
                from ultralytics.utils import LOGGER

                LOGGER.info(
                    f"attnlab: attached {len(self.paths)} {self.attention} modules to the trainer's model; "
                    f"{len(loaded)}/{len(keys)} attention tensors loaded from the weights"
                )
            return model

        trainer.get_model = get_model


def attach_yolo(
    yolo,
    attention: AttentionName,
    where: str | Sequence[str] = "c2f",
    init: str | None = "identity",
    imgsz: int = 64,
    **attention_kwargs,
) -> YoloAttachReport:
    """Attach ``attention`` to an Ultralytics ``YOLO`` object's network and to every network its trainer builds.

    ``where``: a preset of :data:`PRESETS` ('c2f', 'backbone', 'neck', 'sppf') or a list of presets and glob
    patterns over ``yolo.model.named_modules()`` paths. ``init`` and ``attention_kwargs`` are ``attach``'s;
    ``imgsz`` is the side of the random dry-run batch that measures the channels and the outputs' change.

    A network that already carries the same attention at the same paths (``YOLO('best.pt')`` of a run trained
    this way) keeps it, weights included, and only gets the trainer callback, so fine-tuning it keeps the trained
    attention (``train(resume=True)`` goes through the same ``get_model``; not covered by a test). Returns the
    report (path, layer, module, channels, parameters).
    """
    _ultralytics()
    from ultralytics.engine.model import Model

    if not isinstance(yolo, Model):
        raise ValueError(
            f"attach_yolo takes an ultralytics YOLO object (YOLO('yolov8n.yaml')), got {type(yolo).__name__}; "
            "for a bare network use attnlab.attach"
        )
    if not isinstance(yolo.model, nn.Module):
        raise ValueError(f"attach_yolo needs a PyTorch YOLO model, got {yolo.model!r} (an exported file?)")
    if check_positive_int("imgsz", imgsz) % 32:
        raise ValueError(f"imgsz must be a multiple of 32 (YOLO's largest stride), got {imgsz}")
    model = yolo.model
    paths = yolo_points(model, where)
    present = attached_paths(model)
    target = model
    if present:
        target = deepcopy(model)
        detach(target)
    report = attach(target, attention, paths, init=init, example=_example(target, imgsz), **attention_kwargs)
    if present:
        own, carried = target.state_dict(), model.state_dict()
        same = (
            sorted(present) == sorted(p.path for p in report.points)
            and all(type(_attention(target, p)) is type(_attention(model, p)) for p in present)
            and sorted(_attention_keys(target)) == sorted(_attention_keys(model))
            and all(carried[k].shape == own[k].shape for k in _attention_keys(target))
        )
        if not same:
            raise ValueError(
                f"the model already carries attention at {present[:3]}...; it differs from {attention!r} at "
                f"{paths[:3]}...: call attnlab.detach(yolo.model) first to replace it"
            )
    points = [p.path for p in report.points]
    layers = {f"model.{i}": f"{part} {i} {type(layer).__name__}" for i, part, layer in _layers(model)}
    names = tuple(layers.get(".".join(path.split(".")[:2]), "") for path in points)
    callbacks = yolo.callbacks["on_pretrain_routine_start"]
    callbacks[:] = [c for c in callbacks if not isinstance(c, _CarryAttention)]  # attach_yolo again: replace it
    callbacks.append(_CarryAttention(attention, points, init, imgsz, attention_kwargs))
    return YoloAttachReport(report, names)


def onnx_max_error(path: str, yolo, imgsz: int = 64, batch: int = 1, seed: int = 0) -> tuple[float, float]:
    """Max abs / relative difference of ONNX Runtime running the exported ``path`` vs ``yolo.model`` in eval mode
    (its first output: class probabilities, or decoded boxes and scores) on a random ``(batch, C, imgsz, imgsz)``
    batch."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ValueError("checking an ONNX export needs onnxruntime: pip install 'attnlab[onnx]'") from None
    model = deepcopy(yolo.model).float().cpu().eval()
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, model.yaml.get("channels", 3), imgsz, imgsz, generator=generator)
    with torch.no_grad():
        want = model(x)
    want = want[0] if isinstance(want, (tuple, list)) else want
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    return max_error(got, want)
