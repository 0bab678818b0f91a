"""Small pieces shared by the attention modules: argument checks, activations, pooling."""

from __future__ import annotations

import torch
from torch import nn

from attnlab.utils import check_input, check_positive_int

__all__ = [
    "ChannelGate",
    "apply_gate",
    "check_input",
    "check_odd_kernel",
    "check_positive_int",
    "create_act",
    "global_avg_pool",
    "global_max_pool",
    "has_forward_hooks",
    "pointwise",
    "records_graph",
    "reduced_channels",
    "safe_sqrt",
    "spatial_std",
]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "hard_swish": nn.Hardswish,
    "sigmoid": nn.Sigmoid,
    "hard_sigmoid": nn.Hardsigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


def create_act(act: str | type[nn.Module] | nn.Module) -> nn.Module:
    """An activation module from a name ('relu', 'swish', 'gelu', ...), a class or an instance."""
    if isinstance(act, nn.Module):
        return act
    if isinstance(act, type) and issubclass(act, nn.Module):
        return act()
    try:
        cls = _ACTIVATIONS[act]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {act!r}; choose one of {sorted(_ACTIVATIONS)}") from None
    return cls(inplace=True) if cls in (nn.ReLU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid) else cls()


def reduced_channels(channels: int, reduction: float, min_channels: int = 1) -> int:
    """Hidden width ``channels // reduction`` of a bottleneck; raises if it falls below ``min_channels``."""
    check_positive_int("channels", channels)
    if not reduction or reduction <= 0:
        raise ValueError(f"reduction must be > 0, got {reduction!r}")
    hidden = int(channels // reduction)
    if hidden < min_channels:
        raise ValueError(
            f"reduction={reduction} leaves {hidden} hidden units for channels={channels}; "
            f"use reduction <= {channels // min_channels}"
        )
    return hidden


def check_odd_kernel(name: str, value: int, minimum: int = 1, why: str = "") -> int:
    """Return the kernel size ``value`` if it is an odd int >= ``minimum``, else raise ValueError naming ``name``
    (``why`` explains the rule where it is not the usual one of a centred kernel)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value % 2 == 0:
        raise ValueError(f"{name} must be an odd integer >= {minimum}{why}, got {value!r}")
    return value


def apply_gate(x: torch.Tensor, gate: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``x * gate`` (``gate`` broadcasts over ``x``). With ``inplace`` and autograd off (inference), the product is
    written into ``x``, saving an (N, C, H, W) allocation and memory pass; the caller must not read ``x``
    afterwards, as with ``nn.ReLU(inplace=True)``. Under autograd it always allocates: backward needs ``x``."""
    return x.mul_(gate) if inplace and not torch.is_grad_enabled() else x * gate


class _SpatialMean(torch.autograd.Function):
    """``x.mean((2, 3), keepdim=True)`` whose backward hands back the gradient as a broadcast view instead of
    materialising ``grad / HW`` at full size (autograd then adds it into ``x``'s other gradient in one pass)."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.mean((2, 3), keepdim=True)

    @staticmethod
    def backward(ctx, grad):
        n, c, h, w = ctx.shape
        return (grad / (h * w)).expand(n, c, h, w)


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 1, 1) mean; unlike AdaptiveAvgPool2d it exports cleanly to ONNX."""
    if x.requires_grad and torch.is_grad_enabled() and not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
        return _SpatialMean.apply(x)
    return x.mean((2, 3), keepdim=True)


def global_max_pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 1, 1) max over space."""
    return x.amax((2, 3), keepdim=True)


def has_forward_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def records_graph() -> bool:
    """Whether autograd records an eager training graph here: not inference, tracing or export, whose graphs the
    training-only fast paths (fused tails, recomputation, ECA's windowed product) must leave unchanged."""
    return torch.is_grad_enabled() and not torch.jit.is_tracing() and not torch.compiler.is_exporting()


def pointwise(conv: nn.Conv2d, pooled: torch.Tensor) -> torch.Tensor:
    """``conv(pooled)`` for a 1x1 ``conv`` (no groups) on pooled (N, C, 1, 1) vectors, as the matrix product it is:
    the same maths as the convolution, 1.1-1.7x faster on CPU forward + backward (SE at 256-2048 channels), and the
    weights stay the conv's (timm-compatible state dicts). A ``conv`` with forward hooks is called as a module, so
    the hooks run. -> (N, out_channels, 1, 1)."""
    if has_forward_hooks(conv):
        return conv(pooled)
    return nn.functional.linear(pooled.flatten(1), conv.weight.flatten(1), conv.bias)[..., None, None]


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x)`` of a non-negative tensor with a zero (not NaN) gradient where ``x == 0``: a constant map (e.g. a
    single position) has standard deviation 0, and plain ``sqrt`` would send NaN back through it."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


def spatial_std(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 1, 1) population standard deviation over space, ``sqrt(mean((x - mean)^2))``
    (divisor H*W, so a single position gives 0 rather than the NaN of the unbiased estimate)."""
    return safe_sqrt((x - global_avg_pool(x)).square().mean((2, 3), keepdim=True))


class ChannelGate(nn.Module):
    """Base of the gates ``y = x * excitation(x)`` whose excitation is computed from ``x`` alone (SE, ECA, ...).

    Subclasses set ``channels`` and ``inplace`` and implement :meth:`excitation`, which must call the ``gate``
    submodule last (hooks on it see the excitation), or split it into :meth:`pool` and :meth:`excite`. Blocks may
    call :meth:`excitation` directly, without the input check of :meth:`forward`, to fold the multiply into their
    residual addition (see :mod:`attnlab.attention.fused`).

    A gate that overrides :meth:`pool` declares that the pool's backward reads ``x`` (GCT's sum of squares, SRM's
    standard deviation): the fused tails then recompute ``x`` for that backward instead of keeping it.
    """

    channels: int
    inplace: bool

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> the small statistics :meth:`excite` reads, without parameters: the spatial mean."""
        return global_avg_pool(x)

    def excite(self, pooled: torch.Tensor) -> torch.Tensor:
        """The gate values from :meth:`pool`'s statistics."""
        raise NotImplementedError

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """The gate values, broadcastable over ``x``: (N, C, 1, 1) for pooled gates."""
        return self.excite(self.pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        return apply_gate(x, self.excitation(x), self.inplace)
