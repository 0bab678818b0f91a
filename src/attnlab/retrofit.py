"""Retrofit attention into an existing CNN (torchvision, timm or your own) without rewriting its classes.

How a module is inserted: the attention module becomes a child named ``attention`` of the module it follows
(the *host*, e.g. a ResNet block's ``bn2``), and a forward hook on the host returns ``attention(output)``.
Every original module and parameter stays where it was, so the original state-dict keys do not change; the new
keys are ``<host>.attention.*`` (plus ``<host>.attention_scale`` for a blend, below) and loading the original
model's checkpoint reports exactly those as missing. The child hangs off the host rather than off the host's
parent because parents are often ``nn.Sequential`` (torchvision's ``Conv2dNormActivation``), which would run any
extra child as one more layer. The hook is a plain function that finds the attention on the module it is called
on, so ``copy.deepcopy`` (EMA), pickling, ``torch.compile``, ``torch.jit.trace`` and ``torch.export`` see it.

Identity at init (``init='identity'``, the default): the attached model starts with exactly the original's
outputs. A module that is the identity at its own initialisation is inserted as it is: GC with ``fusion='add'``
(its last conv starts at zero) and GCT (``gamma = beta = 0``, so ``1 + tanh(0) = 1``); this is
measured at attach time, so any such module qualifies. Sigmoid-gated modules (SE, ECA, CBAM, SRM, ...) cannot be
an identity, ``x * sigmoid(z) < x``, nor can BAM's ``x * (1 + sigmoid(z))`` or SA's channel shuffle; without
changing their maths, each is blended with its input,
``y = x + s * (attention(x) - x)``, by a learnable scalar ``s`` that starts at 0 (ReZero-style). At ``s = 1``
that is the module as its paper has it. With ``init=None`` the modules go in bare, as their papers have them,
and the report says how far the outputs moved.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from attnlab.attention import (
    attended,
    attention_kind,
    attention_layers,
    batch_norm_affine,
    can_fuse,
    create_attention,
    tag_stage,
)
from attnlab.utils import close_matches, default_input_size, max_error

AttentionName = str | type[nn.Module]

ATTENTION_CHILD = "attention"
SCALE_PARAM = "attention_scale"
WHERE_MODES = ("residual", "conv")
INIT_MODES = ("identity", None)
_BATCH_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)


@dataclass(frozen=True)
class AttachedPoint:
    """One inserted module. ``start``: 'identity' (the module is the identity at its own init), 'blend' (a
    zero-initialised blend makes it one) or 'changed' (``init=None`` and the module changes its input)."""

    path: str
    attention: str
    channels: int
    stage: int
    params: int
    start: str


@dataclass(frozen=True)
class AttachReport:
    """What ``attach`` inserted where, and how far the model's outputs moved on the dry-run batch."""

    points: tuple[AttachedPoint, ...]
    input_shape: tuple[int, ...]
    max_abs_diff: float
    max_rel_diff: float

    @property
    def params(self) -> int:
        return sum(p.params for p in self.points)

    def __str__(self) -> str:
        width = max(len("path"), *(len(p.path) for p in self.points))
        name_width = max(len("attention"), *(len(p.attention) for p in self.points))
        lines = [f"{'path':<{width}}  {'attention':<{name_width}}  {'channels':>8}  {'stage':>5}  {'params':>8}  start"]
        lines += [
            f"{p.path:<{width}}  {p.attention:<{name_width}}  {p.channels:>8}  {p.stage:>5}  {p.params:>8,}  {p.start}"
            for p in self.points
        ]
        lines.append(
            f"{len(self.points)} modules, {self.params:,} parameters; outputs vs the original on a "
            f"{tuple(self.input_shape)} batch: max abs diff {self.max_abs_diff:.3g}, "
            f"max rel diff {self.max_rel_diff:.3g}"
        )
        return "\n".join(lines)


def _apply_attached_attention(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    """Forward hook of a host: its attention on its output, blended by ``attention_scale`` where there is one.

    A channel gate or CBAM after a ``BatchNorm2d`` in training goes through :func:`attnlab.attention.attended`,
    which keeps the BN input (kept by the BN anyway) instead of its output for backward.
    """
    attention = getattr(module, ATTENTION_CHILD)
    scale = getattr(module, SCALE_PARAM, None)
    fusable = args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor)
    if fusable and can_fuse(module, attention, bn_hooks=True):
        return attended(attention, output, args[0], *_host_affine(module, args[0]), scale)
    # The blend needs the output unchanged, and an in-place gate (``inplace=True``, which Ultralytics sets on every
    # module that has the flag when it loads a checkpoint) would overwrite it at inference.
    in_place = scale is not None and getattr(attention, "inplace", False)
    result = attention(output.clone() if in_place else output)
    return result if scale is None else output + scale * (result - output)


