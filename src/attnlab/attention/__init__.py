"""Channel-attention modules under one contract, and their registry.

Gate modules ``M(channels, **kw)`` map (N, C, H, W) to the same shape; their excitation values come out of a
submodule named ``gate`` (hook it to observe them). Conv-replacement modules ``M(in_channels, out_channels,
stride=1, **kw)`` stand in for a 3x3 convolution. ``create_attention`` builds either kind by registry name.
"""

from . import (  # noqa: F401  (importing a family registers its modules)
    bam,
    cbam,
    coord,
    eca,
    fca,
    gather_excite,
    gct,
    global_context,
    identity,
    psa,
    se,
    selective_kernel,
    shuffle,
    simam,
    srm,
    triplet,
)
from ._registry import (
    AttentionInfo,
    attention_class,
    attention_kind,
    create_attention,
    get_attention_info,
    list_attentions,
    register_attention,
)

__all__ = [
    "AttentionInfo",
    "attention_class",
    "attention_kind",
    "create_attention",
    "get_attention_info",
    "list_attentions",
    "register_attention",
]
