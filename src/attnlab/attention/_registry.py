"""Registry of attention modules: names, kinds, papers, and a factory with close-match errors."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from attnlab.utils import unknown_name_error

AttentionKind = Literal["gate", "conv"]


@dataclass(frozen=True)
class AttentionInfo:
    """What the registry knows about one attention module.

    kind: ``"gate"`` modules are built as ``cls(channels, **kw)`` and keep the input shape;
    ``"conv"`` modules are built as ``cls(in_channels, out_channels, stride=1, **kw)`` and replace a 3x3 conv.
    """

    name: str
    cls: type[nn.Module]
    kind: AttentionKind
    paper: str
    year: int


_REGISTRY: dict[str, AttentionInfo] = {}


def register_attention(
    name: str, *, paper: str, year: int, kind: AttentionKind = "gate"
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding an attention module to the registry under ``name``."""
    if kind not in ("gate", "conv"):
        raise ValueError(f"kind must be 'gate' or 'conv', got {kind!r}")

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"attention {name!r} is already registered ({_REGISTRY[name].cls.__name__})")
        cls.attention_kind = kind
        _REGISTRY[name] = AttentionInfo(name, cls, kind, paper, year)
        return cls

    return add


def get_attention_info(name: str) -> AttentionInfo:
    """Registry entry for ``name``; raises ValueError with close matches when unknown."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise unknown_name_error("attention", name, list(_REGISTRY)) from None


def list_attentions(kind: AttentionKind | None = None) -> list[str]:
    """Sorted registry names, optionally only those of one ``kind`` ('gate' or 'conv')."""
    return sorted(n for n, info in _REGISTRY.items() if kind is None or info.kind == kind)


def attention_kind(attention: str | type[nn.Module]) -> AttentionKind:
    """'gate' or 'conv' for a registry name or a module class (classes default to 'gate')."""
    if isinstance(attention, str):
        return get_attention_info(attention).kind
    return getattr(attention, "attention_kind", "gate")


def attention_class(attention: str | type[nn.Module]) -> type[nn.Module]:
    """The module class of a registry name (a class is returned as is)."""
    return get_attention_info(attention).cls if isinstance(attention, str) else attention


def create_attention(attention: str | type[nn.Module], *args, **kwargs) -> nn.Module:
    """Build an attention module from a registry name or class.

    Gate modules: ``create_attention(name, channels, **kw)``.
    Conv-replacement modules: ``create_attention(name, in_channels, out_channels, stride=1, **kw)``.
    """
    cls = attention_class(attention)
    signature = inspect.signature(cls)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as err:
        accepted = ", ".join(signature.parameters)
        raise ValueError(f"{cls.__name__}: {err}; it takes ({accepted})") from None
    return cls(*args, **kwargs)
