"""Small pieces shared by the attention modules: argument checks, activations, pooling."""

from __future__ import annotations

import torch
from torch import nn

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


def check_positive_int(name: str, value: int) -> int:
    """Return ``value`` if it is an int >= 1, else raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


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


def check_input(x: torch.Tensor, channels: int) -> None:
    """Raise ValueError unless ``x`` is (N, channels, H, W)."""
    if x.dim() != 4:
        raise ValueError(f"expected a 4D input (N, C, H, W), got a {x.dim()}D tensor of shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(
            f"expected {channels} input channels, got {x.shape[1]} (input shape {tuple(x.shape)}); "
            f"build the module with channels={x.shape[1]}"
        )


def apply_gate(x: torch.Tensor, gate: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``x * gate`` (``gate`` broadcasts over ``x``). With ``inplace`` and autograd off (inference), the product is
    written into ``x``, saving an (N, C, H, W) allocation and memory pass; the caller must not read ``x``
    afterwards, as with ``nn.ReLU(inplace=True)``. Under autograd it always allocates: backward needs ``x``."""
    return x.mul_(gate) if inplace and not torch.is_grad_enabled() else x * gate


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 1, 1) mean; unlike AdaptiveAvgPool2d it exports cleanly to ONNX."""
    return x.mean((2, 3), keepdim=True)


def global_max_pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 1, 1) max over space."""
    return x.amax((2, 3), keepdim=True)
