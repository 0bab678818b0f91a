"""Where attention goes in a network, and which stage each inserted module belongs to.

:class:`AttentionPlacement` is the one argument a backbone takes for its attention: the module (registry name or
class), its keyword arguments, the stages that get it and a paper's per-stage presets. :class:`AttentionFactory`
builds the modules a backbone asks for. Every module it builds, and every module :func:`attnlab.attach` inserts,
is tagged with its 1-based stage (:func:`tag_stage`), so :func:`attention_stages` reads the stages back from any
model: analyses, summaries and reports all use that one record.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ._registry import attention_class, attention_kind, create_attention

STAGE_ATTRIBUTE = "attention_stage"
AttentionName = str | type[nn.Module]


@dataclass(frozen=True)
class AttentionPlacement:
    """Which attention a backbone inserts, and where.

    ``attention``: registry name ('se', 'eca', 'psa', ...) or module class. ``kwargs``: its keyword arguments.
    ``stages``: the 1-based stages that get it (None: all). ``stage_kwargs``: one dict of keyword defaults per
    stage, a paper's per-layer settings (ECA's fixed k per layer in ``alexnet_eca``, say), which ``kwargs``
    override. No attention is ``None`` where a placement is expected.
    """

    attention: AttentionName
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    stages: tuple[int, ...] | None = None
    stage_kwargs: tuple[Mapping[str, Any], ...] | None = None

    @classmethod
    def of(cls, attention: AttentionPlacement | AttentionName | None) -> AttentionPlacement | None:
        """A placement from a placement, a bare registry name or class (every stage, default arguments), or None."""
        if attention is None or isinstance(attention, AttentionPlacement):
            return attention
        return cls(attention)


class AttentionFactory:
    """Builds the attention modules a backbone of ``num_stages`` stages inserts, each tagged with its stage.

    ``kinds`` are the module kinds the backbone can fit ('gate': shape-preserving, after a layer; 'conv': in place
    of a strided 3x3 conv); another kind is a ValueError naming ``model``. ``gate(channels, stage)`` returns a
    gate module, or None where the stage is switched off or there is no attention; ``conv(in_channels,
    out_channels, stride, stage)`` likewise for a conv-replacement module.
    """

    def __init__(
        self,
        placement: AttentionPlacement | AttentionName | None,
        num_stages: int,
        model: str = "this model",
        kinds: Sequence[str] = ("gate",),
    ):
        self.placement = AttentionPlacement.of(placement)
        self.num_stages = num_stages
        if self.placement is None:
            self.kind = None
            return
        stage_kwargs = self.placement.stage_kwargs
        if stage_kwargs is not None and len(stage_kwargs) != num_stages:
            raise ValueError(f"stage_kwargs needs one dict per stage ({num_stages}), got {len(stage_kwargs)}")
        stages = self.placement.stages
        if stages is not None:
            bad = [s for s in stages if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= num_stages]
            if bad:
                raise ValueError(f"attention_stages {tuple(stages)} has {bad}: stages are 1..{num_stages}")
        self.kind = attention_kind(self.placement.attention)
        if self.kind not in kinds:
            raise ValueError(
                f"attention {self.placement.attention!r} is a {self.kind!r} module, which {model} cannot take "
                f"(it takes {' or '.join(repr(k) for k in kinds)} modules); "
                "conv-replacement modules such as 'psa' and 'sk' fit the ResNet family"
            )
        # Backbones hand each gate a fresh tensor that nothing else reads, so gates that can scale in place at
        # inference do (one (N, C, H, W) allocation and memory pass less); attention kwargs may still say no.
        parameters = inspect.signature(attention_class(self.placement.attention)).parameters
        self.inplace = self.kind == "gate" and "inplace" in parameters

    def active(self, stage: int) -> bool:
        stages = self.placement.stages if self.placement is not None else ()
        return self.placement is not None and (stages is None or stage in stages)

    def kwargs_for(self, stage: int) -> dict:
        """The stage's preset keyword arguments, overridden by the placement's ``kwargs``."""
        presets = self.placement.stage_kwargs[stage - 1] if self.placement.stage_kwargs else {}
        return {**presets, **self.placement.kwargs}

    def gate(self, channels: int, stage: int) -> nn.Module | None:
        if self.kind != "gate" or not self.active(stage):
            return None
        kwargs = {"inplace": True, **self.kwargs_for(stage)} if self.inplace else self.kwargs_for(stage)
        return tag_stage(create_attention(self.placement.attention, channels, **kwargs), stage)

    def conv(self, in_channels: int, out_channels: int, stride: int, stage: int) -> nn.Module | None:
        if self.kind != "conv" or not self.active(stage):
            return None
        module = create_attention(
            self.placement.attention, in_channels, out_channels, stride=stride, **self.kwargs_for(stage)
        )
        return tag_stage(module, stage)


def tag_stage(module: nn.Module, stage: int) -> nn.Module:
    """Record on ``module`` the 1-based stage of the network it sits in; returns ``module``."""
    setattr(module, STAGE_ATTRIBUTE, stage)
    return module


def is_attention(module: nn.Module) -> bool:
    """Whether ``module`` is a registered attention module (the class was added by ``register_attention``)."""
    return hasattr(module, "attention_kind")


def attention_stages(model: nn.Module) -> dict[str, int]:
    """{module path: stage} of every attention module of ``model`` that carries a stage (all that a backbone or
    :func:`attnlab.attach` inserted), in module order."""
    return {
        path: getattr(module, STAGE_ATTRIBUTE)
        for path, module in model.named_modules()
        if is_attention(module) and hasattr(module, STAGE_ATTRIBUTE)
    }


def attention_layers(model: nn.Module) -> list[dict]:
    """Every attention module in ``model``: path, class, kind, stage and what it resolved (e.g. ECA's ``k_size``).

    This list goes into checkpoints, so the kernel sizes actually used are recorded with the weights.
    """
    layers = []
    for path, module in model.named_modules():
        if not is_attention(module):
            continue
        entry = {"path": path, "class": type(module).__name__, "kind": module.attention_kind}
        entry["stage"] = getattr(module, STAGE_ATTRIBUTE, None)
        for attr in ("channels", "in_channels", "out_channels", "stride", "k_size", "reduction", "kernels", "groups"):
            value = getattr(module, attr, None)
            if isinstance(value, (int, float, tuple, list)) and not isinstance(value, bool):
                entry[attr] = list(value) if isinstance(value, tuple) else value
        layers.append(entry)
    return layers
