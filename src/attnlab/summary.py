"""Keras-style model summary: per-layer output shapes and parameters, totals, FLOPs and memory."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from attnlab.attention import attention_stages, is_attention

MB = 1024**2


@dataclass(frozen=True)
class LayerRow:
    """One layer that ran: path, class, output shape, parameters, and the stage of an attention module."""

    name: str
    type: str
    output_shape: tuple
    params: int
    stage: int | None = None


@dataclass
class ModelSummary:
    """What ``summary`` measured. FLOPs come from ``torch.utils.flop_counter`` (1 multiply-accumulate = 2 FLOPs;
    convolutions and matrix products only, so element-wise ops such as the attention gates' products are not
    counted) for one forward pass in eval mode at ``input_size``, batch 1."""

    input_size: tuple[int, ...]
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    buffer_elements: int = 0
    flops: int = 0
    input_mb: float = 0.0
    activation_mb: float = 0.0
    params_mb: float = 0.0

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def macs(self) -> int:
        return self.flops // 2

    def to_dict(self) -> dict:
        return {
            "input_size": list(self.input_size),
            "layers": [row.__dict__ for row in self.rows],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "buffer_elements": self.buffer_elements,
            "flops": self.flops,
            "macs": self.macs,
            "input_mb": self.input_mb,
            "activation_mb": self.activation_mb,
            "params_mb": self.params_mb,
        }

    def __str__(self) -> str:
        labels = [f"{r.name} ({r.type}{'' if r.stage is None else f', stage {r.stage}'})" for r in self.rows]
        widths = (max([52, *map(len, labels)]), 22)
        head = f"{'Layer (type)':<{widths[0]}} {'Output shape':<{widths[1]}} {'Param #':>12}"
        lines = [head, "=" * len(head)]
        for label, row in zip(labels, self.rows):
            lines.append(f"{label:<{widths[0]}} {_shape_str(row.output_shape):<{widths[1]}} {row.params:>12,}")
        lines += [
            "=" * len(head),
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            f"Buffers (e.g. BN running stats): {self.buffer_elements:,}"
            f" (params + buffers: {self.total_params + self.buffer_elements:,})",
            f"Multiply-accumulates: {self.macs / 1e9:.3f} G  (FLOPs: {self.flops / 1e9:.3f} G,"
            " torch.utils.flop_counter, conv/matmul only)",
            f"Input size (MB): {self.input_mb:.2f}",
            f"Forward activations size (MB): {self.activation_mb:.2f}",
            f"Params size (MB): {self.params_mb:.2f}",
        ]
        return "\n".join(lines)


def _shape_str(shape: tuple) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_shape_str(s) for s in shape)
    return str(list(shape))


def _output_shape(output) -> tuple:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return tuple(_output_shape(o) for o in output if isinstance(o, (torch.Tensor, tuple, list)))
    return ()


def _numel(output) -> int:
    if isinstance(output, torch.Tensor):
        return output.numel() * output.element_size()
    if isinstance(output, (tuple, list)):
        return sum(_numel(o) for o in output)
    return 0


def _is_leaf(module: nn.Module) -> bool:
    """Layers shown as one row: modules without children, and whole attention modules."""
    return is_attention(module) or not any(True for _ in module.children())


def summary(
    model: nn.Module, input_size: tuple[int, ...] = (3, 224, 224), device: str | torch.device = "cpu"
) -> ModelSummary:
    """Summarise ``model`` for one (1, *input_size) input: one row per layer that ran, totals, FLOPs, memory."""
    model = model.to(device)
    result = ModelSummary(input_size=tuple(input_size))
    activation_bytes = 0
    stages = attention_stages(model)
    leaves: dict[nn.Module, str] = {}
    for name, module in model.named_modules():
        if _is_leaf(module) and not any(name.startswith(p + ".") for p in leaves.values() if p):
            leaves[module] = name

    def record(module: nn.Module, args, output) -> None:
        nonlocal activation_bytes
        activation_bytes += _numel(output)
        params = sum(p.numel() for p in module.parameters())
        name = leaves[module]
        result.rows.append(LayerRow(name, type(module).__name__, _output_shape(output), params, stages.get(name)))

    handles = [module.register_forward_hook(record) for module in leaves]
    was_training = model.training
    x = torch.zeros(1, *input_size, device=device)
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    params = list(model.parameters())
    result.total_params = sum(p.numel() for p in params)
    result.trainable_params = sum(p.numel() for p in params if p.requires_grad)
    result.buffer_elements = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    result.flops = counter.get_total_flops()
    result.input_mb = x.numel() * x.element_size() / MB
    result.activation_mb = activation_bytes / MB
    result.params_mb = sum(p.numel() * p.element_size() for p in params) / MB
    return result
