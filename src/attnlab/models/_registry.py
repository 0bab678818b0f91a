"""Registry of model builders: ``create_model`` by name, with an attention switch, and ``list_models``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from attnlab.attention._common import check_positive_int
from attnlab.attention._registry import attention_class, attention_kind, create_attention, unknown_name_error

AttentionSpec = str | type[nn.Module] | None


@dataclass(frozen=True)
class ModelInfo:
    """A registered builder: ``fn(num_classes=..., attention=..., ...)`` and the input size it expects."""

    name: str
    fn: Callable[..., nn.Module]
    input_size: tuple[int, int, int]
    preset_attention: AttentionSpec = None
    family_fn: Callable[..., nn.Module] | None = None


_MODELS: dict[str, ModelInfo] = {}


def register_model(
    name: str, *, input_size: tuple[int, int, int] = (3, 224, 224), attention: AttentionSpec = None, **preset
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``fn`` under ``name``. ``attention`` (and any ``preset`` kwargs) pre-fill the builder, so one
    family builder serves ``resnet50``, ``se_resnet50`` and ``eca_resnet50``; the decorator returns ``fn``
    unchanged, so it can be stacked."""

    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        builder = functools.partial(fn, attention=attention, **preset) if attention or preset else fn
        _MODELS[name] = ModelInfo(name, builder, tuple(input_size), attention, fn)
        return fn

    return add


def list_models(attention: str | None = None) -> list[str]:
    """Sorted model names; ``attention='eca'`` keeps only the builders that come with that attention."""
    return sorted(n for n, info in _MODELS.items() if attention is None or info.preset_attention == attention)


def get_model_info(name: str) -> ModelInfo:
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise unknown_name_error("model", name, list(_MODELS)) from None


