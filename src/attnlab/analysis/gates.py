"""A model's attention modules by stage, observing their gates, and switching them off.

Every attention module exposes its excitation through a submodule named ``gate``; the helpers here hook that
submodule. Stages are those each module was tagged with when it was inserted (by the backbone or by
:func:`attnlab.attach`; see :func:`attnlab.attention.attention_stages`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from attnlab.attention import attention_layers, attention_stages


def attention_stage_map(model: nn.Module) -> dict[str, int]:
    """{module path: 1-based stage} of every attention module of ``model``, built in by a backbone or attached;
    ValueError for a model without attention."""
    stages = attention_stages(model)
    if not stages:
        raise ValueError(
            f"{getattr(model, 'model_name', type(model).__name__)} has no attention modules; analyse a model built "
            "with attention (e.g. se_resnet20, --attention eca) or trained with --attach"
        )
    return stages


def last_block_per_stage(stages: dict[str, int], model: nn.Module) -> list[str]:
    """Path of the last attention module (in module order) of each stage, stage by stage."""
    order = {path: i for i, (path, _) in enumerate(model.named_modules())}
    last: dict[int, str] = {}
    for path, stage in sorted(stages.items(), key=lambda item: order[item[0]]):
        last[stage] = path
    return [last[s] for s in sorted(last)]


def gate_of(model: nn.Module, path: str) -> nn.Module:
    """The ``gate`` submodule of the attention module at ``path``; ValueError when there is none."""
    try:
        module = model.get_submodule(path)
    except AttributeError:
        known = [layer["path"] for layer in attention_layers(model)]
        raise ValueError(f"model has no module {path!r}; its attention modules are {known}") from None
    gate = getattr(module, "gate", None)
    if not isinstance(gate, nn.Module):
        raise ValueError(
            f"{path} ({type(module).__name__}) has no `gate` submodule, so its excitation cannot be observed; "
            "pick blocks of a gate-exposing attention module"
        )
    return gate


def gate_values(output: torch.Tensor) -> torch.Tensor:
    """(N, F) per-image gate values from a gate output: (N, C, 1, 1) -> (N, C); spatial gates (N, C, H, W) or
    (N, 1, H, W) are averaged over H, W; PSA's (N, S, C/S, 1, 1) branch weights -> (N, S * C/S), branch-major."""
    if output.dim() >= 4:
        output = output.mean((-2, -1))
    return output.detach().float().flatten(1)


@contextmanager
def record_gates(model: nn.Module, paths: Sequence[str]) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Within the block, each forward pass appends ``gate_values`` of each path's gate to ``records[path]``
    (a module whose gate runs k times per pass appends k tensors per pass)."""
    records: dict[str, list[torch.Tensor]] = {path: [] for path in paths}
    handles = [
        gate_of(model, path).register_forward_hook(
            lambda _m, _i, out, path=path: records[path].append(gate_values(out))
        )
        for path in paths
    ]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


def neutral_gate(output: torch.Tensor, gate: nn.Module) -> torch.Tensor:
    """What a gate outputs when it does not select: ones for a gate that multiplies, the uniform 1/S for a
    softmax over S branches (PSA, SK), which keeps the branch weights summing to 1 as the network was trained."""
    if isinstance(gate, nn.Softmax):
        return torch.full_like(output, 1.0 / output.shape[gate.dim])
    return torch.ones_like(output)


@contextmanager
def attention_switched_off(model: nn.Module, paths: Sequence[str]) -> Iterator[nn.Module]:
    """Within the block, the attention modules at ``paths`` do nothing.

    A gate-kind module (shape-preserving) is replaced by ``nn.Identity``: for ``x * gate`` modules (SE, ECA) that
    is the gate forced to 1, for CBAM both of its gates, and for additive fusion (GC) it drops the added context.
    A conv-kind module (PSA, SK) stays, as it is the block's convolution, and its ``gate`` gives the neutral
    branch weights instead (see ``neutral_gate``).
    """
    with ExitStack() as stack:
        for path in paths:
            module = model.get_submodule(path)
            if getattr(module, "attention_kind", "gate") == "conv":
                gate = gate_of(model, path)
                handle = gate.register_forward_hook(lambda m, _i, out: neutral_gate(out, m))
                stack.callback(handle.remove)
            else:
                parent_path, _, name = path.rpartition(".")
                parent = model.get_submodule(parent_path)
                setattr(parent, name, nn.Identity())
                stack.callback(setattr, parent, name, module)
        yield model


@torch.no_grad()
def mean_gate_outputs(
    model: nn.Module,
    paths: Sequence[str],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: str | torch.device = "cpu",
) -> dict[str, list[torch.Tensor]]:
    """Per path, the gate's output averaged over all images of ``batches``: one tensor of one image's gate shape
    (e.g. (C, 1, 1)) per gate call of a forward pass."""
    sums: dict[str, list[torch.Tensor]] = {path: [] for path in paths}
    calls = dict.fromkeys(paths, 0)

    def accumulate(path: str, output: torch.Tensor) -> None:
        total = output.detach().float().sum(0)
        if calls[path] < len(sums[path]):
            sums[path][calls[path]] += total
        else:
            sums[path].append(total)
        calls[path] += 1

    handles = [
        gate_of(model, path).register_forward_hook(lambda _m, _i, out, path=path: accumulate(path, out))
        for path in paths
    ]
    count = 0
    try:
        model.eval()
        for images, _ in batches:
            calls.update(dict.fromkeys(paths, 0))
            model(images.to(device))
            count += len(images)
    finally:
        for handle in handles:
            handle.remove()
    if count == 0:
        raise ValueError("no images to average the gates over: the data gave no batches")
    return {path: [total / count for total in totals] for path, totals in sums.items()}


@contextmanager
def gates_fixed(model: nn.Module, values: dict[str, list[torch.Tensor]]) -> Iterator[nn.Module]:
    """Within the block, the gate at each path outputs ``values[path]`` (broadcast over the batch) instead of
    its input-dependent value; a gate run k times per pass gets its k values in turn."""
    calls = dict.fromkeys(values, 0)

    def fixed(path: str, output: torch.Tensor) -> torch.Tensor:
        value = values[path][calls[path] % len(values[path])]
        calls[path] += 1
        return value.to(output.dtype).expand_as(output)

    with ExitStack() as stack:
        for path in values:
            handle = gate_of(model, path).register_forward_hook(lambda _m, _i, out, path=path: fixed(path, out))
            stack.callback(handle.remove)
        yield model