def _host_affine(bn: nn.BatchNorm2d, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale``, ``shift`` with ``bn(c) == c * scale + shift`` for the statistics the BN just used (the batch's
    in training: one extra reduction pass over ``c``, as the hook cannot see the BN's own)."""
    with torch.no_grad():
        if bn.training or bn.running_mean is None:
            var, mean = torch.var_mean(c, dim=(0, 2, 3), correction=0)
        else:
            var, mean = bn.running_var, bn.running_mean
        return batch_norm_affine(bn, mean, torch.rsqrt(var + bn.eps))


def attached_paths(model: nn.Module) -> list[str]:
    """Paths of the modules that carry an attention inserted by :func:`attach`."""
    return [
        path
        for path, module in model.named_modules()
        if any(hook is _apply_attached_attention for hook in module._forward_hooks.values())
    ]


def detach(model: nn.Module) -> list[str]:
    """Remove everything :func:`attach` inserted (in place); the model computes the original function again.

    Returns the paths the attention was removed from (empty when nothing was attached).
    """
    paths = attached_paths(model)
    for path in paths:
        host = model.get_submodule(path)
        # Hook handles are not kept: a deep copy (EMA) would carry handles pointing at the original's hook dicts.
        for key in [k for k, hook in host._forward_hooks.items() if hook is _apply_attached_attention]:
            del host._forward_hooks[key]
            host._forward_hooks_with_kwargs.pop(key, None)
            host._forward_hooks_always_called.pop(key, None)
        delattr(host, ATTENTION_CHILD)
        if hasattr(host, SCALE_PARAM):
            delattr(host, SCALE_PARAM)
    return paths


def _last_batch_norm(block: nn.Module) -> str | None:
    """Name (relative to ``block``) of its last BatchNorm outside the ``downsample`` shortcut."""
    names = [
        name
        for name, module in block.named_modules()
        if isinstance(module, _BATCH_NORMS) and name.split(".")[0] != "downsample"
    ]
    return names[-1] if names else None


def _residual_points(model: nn.Module) -> list[str]:
    """The last BN of each residual branch: of every module with a ``downsample`` attribute (torchvision, timm
    and attnlab ResNet blocks) or a ``use_res_connect`` one (torchvision's MobileNet inverted residuals)."""
    points = []
    for path, module in model.named_modules():
        if not (hasattr(module, "downsample") or hasattr(module, "use_res_connect")):
            continue
        bn = _last_batch_norm(module)
        if bn is None:
            raise ValueError(
                f"residual block {path!r} ({type(module).__name__}) has no BatchNorm2d to attach after; "
                "name the insertion points with glob patterns, e.g. where=['layer*.*.conv2']"
            )
        points.append(f"{path}.{bn}" if path else bn)
    if not points:
        raise ValueError(
            f"found no residual blocks in {type(model).__name__} (modules with a 'downsample' or 'use_res_connect' "
            "attribute, as in torchvision and timm ResNets and MobileNets); use where='conv' or glob patterns"
        )
    return points


def _conv_points(model: nn.Module) -> list[str]:
    """Every BatchNorm that directly follows a Conv2d of matching width in module order (a conv-BN pair)."""
    leaves = [(path, m) for path, m in model.named_modules() if not any(True for _ in m.children())]
    points = [
        path
        for (_, prev), (path, module) in zip(leaves, leaves[1:])
        if isinstance(module, _BATCH_NORMS) and isinstance(prev, nn.Conv2d) and prev.out_channels == module.num_features
    ]
    if not points:
        raise ValueError(f"found no Conv2d-BatchNorm2d pairs in {type(model).__name__}; use glob patterns for where")
    return points


def _last_layer(model: nn.Module, path: str) -> str:
    """``path`` itself, or for a plain ``nn.Sequential`` its last layer (recursively): the same output, and a
    Sequential would run an extra child as one more layer."""
    module = model.get_submodule(path)
    while type(module).forward is nn.Sequential.forward and len(module):
        name = list(module._modules)[-1]
        path, module = f"{path}.{name}", module[-1]
    return path


def _pattern_points(model: nn.Module, patterns: Sequence[str]) -> list[str]:
    names = [name for name, _ in model.named_modules() if name]
    points = []
    for pattern in patterns:
        matched = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
        if not matched:
            close = close_matches(pattern, names)
            hint = f" Close paths: {', '.join(close)}." if close else ""
            raise ValueError(
                f"pattern {pattern!r} matches no module path of {type(model).__name__}.{hint} "
                "Paths are those of model.named_modules(), e.g. 'layer1.0.bn2'; '*' matches within and across dots"
            )
        points += [_last_layer(model, name) for name in matched]
    return list(dict.fromkeys(points))


def _insertion_points(model: nn.Module, where: str | Sequence[str]) -> list[str]:
    if where == "residual":
        return _residual_points(model)
    if where == "conv":
        return _conv_points(model)
    if isinstance(where, str) or not where or not all(isinstance(p, str) for p in where):
        raise ValueError(
            f"where must be 'residual', 'conv' or a list of glob patterns over module paths, got {where!r}"
            + (f"; for one pattern pass [{where!r}]" if isinstance(where, str) else "")
        )
    return _pattern_points(model, where)


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd inside; each module's own training flag restored after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in flags:
            module.training = training


def _flat_output(output) -> torch.Tensor:
    """All tensors of a model output (a tensor, or tuples, lists, dicts of them) as one flat float tensor."""
    if isinstance(output, torch.Tensor):
        return output.detach().float().flatten()
    values = output.values() if isinstance(output, dict) else output
    return torch.cat([_flat_output(v) for v in values])


def _probe(model: nn.Module, paths: list[str], example: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One forward pass of ``example``: ({path: output of that module, in call order}, flat model output).

    Raises ValueError for a module that is not called exactly once (a shared module such as torchvision's
    block-level ``relu`` would get the attention after each of its calls) or whose output is not 4D.
    """
    seen: dict[str, list[torch.Tensor]] = {path: [] for path in paths}
    calls: list[str] = []

    def record(path: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            # clone: the model may modify the output in place afterwards (``out += identity``)
            seen[path].append(output.detach().clone() if isinstance(output, torch.Tensor) else output)
            calls.append(path)

        return hook

    handles = [model.get_submodule(path).register_forward_hook(record(path)) for path in paths]
    try:
        with _evaluating(model):
            model_output = _flat_output(model(example))
    finally:
        for handle in handles:
            handle.remove()
    for path, outputs in seen.items():
        if len(outputs) != 1:
            raise ValueError(
                f"module {path!r} is called {len(outputs)} times in a forward pass, expected once (a shared "
                "module, or one the model never calls); attach after a module that runs once, e.g. a BatchNorm"
            )
        if not isinstance(outputs[0], torch.Tensor) or outputs[0].dim() != 4:
            got = tuple(outputs[0].shape) if isinstance(outputs[0], torch.Tensor) else type(outputs[0]).__name__
            raise ValueError(f"module {path!r} outputs {got}; attention needs an (N, C, H, W) tensor")
    return {path: seen[path][0] for path in calls}, model_output


def _stages(outputs: dict[str, torch.Tensor]) -> list[int]:
    """Stage of each point in call order: a new stage starts wherever the spatial size changes."""
    stages, previous = [], None
    for out in outputs.values():
        size = tuple(out.shape[2:])
        stages.append((stages[-1] if stages else 0) + (size != previous))
        previous = size
    return stages


def attach(
    model: nn.Module,
    attention: AttentionName,
    where: str | Sequence[str] = "residual",
    stages: Sequence[int] | None = None,
    init: str | None = "identity",
    example: torch.Tensor | None = None,
    **attention_kwargs,
) -> AttachReport:
    """Insert a gate attention module after each chosen module of ``model``, in place (see the module docstring).

    ``attention``: registry name ('eca', 'se', ...) or gate module class, built as ``cls(channels,
    **attention_kwargs)``, where ``channels`` is the channel count the insertion point outputs (taken from a
    dry run of ``example``). ``where``:

    - ``'residual'``: after the last BN of each residual branch (``bn2`` of BasicBlocks, ``bn3`` of Bottlenecks
      in torchvision, timm and attnlab ResNets; the projection BN of torchvision's inverted residuals);
    - ``'conv'``: after every BatchNorm that follows a Conv2d;
    - a list of glob patterns over ``named_modules()`` paths (``['layer4.*.bn2']``): after those modules.

    ``stages`` (1-based) keeps only some stages; a stage is a run of insertion points (in forward order) with one
    spatial size, so with ``'residual'`` stages 1-4 of a ResNet are layer1-layer4. ``init='identity'`` makes the
    outputs equal the original's, ``None`` inserts the modules bare. ``example`` is a batch the model accepts
    (default: one random image of ``default_input_size(model)``).

    Returns the report: path, module, channels, stage, parameters and start of each point, and the max abs /
    relative difference of the outputs from the original's on ``example``. Raises ValueError for a model that
    already has attention (built in by ``create_model`` or attached before; :func:`detach` removes the latter).
    """
    _check_no_attention(model)
    if attention_kind(attention) != "gate":
        raise ValueError(
            f"attention {attention!r} is a conv-replacement module; attach inserts gate modules (same shape in and "
            "out). Build a model with it instead, e.g. create_model('resnet50', attention='psa')"
        )
    if init not in INIT_MODES:
        raise ValueError(f"init must be 'identity' or None, got {init!r}")
    paths = _insertion_points(model, where)
    if example is None:
        param = next(model.parameters(), None)
        generator = torch.Generator().manual_seed(0)
        example = torch.randn(1, *default_input_size(model), generator=generator)
        if param is not None:
            example = example.to(param.device, param.dtype)
    outputs, original = _probe(model, paths, example)
    point_stages = dict(zip(outputs, _stages(outputs)))
    if stages is not None:
        available = sorted(set(point_stages.values()))
        bad = [s for s in stages if s not in available]
        if bad:
            raise ValueError(
                f"stages {tuple(stages)} has {bad}: the insertion points span stages {available} "
                f"on a {tuple(example.shape)} input"
            )
    chosen = {path: x for path, x in outputs.items() if stages is None or point_stages[path] in stages}
    # everything is built and checked before the model is touched, so a failure leaves it as it was
    built = {
        path: tag_stage(_build(model, path, x, attention, attention_kwargs), point_stages[path])
        for path, x in chosen.items()
    }
    points = []
    for path, module in built.items():
        x = chosen[path]
        start = _insert(model.get_submodule(path), module, x, init)
        params = sum(p.numel() for p in module.parameters()) + (start == "blend")
        points.append(AttachedPoint(path, type(module).__name__, x.shape[1], point_stages[path], params, start))
    with _evaluating(model):
        attached = _flat_output(model(example))
    return AttachReport(tuple(points), tuple(example.shape), *max_error(attached, original))


def _check_no_attention(model: nn.Module) -> None:
    attached = attached_paths(model)
    if attached:
        raise ValueError(
            f"attention is already attached to {type(model).__name__} (at {attached[0]!r}, ...); "
            "call attnlab.detach(model) first to attach another"
        )
    present = attention_layers(model)
    if present:
        raise ValueError(
            f"{type(model).__name__} already has {len(present)} attention modules ({present[0]['class']} at "
            f"{present[0]['path']!r}, ...); attach adds attention to models without it: build the model without "
            "attention, e.g. create_model('resnet50'), then attach"
        )


def _build(model: nn.Module, path: str, x: torch.Tensor, attention: AttentionName, kwargs: dict) -> nn.Module:
    """The attention module for the host at ``path``, whose output was ``x``."""
    host = model.get_submodule(path)
    if hasattr(host, ATTENTION_CHILD):
        raise ValueError(
            f"module {path!r} ({type(host).__name__}) already has an attribute {ATTENTION_CHILD!r}; "
            "attach after one of its submodules instead"
        )
    try:
        module = create_attention(attention, x.shape[1], **kwargs)
    except (ValueError, TypeError) as err:
        raise ValueError(f"cannot build {attention!r} for {path!r} ({x.shape[1]} channels): {err}") from err
    return module.to(x.device, x.dtype).train(host.training)


def _insert(host: nn.Module, module: nn.Module, x: torch.Tensor, init: str | None) -> str:
    """Register ``module`` on ``host`` (whose output was ``x``), blended where ``init`` asks for it; returns the
    point's start: 'identity', 'blend' or 'changed'."""
    with _evaluating(module):
        is_identity = torch.equal(module(x), x)
    host.add_module(ATTENTION_CHILD, module)
    host.register_forward_hook(_apply_attached_attention)
    if is_identity:
        return "identity"
    if init == "identity":
        host.register_parameter(SCALE_PARAM, nn.Parameter(torch.zeros((), device=x.device, dtype=x.dtype)))
        return "blend"
    return "changed"


def load_original_weights(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Load the weights of ``model`` as it was before :func:`attach` into it; the attention keeps its init.

    Tensors whose shape differs from the model's (a new classifier head) are left out; their keys are returned.
    Raises ValueError for keys the model does not have, or for missing keys that are not attention keys (the
    checkpoint is of another architecture).
    """
    own = model.state_dict()
    paths = attached_paths(model)
    attention_keys = tuple(f"{path}.{ATTENTION_CHILD}." for path in paths) + tuple(f"{p}.{SCALE_PARAM}" for p in paths)
    unexpected = sorted(set(state_dict) - set(own))
    missing = sorted(k for k in set(own) - set(state_dict) if not k.startswith(attention_keys))
    if unexpected or missing:
        raise ValueError(
            f"the checkpoint does not fit {type(model).__name__}: {len(unexpected)} unexpected keys "
            f"{unexpected[:3]}, {len(missing)} missing non-attention keys {missing[:3]}; "
            "is it a checkpoint of the same architecture?"
        )
    mismatched = [k for k, v in state_dict.items() if v.shape != own[k].shape]
    model.load_state_dict({k: v for k, v in state_dict.items() if k not in mismatched}, strict=False)
    return mismatched