def create_model(
    name: str,
    num_classes: int = 1000,
    attention: AttentionSpec = None,
    attention_kwargs: dict | None = None,
    attention_stages: Sequence[int] | None = None,
    in_chans: int = 3,
    **kwargs,
) -> nn.Module:
    """Build model ``name`` with an optional attention switch.

    ``attention`` is a registry name (``'se'``, ``'eca'``, ...) or a module class; ``attention_stages`` (1-based)
    selects the stages that get it, e.g. ``(1, 2, 3)`` leaves the last stage of a ResNet without attention.
    The returned model carries ``default_input_size`` (C, H, W) and ``model_name``.
    ``'torchvision:ARCH'`` and ``'timm:ARCH'`` build those libraries' models (random weights) with the attention
    attached after each residual branch (:func:`attnlab.retrofit.create_external_model`).
    """
    if isinstance(name, str) and ":" in name:
        from attnlab.retrofit import create_external_model  # late: retrofit imports this module

        return create_external_model(
            name, num_classes, attention, attention_kwargs, attention_stages, in_chans, **kwargs
        )
    info = get_model_info(name)
    if attention is not None and info.preset_attention is not None and attention != info.preset_attention:
        plain = next((n for n, i in _MODELS.items() if i.family_fn is info.family_fn and i.preset_attention is None), None)
        hint = f"create_model({plain!r}, attention={attention!r})" if plain else "the plain backbone"
        raise ValueError(f"model {name!r} already comes with attention {info.preset_attention!r}; to use {attention!r}, "
                         f"build {hint}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    check_positive_int("in_chans", in_chans)
    if attention is not None:
        kwargs["attention"] = attention
    model = info.fn(
        num_classes=num_classes,
        attention_kwargs=attention_kwargs,
        attention_stages=None if attention_stages is None else tuple(attention_stages),
        in_chans=in_chans,
        **kwargs,
    )
    model.default_input_size = (in_chans, *info.input_size[1:])
    model.model_name = name
    return model


def default_input_size(model: nn.Module) -> tuple[int, int, int]:
    """(C, H, W) the model was designed for (224 px ImageNet models, 32 px CIFAR ResNets, 128 px AlexNet)."""
    return tuple(getattr(model, "default_input_size", (3, 224, 224)))


class AttentionFactory:
    """Builds the attention modules a backbone inserts, and decides which stages get one.

    ``stage_kwargs`` holds one dict of attention keyword defaults per stage (ECA's fixed k per layer in
    ``alexnet_eca``, say), which ``attention_kwargs`` override. ``gate(channels, stage)`` returns a gate module, or None where ``stage`` is switched off or there is no
    attention; ``conv(in_channels, out_channels, stride, stage)`` returns a conv-replacement module or None.
    A backbone asks for the kind it supports; ``check_kind`` raises a clear error for one it cannot fit.
    """

    def __init__(self, attention: AttentionSpec, attention_kwargs: dict | None, attention_stages: Sequence[int] | None,
                 num_stages: int, stage_kwargs: Sequence[dict] | None = None):
        self.attention = None if attention in (None, "none") else attention
        self.kwargs = dict(attention_kwargs or {})
        if stage_kwargs is not None and len(stage_kwargs) != num_stages:
            raise ValueError(f"stage_attention_kwargs needs one dict per stage ({num_stages}), got {len(stage_kwargs)}")
        self.stage_kwargs = tuple(stage_kwargs or ({},) * num_stages)
        self.kind = attention_kind(self.attention) if self.attention is not None else None
        # Backbones hand each gate a fresh tensor that nothing else reads, so gates that can scale in place at
        # inference do (one (N, C, H, W) allocation and memory pass less); attention_kwargs may still say no.
        self.inplace = self.kind == "gate" and "inplace" in inspect.signature(attention_class(self.attention)).parameters
        if attention_stages is not None:
            bad = [s for s in attention_stages if not (isinstance(s, int) and 1 <= s <= num_stages)]
            if bad:
                raise ValueError(f"attention_stages {tuple(attention_stages)} has {bad}: stages are 1..{num_stages}")
        self.stages = set(range(1, num_stages + 1) if attention_stages is None else attention_stages)

    def check_kind(self, supported: Sequence[str], model: str) -> AttentionFactory:
        """Raise ValueError if the attention is of a kind ``model`` cannot take; returns ``self``."""
        if self.kind is not None and self.kind not in supported:
            raise ValueError(
                f"attention {self.attention!r} is a {self.kind!r} module, which {model} cannot take "
                f"(it takes {' or '.join(repr(k) for k in supported)} modules); "
                "conv-replacement modules such as 'psa' and 'sk' fit the ResNet family"
            )
        return self

    def active(self, stage: int) -> bool:
        return self.attention is not None and stage in self.stages

    def gate(self, channels: int, stage: int) -> nn.Module | None:
        if self.kind != "gate" or not self.active(stage):
            return None
        kwargs = {"inplace": True, **self.kwargs_for(stage)} if self.inplace else self.kwargs_for(stage)
        return create_attention(self.attention, channels, **kwargs)

    def conv(self, in_channels: int, out_channels: int, stride: int, stage: int) -> nn.Module | None:
        if self.kind != "conv" or not self.active(stage):
            return None
        return create_attention(self.attention, in_channels, out_channels, stride=stride, **self.kwargs_for(stage))

    def kwargs_for(self, stage: int) -> dict:
        """The stage's preset keyword arguments (a paper's per-layer settings), overridden by ``attention_kwargs``."""
        return {**self.stage_kwargs[stage - 1], **self.kwargs}


def attention_layers(model: nn.Module) -> list[dict]:
    """Every attention module in ``model``: path, class, channels and what it resolved (e.g. ECA's ``k_size``).

    This list goes into checkpoints, so the kernel sizes actually used are recorded with the weights.
    """
    layers = []
    for path, module in model.named_modules():
        if not hasattr(module, "attention_kind") or type(module).__name__ == "NoAttention":
            continue
        entry = {"path": path, "class": type(module).__name__, "kind": module.attention_kind}
        for attr in ("channels", "in_channels", "out_channels", "stride", "k_size", "reduction", "kernels", "groups"):
            value = getattr(module, attr, None)
            if isinstance(value, (int, float, tuple, list)) and not isinstance(value, bool):
                entry[attr] = list(value) if isinstance(value, tuple) else value
        layers.append(entry)
    return layers
