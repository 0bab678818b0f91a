"""Memory-lean gating: ``relu(bn(c) * g + identity)`` without keeping the BN output for backward.

In ``y = x * g`` with a pooled gate ``g`` (N, C, 1, 1), autograd keeps the full-size ``x`` for ``grad_g =
sum_hw(grad_y * x)``. ``x`` is the output of a BatchNorm whose *input* ``c`` autograd keeps anyway, and ``x`` is
an affine function of ``c`` per channel (``x = c * scale + shift``). :class:`GatedTail` computes the gate
multiply, the residual addition and the ReLU in one autograd node that keeps only ``c`` (the BN's own saved
input: the same storage), the (C,) affine, ``g`` and the output (which the ReLU and the next conv keep anyway),
and recomputes ``x`` elementwise in backward. The maths is that of ``relu(x * g + identity)`` unchanged.

:func:`gated_batch_norm` is what blocks call: the fused path where autograd records a graph (training), the plain
ops otherwise (inference, tracing, export), so exported graphs are unchanged.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from ._common import ChannelGate, global_avg_pool, global_max_pool, has_forward_hooks, records_graph
from .cbam import CBAM

__all__ = [
    "GatedChannelPool",
    "GatedTail",
    "MeanGatedTail",
    "RecomputedPool",
    "attended",
    "batch_norm_affine",
    "can_fuse",
    "attention_tail",
    "gate_excitation",
    "gated_batch_norm",
    "gated_tail",
    "pools_by_mean",
    "unfused_copy",
]


def _sum_grad_times_x(
    grad: torch.Tensor, source: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, shape: torch.Size
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(grad * x).sum_to_size(shape)`` for ``x = source * scale + shift`` (``scale``, ``shift``: (1 or N, C, 1,
    1)), and the full-size temporary it used (free for the caller to overwrite; None when there was none). In
    float32/64, without recomputing ``x`` (one full-size temporary and memory pass less):

    - pooled (N, C, 1, 1) ``shape``: ``scale * sum_hw(grad * source) + shift * sum_hw(grad)``;
    - spatial (N, 1, H, W) ``shape``: the same sums over channels, as (1, C) x (C, HW) products per sample."""
    n, c, h, w = source.shape
    summed_shape = tuple(shape) if grad.dtype == source.dtype in (torch.float32, torch.float64) else None
    if summed_shape == (n, c, 1, 1):
        product = grad * source
        return torch.addcmul(product.sum((2, 3), keepdim=True) * scale, grad.sum((2, 3), keepdim=True), shift), product
    if summed_shape == (n, 1, h, w) and grad.is_contiguous() and source.is_contiguous():
        product = grad * source

        def rows(t: torch.Tensor) -> torch.Tensor:
            return t.to(grad.dtype).expand(n, c, 1, 1).reshape(n, 1, c)

        summed = torch.baddbmm(torch.bmm(rows(scale), product.view(n, c, h * w)), rows(shift), grad.view(n, c, h * w))
        return summed.view(n, 1, h, w), product
    return (grad * _affine(source, scale, shift)).sum_to_size(shape), None


