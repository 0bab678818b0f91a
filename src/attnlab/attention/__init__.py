"""Channel-attention modules under one contract, and their registry.

Gate modules ``M(channels, **kw)`` map (N, C, H, W) to the same shape; their excitation values come out of a
submodule named ``gate`` (hook it to observe them). Conv-replacement modules ``M(in_channels, out_channels,
stride=1, **kw)`` stand in for a 3x3 convolution. ``create_attention`` builds either kind by registry name;
:class:`AttentionPlacement` says where a backbone puts them, and every inserted module records its stage
(:func:`attention_stages`).
"""

from . import (  # noqa: F401  (importing a family registers its modules)
    bam,
    cbam,
    coord,
    cpca,
    eca,
    ela,
    ema,
    fca,
    gam,
    gather_excite,
    gct,
    global_context,
    mca,
    nam,
    non_local,
    psa,
    scsa,
    se,
    selective_kernel,
    sge,
    shuffle,
    simam,
    splat,
    srm,
    triplet,
)
from ._common import ChannelGate
from ._registry import (
    AttentionInfo,
    attention_class,
    attention_kind,
    create_attention,
    get_attention_info,
    list_attentions,
    register_attention,
)
from .fused import GatedTail, attended, batch_norm_affine, can_fuse, gate_excitation, gated_batch_norm, gated_tail
from .placement import (
    AttentionFactory,
    AttentionPlacement,
    attention_layers,
    attention_stages,
    is_attention,
    tag_stage,
)

__all__ = [
    "AttentionFactory",
    "AttentionInfo",
    "AttentionPlacement",
    "ChannelGate",
    "GatedTail",
    "attended",
    "batch_norm_affine",
    "can_fuse",
    "gate_excitation",
    "gated_batch_norm",
    "gated_tail",
    "attention_class",
    "attention_kind",
    "attention_layers",
    "attention_stages",
    "create_attention",
    "get_attention_info",
    "is_attention",
    "list_attentions",
    "register_attention",
    "tag_stage",
]
