"""The attention library at a glance: for every registered module its kind, parameters and saved activations at
256 channels, paper, and what its numbers are verified against. ``attnlab list`` prints it; the README's module
table is its Markdown (``attnlab list --markdown``), and a test keeps the two equal."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnlab.attention import attention_kind, create_attention, get_attention_info, list_attentions
from attnlab.bench.throughput import saved_activation_bytes
from attnlab.utils import markdown_table

CHANNELS = 256
SIDE = 16
# What each module's outputs are proven equal to, by a test: "timm" (tests/attention/test_timm_parity.py, the same
# configuration of timm's module with the weights copied across) or "paper" (a plain implementation of the paper's
# equations inside the module's own test file).
VERIFIED = {
    "bam": "paper",
    "cbam": "timm",
    "ceca": "timm",
    "coord": "timm",
    "cpca": "paper",
    "eca": "timm",
    "ecam": "timm",
    "ela": "timm",
    "ema": "paper",
    "ese": "timm",
    "fca": "paper",
    "gam": "paper",
    "gc": "timm",
    "gca": "timm",
    "gct": "paper",
    "ge": "timm",
    "lcbam": "timm",
    "mca": "paper",
    "nam": "paper",
    "nl": "timm",
    "psa": "paper",
    "sa": "paper",
    "scoord": "timm",
    "scsa": "paper",
    "se": "timm",
    "sge": "paper",
    "simam": "paper",
    "sk": "timm",
    "splat": "timm",
    "srm": "paper",
    "strip": "timm",
    "triplet": "paper",
}


@dataclass(frozen=True)
class ModuleFacts:
    """One row of the library table. ``saved_activations``: bytes autograd keeps for backward in one training
    forward of a (2, 256, 16, 16) input, in units of that input's size (parameters excluded)."""

    name: str
    kind: str
    params: int
    saved_activations: float
    year: int
    paper: str
    verified: str


def module_facts(name: str) -> ModuleFacts:
    """The facts of registered module ``name``, measured at 256 channels (conv kind: 256 -> 256)."""
    info = get_attention_info(name)
    args = (CHANNELS, CHANNELS) if attention_kind(name) == "conv" else (CHANNELS,)
    torch.manual_seed(0)
    module = create_attention(name, *args).train()
    x = torch.randn(2, CHANNELS, SIDE, SIDE, requires_grad=True)
    saved = saved_activation_bytes(module, lambda: module(x))
    return ModuleFacts(
        name=name,
        kind=info.kind,
        params=sum(p.numel() for p in module.parameters()),
        saved_activations=saved / (x.numel() * x.element_size()),
        year=info.year,
        paper=info.paper,
        verified=VERIFIED.get(name, "-"),
    )


def library_table() -> list[ModuleFacts]:
    return [module_facts(name) for name in list_attentions()]


def library_markdown(rows: list[ModuleFacts]) -> str:
    """The library table as Markdown (the README's module table)."""
    head = ["name", "kind", f"params @ {CHANNELS}", "saved activations (x input)", "year", "verified vs", "paper"]
    body = [
        [f"`{r.name}`", r.kind, f"{r.params:,}", f"{r.saved_activations:.2f}", r.year, r.verified, r.paper]
        for r in rows
    ]
    return markdown_table(head, body, align="llrrrll")