def _affine(source: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``source * scale + shift`` for (1 or N, C, 1, 1) ``scale``, ``shift``, as a product and an in-place add:
    two vectorised passes, 2-3x faster on CPU than ``addcmul``, which runs a scalar loop when two of its operands
    broadcast."""
    return (source * scale).add_(shift)


def _grad_through_gate(
    grad: torch.Tensor,
    gate: torch.Tensor,
    spread: torch.Tensor | None,
    buffer: torch.Tensor | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``grad * gate (+ spread)`` in ``dtype``, written into ``buffer`` (the full-size temporary of
    :func:`_sum_grad_times_x`, free by now) when the product has its dtype already, else into a new tensor.
    ``spread``, a pool's (N, C, 1, 1) gradient over space, is added in place, not through ``addcmul`` (see
    :func:`_affine`)."""
    fits = buffer is not None and buffer.dtype == dtype == torch.promote_types(grad.dtype, gate.dtype)
    product = torch.mul(grad, gate, out=buffer) if fits else grad * gate
    return (product if spread is None else product.add_(spread)).to(dtype)


def _grads_of_gate_product(
    ctx, grad: torch.Tensor, gate: torch.Tensor, source: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The gradients of ``x`` and ``gate`` (inputs 0 and 1 of ``ctx``'s Function, dtypes ``ctx.dtypes[:2]``) of
    ``x * gate`` for ``x = source * scale + shift``, as far as they are needed; ``grad_x`` reuses the temporary of
    ``grad_gate``."""
    x_dtype, gate_dtype = ctx.dtypes[:2]
    grad_x = grad_gate = buffer = None
    if ctx.needs_input_grad[1]:
        grad_gate, buffer = _sum_grad_times_x(grad, source, scale, shift, gate.shape)
        grad_gate = grad_gate.to(gate_dtype)
    if ctx.needs_input_grad[0]:
        grad_x = _grad_through_gate(grad, gate, None, buffer, x_dtype)
    return grad_x, grad_gate


def _gate_product(
    ctx, x: torch.Tensor, gate: torch.Tensor, identity: torch.Tensor | None, overwrite: bool
) -> torch.Tensor:
    """``x * gate (+ identity)``; with ``overwrite`` written into ``x`` (marked dirty on ``ctx``) when the result
    has ``x``'s dtype, instead of allocating (eager only: the compiler plans its own buffers)."""
    dtype = torch.promote_types(x.dtype, gate.dtype)
    if identity is not None:
        dtype = torch.promote_types(dtype, identity.dtype)
    into = {"out": x} if overwrite and dtype == x.dtype and not torch.compiler.is_compiling() else {}
    if into:
        ctx.mark_dirty(x)
    return torch.mul(x, gate, **into) if identity is None else torch.addcmul(identity, x, gate, **into)


def _tail_forward(ctx, x, gate, identity, source, scale, shift, relu: bool, overwrite: bool) -> torch.Tensor:
    """The forward both tails share: ``relu?(x * gate + identity?)`` (see :func:`_gate_product`), keeping ``gate``,
    ``source``, the affine and (behind a ReLU) the output for backward."""
    out = _gate_product(ctx, x, gate, identity, overwrite)
    if relu:
        out = out.relu_()
    ctx.relu = relu
    ctx.dtypes = (x.dtype, gate.dtype, None if identity is None else identity.dtype)
    ctx.save_for_backward(gate, source, scale, shift, out if relu else None)
    return out


def _tail_backward_start(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The gradient behind the ReLU, and the saved ``gate``, ``source``, ``scale``, ``shift``."""
    gate, source, scale, shift, out = ctx.saved_tensors
    if ctx.relu:
        grad = torch.ops.aten.threshold_backward(grad, out, 0)
    return grad, gate, source, scale, shift


class GatedTail(torch.autograd.Function):
    """``out = x * gate (+ identity) (-> relu)``; backward recomputes ``x = source * scale + shift``. With
    ``overwrite`` the output is written into ``x``, which the caller guarantees nothing else reads."""

    @staticmethod
    def forward(ctx, x, gate, identity, source, scale, shift, relu, overwrite):
        return _tail_forward(ctx, x, gate, identity, source, scale, shift, relu, overwrite)

    @staticmethod
    def backward(ctx, grad):
        grad, gate, source, scale, shift = _tail_backward_start(ctx, grad)
        grad_x, grad_gate = _grads_of_gate_product(ctx, grad, gate, source, scale, shift)
        grad_identity = grad.to(ctx.dtypes[2]) if ctx.needs_input_grad[2] else None
        return grad_x, grad_gate, grad_identity, None, None, None, None, None


def _excitation_backward(
    gate: torch.Tensor, grad_gate: torch.Tensor, pooled: tuple[torch.Tensor, ...], params: tuple[torch.Tensor, ...]
) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """Backward of a gate's small graph kept on a one-node tail: the gradients of the ``pooled`` leaves it was
    computed from, and of ``params`` (None for a frozen one)."""
    trained = [p.requires_grad for p in params]
    # retain_graph: the small graph must survive a backward(retain_graph=True) of the whole model
    grads = torch.autograd.grad(
        gate, [*pooled, *itertools.compress(params, trained)], grad_gate.to(gate.dtype), retain_graph=True
    )
    rest = iter(grads[len(pooled) :])
    return list(grads[: len(pooled)]), [next(rest) if t else None for t in trained]


class MeanGatedTail(torch.autograd.Function):
    """``relu?(x * excite(mean_hw(x)) + identity?)`` in one node, for a gate that pools by the spatial mean
    (:func:`pools_by_mean`); ``x = source * scale + shift`` as in :class:`GatedTail`, which keeps the same tensors.

    The pool and the (N, C) excitation run inside the node, their small graph kept on it, so backward can run the
    excitation's backward between ``grad_gate`` and ``grad_x`` and write ``grad_x = grad * gate + grad_pooled /
    HW`` in one pass, into the buffer of ``grad * source`` (free by then), instead of autograd adding the pool's
    gradient into ``grad * gate`` in a second pass and allocation. With ``overwrite`` the forward writes into
    ``x``, which the caller guarantees nothing else reads, instead of allocating the output."""

    @staticmethod
    def forward(ctx, x, identity, source, scale, shift, relu, overwrite, excite, *params):
        with torch.enable_grad():
            pooled = x.detach().mean((2, 3), keepdim=True).requires_grad_()
            gate = excite(pooled)
        ctx.graph, ctx.area = (pooled, gate, params), x.shape[2] * x.shape[3]
        return _tail_forward(ctx, x, gate.detach(), identity, source, scale, shift, relu, overwrite)

    @staticmethod
    def backward(ctx, grad):
        grad, g, source, scale, shift = _tail_backward_start(ctx, grad)
        pooled, gate, params = ctx.graph
        x_dtype, _, identity_dtype = ctx.dtypes
        grad_gate, buffer = _sum_grad_times_x(grad, source, scale, shift, g.shape)
        (grad_pooled,), grad_params = _excitation_backward(gate, grad_gate, (pooled,), params)
        grad_x = grad_identity = None
        if ctx.needs_input_grad[0]:
            grad_x = _grad_through_gate(grad, g, grad_pooled / ctx.area, buffer, x_dtype)
        if ctx.needs_input_grad[1]:
            grad_identity = grad.to(identity_dtype)
        return grad_x, grad_identity, None, None, None, None, None, None, *grad_params


def pools_by_mean(attention: nn.Module) -> bool:
    """Whether ``attention`` is a :class:`ChannelGate` whose excitation is ``excite(spatial mean)``."""
    cls = type(attention)
    return (
        isinstance(attention, ChannelGate) and cls.pool is ChannelGate.pool and cls.excitation is ChannelGate.excitation
    )


class RecomputedPool(torch.autograd.Function):
    """``pool(x)`` for a parameter-free ``pool`` whose backward reads ``x`` (:meth:`ChannelGate.pool` overridden);
    keeps ``source`` (kept anyway) and recomputes ``x = source * scale + shift`` and the pool in backward."""

    @staticmethod
    def forward(ctx, x, source, scale, shift, pool):
        ctx.pool, ctx.dtype = pool, x.dtype
        ctx.save_for_backward(source, scale, shift)
        return pool(x)

    @staticmethod
    def backward(ctx, grad):
        source, scale, shift = ctx.saved_tensors
        with torch.enable_grad():
            x = _affine(source, scale, shift).to(ctx.dtype).requires_grad_()
            (grad_x,) = torch.autograd.grad(ctx.pool(x), x, grad)
        return grad_x, None, None, None, None


def gate_excitation(
    attention: ChannelGate, x: torch.Tensor, source: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """``attention.excitation(x)`` for ``x == source * scale + shift``; a pool whose backward reads ``x`` is
    recomputed from ``source`` (eager only: the compiler sees the plain ops)."""
    if type(attention).pool is ChannelGate.pool or torch.compiler.is_compiling():
        return attention.excitation(x)
    return attention.excite(RecomputedPool.apply(x, source, scale.detach(), shift.detach(), attention.pool))


def attention_tail(
    attention: ChannelGate | CBAM,
    x: torch.Tensor,
    identity: torch.Tensor | None,
    source: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    *,
    relu: bool,
    overwrite: bool,
    blend: torch.Tensor | None = None,
) -> torch.Tensor:
    """``relu?(x * g + identity?)`` for ``x == source * scale + shift`` and the gate ``g = attention.excitation(x)``
    (with ``blend``: ``1 + blend * (g - 1)``, i.e. ``x + blend * (x * g - x)``). A gate that :func:`pools_by_mean`
    runs in one :class:`MeanGatedTail` node (eager), written into ``x`` if ``overwrite``; any other computes its
    excitation first (its pool may keep ``x``, so ``x`` is never overwritten there), then :class:`GatedTail`; CBAM
    runs :func:`_cbam_tail`."""
    if isinstance(attention, CBAM):
        return _cbam_tail(attention, x, identity, source, scale, shift, relu, overwrite, blend)
    if pools_by_mean(attention) and not torch.compiler.is_compiling():
        params = list(attention.parameters())
        excite = attention.excite
        if blend is not None:
            params.append(blend)

            def excite(pooled: torch.Tensor) -> torch.Tensor:
                return 1 + blend * (attention.excite(pooled) - 1)

        return MeanGatedTail.apply(
            x, identity, source, scale.detach(), shift.detach(), relu, overwrite, excite, *params
        )
    gate = gate_excitation(attention, x, source, scale, shift)
    if blend is not None:
        gate = 1 + blend * (gate - 1)
    return gated_tail(x, gate, identity, source, scale, shift, relu)


def _gated_channel_pools(
    ctx, x: torch.Tensor, gate: torch.Tensor, overwrite: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``xg = x * gate`` (into ``x`` with ``overwrite``), its channel max and mean (N, 1, H, W) and the max's
    first argmax channel (N, 1, H, W)."""
    xg = _gate_product(ctx, x, gate, None, overwrite)
    top, index = _channel_max(xg)
    return xg, top, xg.mean(1, keepdim=True), index


def _grad_of_gated(
    grad_xg: torch.Tensor, grad_top: torch.Tensor, grad_mean: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """The gradient reaching ``xg`` from its three uses: itself, its channel mean, its channel max (to the argmax
    channel only: ``torch.max`` semantics; ``amax`` would split it among ties)."""
    grad = grad_xg + grad_mean / grad_xg.shape[1]
    return grad.scatter_add_(1, index, grad_top.to(grad.dtype))


class GatedChannelPool(torch.autograd.Function):
    """CBAM's middle: ``xg = x * gate`` and its channel max and mean (N, 1, H, W); keeps the argmax indices
    (N, 1, H, W) instead of ``xg`` and recomputes ``x = source * scale + shift`` in backward. With ``overwrite``,
    ``xg`` is written into ``x``. The path under torch.compile; eager runs :class:`ExcitedChannelPool`."""

    @staticmethod
    def forward(ctx, x, gate, source, scale, shift, overwrite):
        xg, top, mean, index = _gated_channel_pools(ctx, x, gate, overwrite)
        ctx.dtypes = (x.dtype, gate.dtype)
        ctx.save_for_backward(gate, source, scale, shift, index)
        return xg, top, mean

    @staticmethod
    def backward(ctx, grad_xg, grad_top, grad_mean):
        gate, source, scale, shift, index = ctx.saved_tensors
        grad = _grad_of_gated(grad_xg, grad_top, grad_mean, index)
        return *_grads_of_gate_product(ctx, grad, gate, source, scale, shift), None, None, None, None


class ExcitedChannelPool(torch.autograd.Function):
    """CBAM's channel half in one node: the spatial mean and max (N, C, 1, 1) of ``x``, the channel gate ``g =
    excite(mean, max)`` (its small graph kept on the node, as in :class:`MeanGatedTail`), then
    :class:`GatedChannelPool`'s ``xg = x * g`` and pools. Returns ``xg``, its channel max and mean, and ``g``
    (detached). Keeps the pools' argmax indices, not ``x``. Backward writes ``grad_x = grad_xg * g + grad_mean /
    HW`` and scatters the max's gradient into it, where autograd would fill a zero tensor for the max's gradient
    and add it and the mean's into ``grad_x`` in two more full-size passes."""

    @staticmethod
    def forward(ctx, x, source, scale, shift, overwrite, excite, *params):
        with torch.enable_grad():
            mean = x.detach().mean((2, 3), keepdim=True).requires_grad_()
            top, where = _spatial_max(x.detach())
            gate = excite(mean, top.requires_grad_())
        g = gate.detach()
        xg, channel_top, channel_mean, index = _gated_channel_pools(ctx, x, g, overwrite)
        ctx.graph, ctx.dtype = (mean, top, gate, params), x.dtype
        ctx.save_for_backward(source, scale, shift, where, index)
        ctx.mark_non_differentiable(g)
        return xg, channel_top, channel_mean, g

    @staticmethod
    def backward(ctx, grad_xg, grad_top, grad_mean, _):
        source, scale, shift, where, index = ctx.saved_tensors
        mean, top, gate, params = ctx.graph
        grad = _grad_of_gated(grad_xg, grad_top, grad_mean, index)
        grad_gate, buffer = _sum_grad_times_x(grad, source, scale, shift, gate.shape)
        (grad_mean_hw, grad_max_hw), grad_params = _excitation_backward(gate, grad_gate, (mean, top), params)
        grad_x = None
        if ctx.needs_input_grad[0]:
            n, c, h, w = grad.shape
            grad_x = _grad_through_gate(grad, gate.detach(), grad_mean_hw / (h * w), buffer, ctx.dtype)
            grad_x.view(n, c, h * w).scatter_add_(2, where, grad_max_hw.view(n, c, 1).to(grad_x.dtype))
        return grad_x, None, None, None, None, None, *grad_params


def _channel_max(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x.max(1, keepdim=True)``: the max over channels of (N, C, H, W) and its first argmax, (N, 1, H, W) each.
    ``max_pool1d`` over the (N, HW, C) view of the same memory gives the same values and indices, vectorised across
    positions: 3-6x faster on CPU than ``max(1)`` (whose index-keeping reduction over the strided channel axis
    is not) at ResNet-50's stage shapes, forward and backward, and never slower than ``amax(1)`` (9x faster at
    2048 x 5 x 5). (Without ``return_indices``, ``max_pool1d`` takes a 10-40x slower kernel.) The compiler gets
    the plain reduction, which it fuses itself (its layout planning fails on this view with symbolic sizes)."""
    if torch.compiler.is_compiling():
        return x.max(1, keepdim=True)
    n, c, h, w = x.shape
    top, index = torch.nn.functional.max_pool1d(x.flatten(2).transpose(1, 2), c, return_indices=True)
    return top.view(n, 1, h, w), index.view(n, 1, h, w)


def _spatial_max(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x.flatten(2).max(2)``: the max over space of (N, C, H, W), (N, C, 1, 1), and its first flat argmax, (N,
    C, 1). From 17 columns up in two steps, each row's column maxima by ``max_pool1d`` over rows (vectorised across
    the contiguous columns, like :func:`_channel_max`), then the first maximal position among those: the same
    values and indices, 1.1-3x faster on CPU at 20-56 columns (slower below 16). Channels-last maps and the
    compiler (which fuses the reduction itself) get the plain one."""
    n, c, h, w = x.shape
    if w <= 16 or not x.is_contiguous() or torch.compiler.is_compiling():
        top, index = x.flatten(2).max(2, keepdim=True)
        return top.unsqueeze(-1), index
    columns, rows = torch.nn.functional.max_pool1d(x.view(n * c, h, w).transpose(1, 2), h, return_indices=True)
    columns, rows = columns.view(n, c, w), rows.view(n, c, w)
    top = columns.amax(2, keepdim=True)
    flat = rows * w + torch.arange(w, device=x.device)
    # of the columns that reach the maximum, the one whose maximum comes first in memory order
    index = torch.where(columns == top, flat, h * w).amin(2, keepdim=True)
    return top.unsqueeze(-1), index


def _cbam_tail(
    attention: CBAM,
    x: torch.Tensor,
    identity: torch.Tensor | None,
    source: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    relu: bool,
    overwrite: bool,
    blend: torch.Tensor | None = None,
) -> torch.Tensor:
    """CBAM on ``x = source * scale + shift``, then the residual tail, keeping only small tensors for backward;
    with ``blend`` (no residual) ``x + blend * (cbam(x) - x)``. ``overwrite``: ``x`` may be written into (the
    pools above saved none of it); the channel-gated ``xg`` always may."""
    overwrite = overwrite and blend is None
    if torch.compiler.is_compiling():  # the compiler cannot trace ExcitedChannelPool's nested backward
        channel = attention.channel_excitation(global_avg_pool(x), _spatial_max(x)[0])
        xg, top, mean = GatedChannelPool.apply(x, channel, source, scale, shift, overwrite)
    else:
        xg, top, mean, channel = ExcitedChannelPool.apply(
            x,
            source,
            scale.detach(),
            shift.detach(),
            overwrite,
            attention.channel_excitation,
            *attention.mlp.parameters(),
        )
    spatial = attention.spatial_excitation(top, mean)
    # xg == source * (scale * channel) + shift * channel: an affine of source per sample and channel
    channel = channel.detach()
    if blend is None:
        return gated_tail(xg, spatial, identity, source, scale * channel, shift * channel, relu, overwrite=True)
    # x * (1 - blend) + xg * (blend * spatial): two tails, each gate small, neither keeps a full-size tensor
    attended = gated_tail(xg, blend * spatial, None, source, scale * channel, shift * channel, False, overwrite=True)
    return gated_tail(x, 1 - blend, attended, source, scale, shift, False)


def attended(
    attention: nn.Module,
    x: torch.Tensor,
    source: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    blend: torch.Tensor | None = None,
) -> torch.Tensor:
    """``attention(x)``, or with a blend weight ``x + blend * (attention(x) - x)``, for ``x == source * scale +
    shift`` and an ``attention`` that :func:`can_fuse` accepts; keeps nothing full-size but ``source``."""
    # x is the host's output, which its other forward hooks may have seen: not overwritten
    return attention_tail(attention, x, None, source, scale, shift, relu=False, overwrite=False, blend=blend)


def gated_tail(
    x: torch.Tensor,
    gate: torch.Tensor,
    identity: torch.Tensor | None,
    source: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    relu: bool,
    overwrite: bool = False,
) -> torch.Tensor:
    """``relu?(x * gate + identity?)`` through :class:`GatedTail`; ``x`` must equal ``source * scale + shift``
    (``scale``, ``shift`` broadcast over ``source`` and carry no gradient). ``overwrite``: see :class:`GatedTail`."""
    return GatedTail.apply(x, gate, identity, source, scale.detach(), shift.detach(), relu, overwrite)


def unfused_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose gates always run their own ``forward``: the straightforward reference the
    fused path must equal (a no-op forward hook on each gate keeps :func:`can_fuse` false)."""
    reference = copy.deepcopy(model)
    for module in reference.modules():
        if isinstance(module, (ChannelGate, CBAM)):
            module.register_forward_hook(lambda *args: None)
    return reference


def can_fuse(bn: nn.Module, attention: nn.Module | None, bn_hooks: bool = False) -> bool:
    """Whether :func:`gated_batch_norm` takes the fused path for this BN and gate now: a plain ``BatchNorm2d`` and
    a :class:`ChannelGate` or CBAM, neither with forward hooks (the fused path calls neither module's
    ``forward``), autograd on, and no tracing or export. ``bn_hooks=True`` allows hooks on the BN (for a caller
    that is itself one)."""
    return (
        type(bn) is nn.BatchNorm2d
        and isinstance(attention, (ChannelGate, CBAM))
        and records_graph()
        and (bn_hooks or not has_forward_hooks(bn))
        and not has_forward_hooks(attention)
    )


def batch_norm_affine(
    bn: nn.BatchNorm2d, mean: torch.Tensor, invstd: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, C, 1, 1) ``scale``, ``shift`` with ``bn(c) == c * scale + shift`` for the given statistics, in float32
    at least (a bf16 ``shift = bias - mean * scale`` would lose the BN output's small values to cancellation)."""
    dtype = torch.promote_types(mean.dtype, torch.float32)
    scale = invstd.to(dtype) if bn.weight is None else bn.weight.to(dtype) * invstd.to(dtype)
    shift = -mean.to(dtype) * scale if bn.bias is None else bn.bias.to(dtype) - mean.to(dtype) * scale
    return scale.detach().reshape(1, -1, 1, 1), shift.detach().reshape(1, -1, 1, 1)


def _batch_norm_with_affine(bn: nn.BatchNorm2d, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``bn(c)`` as ``nn.BatchNorm2d.forward`` computes it (running statistics updated likewise), and the affine
    ``scale``, ``shift`` that maps ``c`` to it."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    batch_stats = bn.training or bn.running_mean is None
    if batch_stats:
        running = (bn.running_mean, bn.running_var) if bn.training or not bn.track_running_stats else (None, None)
        x, mean, invstd = torch.native_batch_norm(c, bn.weight, bn.bias, *running, True, factor, bn.eps)
    else:
        x = torch.nn.functional.batch_norm(c, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        mean, invstd = bn.running_mean, torch.rsqrt(bn.running_var + bn.eps)
    scale, shift = batch_norm_affine(bn, mean, invstd)
    return x, scale, shift


def gated_batch_norm(
    bn: nn.Module,
    c: torch.Tensor,
    attention: nn.Module,
    identity: torch.Tensor | None = None,
    relu: bool = False,
) -> torch.Tensor:
    """``relu?(attention(bn(c)) + identity?)``, the tail of an attention block (``relu`` and ``identity``
    optional). Training with a :class:`ChannelGate` after a ``BatchNorm2d`` keeps nothing full-size for backward
    that the plain block would not keep (see the module docstring); otherwise the plain ops run: with autograd
    off the gate multiply, the addition and the ReLU go in place into the BN output."""
    if can_fuse(bn, attention):
        x, scale, shift = _batch_norm_with_affine(bn, c)
        return attention_tail(attention, x, identity, c, scale, shift, relu=relu, overwrite=True)
    x = bn(c)
    if (
        isinstance(attention, (ChannelGate, CBAM))
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and not has_forward_hooks(attention)
    ):
        # the gates, and the addition with the last one, in place in the BN output (nothing else reads it)
        if isinstance(attention, CBAM):
            x.mul_(attention.channel_excitation(global_avg_pool(x), global_max_pool(x)))
            gate = attention.spatial_excitation(_channel_max(x)[0], x.mean(1, keepdim=True))
        else:
            gate = attention.excitation(x)
        out = x.mul_(gate) if identity is None else torch.addcmul(identity, x, gate, out=x)
    else:
        out = attention(x)
        if identity is not None:
            out += identity
    return out.relu_() if relu else out
