"""Registry of model builders: ``create_model`` by name, with an attention switch, and ``list_models``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from attnlab.attention import AttentionPlacement
from attnlab.utils import check_positive_int, unknown_name_error

from .external import create_external_model

AttentionName = str | type[nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """A registered builder ``fn(num_classes=..., attention=AttentionPlacement | None, in_chans=..., **preset)``:
    the input size it expects, and the attention (with a paper's per-stage settings) and keyword presets that
    its name stands for (``eca_resnet50`` is ``resnet50`` with ECA)."""

    name: str
    fn: Callable[..., nn.Module]
    input_size: tuple[int, int, int]
    attention: AttentionPlacement | None = None
    preset: Mapping[str, Any] = field(default_factory=dict)


_MODELS: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    input_size: tuple[int, int, int] = (3, 224, 224),
    attention: AttentionName | None = None,
    stage_kwargs: Sequence[dict] | None = None,
    **preset: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``fn`` under ``name``. ``attention`` (with a paper's per-stage ``stage_kwargs``) and ``preset``
    keyword arguments pre-fill the builder, so one family builder serves ``resnet50``, ``se_resnet50`` and
    ``eca_resnet50``; the decorator returns ``fn`` unchanged, so it can be stacked."""
    placement = None
    if attention is not None:
        placement = AttentionPlacement(attention, stage_kwargs=None if stage_kwargs is None else tuple(stage_kwargs))

    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelInfo(name, fn, tuple(input_size), placement, dict(preset))
        return fn

    return add


def list_models(attention: str | None = None) -> list[str]:
    """Sorted model names; ``attention='eca'`` keeps only the builders that come with that attention."""
    return sorted(
        name
        for name, info in _MODELS.items()
        if attention is None or (info.attention is not None and info.attention.attention == attention)
    )


def get_model_info(name: str) -> ModelInfo:
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise unknown_name_error("model", name, list(_MODELS)) from None


def _placement(
    info: ModelInfo,
    attention: AttentionName | AttentionPlacement | None,
    attention_kwargs: dict | None,
    attention_stages: Sequence[int] | None,
) -> AttentionPlacement | None:
    """The registered attention of ``info`` with the caller's choices applied; a different attention than the
    one the name stands for is a ValueError pointing at the plain backbone."""
    if isinstance(attention, AttentionPlacement):
        return attention
    preset = info.attention
    if attention is not None and preset is not None and attention != preset.attention:
        plain = next((n for n, i in _MODELS.items() if i.fn is info.fn and i.attention is None), None)
        hint = f"create_model({plain!r}, attention={attention!r})" if plain else "the plain backbone"
        raise ValueError(
            f"model {info.name!r} already comes with attention {preset.attention!r}; to use {attention!r}, build {hint}"
        )
    if attention is None and preset is None:
        return None
    placement = preset if preset is not None else AttentionPlacement(attention)
    stages = None if attention_stages is None else tuple(attention_stages)
    return replace(placement, kwargs=dict(attention_kwargs or {}), stages=stages)


def create_model(
    name: str,
    num_classes: int = 1000,
    attention: AttentionName | AttentionPlacement | None = None,
    attention_kwargs: dict | None = None,
    attention_stages: Sequence[int] | None = None,
    in_chans: int = 3,
    **kwargs: Any,
) -> nn.Module:
    """Build model ``name`` with an optional attention switch.

    ``attention`` is a registry name (``'se'``, ``'eca'``, ...), a module class or a whole
    :class:`~attnlab.attention.AttentionPlacement`; ``attention_kwargs`` go to each module and
    ``attention_stages`` (1-based) selects the stages that get it, e.g. ``(1, 2, 3)`` leaves the last stage of
    a ResNet without attention. The returned model carries ``default_input_size`` (C, H, W) and ``model_name``.
    ``'torchvision:ARCH'`` and ``'timm:ARCH'`` build those libraries' models (random weights) with the attention
    attached after each residual branch (:func:`attnlab.models.external.create_external_model`).
    """
    if isinstance(name, str) and ":" in name:
        return create_external_model(
            name, num_classes, attention, attention_kwargs, attention_stages, in_chans, **kwargs
        )
    info = get_model_info(name)
    placement = _placement(info, attention, attention_kwargs, attention_stages)
    check_positive_int("num_classes", num_classes)
    check_positive_int("in_chans", in_chans)
    try:
        model = info.fn(num_classes=num_classes, attention=placement, in_chans=in_chans, **{**info.preset, **kwargs})
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        raise ValueError(f"model {name!r}: {err}; see help(attnlab.models.get_model_info({name!r}).fn)") from None
    model.default_input_size = (in_chans, *info.input_size[1:])
    model.model_name = name
    return model
