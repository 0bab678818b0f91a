"""Global Context block (GCNet): `gc` (either fusion) and `gca` (additive fusion, timm's name)."""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_input, reduced_channels
from ._registry import register_attention


@register_attention("gc", paper="GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond", year=2019)
class GlobalContext(nn.Module):
    """Global Context block (Cao, Xu, Lin, Wei, Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and
    Beyond", ICCV Workshops 2019).

    - context modelling: attention pooling, ``context = sum_j softmax_j(W_k x_j) x_j`` over the H*W positions,
      with ``W_k`` a 1x1 conv C -> 1, (N, C, 1, 1);
    - transform: 1x1 conv C -> C/r, LayerNorm([C/r, 1, 1]), ReLU, 1x1 conv C/r -> C;
    - fusion: ``'add'`` (the paper's best, default) gives ``y = x + transform(context)``; ``'mul'`` gives
      ``y = x * sigmoid(transform(context))``.

    ``gate`` is the last step of the transform: a sigmoid for ``'mul'``, an identity for ``'add'`` (there is no
    sigmoid), so a hook on it sees the (N, C, 1, 1) term fused into ``x`` either way.

    ``W_k`` has no bias: the softmax over positions cancels any constant, so a bias would never get a gradient
    (the official code keeps one). Parameters: ``C + (C*C/r + C/r) + 2*C/r + (C/r*C + C)``.

    ``zero_init_last=True`` (default, as the official code) zeroes the last conv so the block starts as the
    identity ('add') or ``x / 2`` ('mul'). Then, at that first step only, the gradient of every parameter before
    the last conv is exactly zero; it flows as soon as one update has made the last conv non-zero.
    """

    def __init__(self, channels: int, *, reduction: float = 16, fusion: str = "add", zero_init_last: bool = True):
        super().__init__()
        if fusion not in ("add", "mul"):
            raise ValueError(f"fusion must be 'add' or 'mul', got {fusion!r}")
        self.channels = channels
        self.reduction = reduction
        self.hidden = reduced_channels(channels, reduction)
        self.fusion = fusion
        self.zero_init_last = zero_init_last
        self.mask_conv = nn.Conv2d(channels, 1, 1, bias=False)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, self.hidden, 1),
            nn.LayerNorm([self.hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(self.hidden, channels, 1),
        )
        self.gate = nn.Identity() if fusion == "add" else nn.Sigmoid()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation: Kaiming-normal (fan-in) mask conv, last conv zero if ``zero_init_last``."""
        nn.init.kaiming_normal_(self.mask_conv.weight, mode="fan_in", nonlinearity="relu")
        if self.zero_init_last:
            nn.init.zeros_(self.transform[-1].weight)
            nn.init.zeros_(self.transform[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels)
        n, c = x.shape[:2]
        weights = torch.softmax(self.mask_conv(x).reshape(n, -1, 1), dim=1)  # (N, H*W, 1)
        context = torch.bmm(x.reshape(n, c, -1), weights).reshape(n, c, 1, 1)
        excitation = self.gate(self.transform(context))
        return x + excitation if self.fusion == "add" else x * excitation

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, reduction={self.reduction}, fusion={self.fusion!r}, "
            f"zero_init_last={self.zero_init_last}"
        )


@register_attention("gca", paper="GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond", year=2019)
class GlobalContextAdd(GlobalContext):
    """The Global Context block with additive fusion only, under timm's name ``gca`` (timm's
    ``GlobalContext(fuse_add=True, fuse_scale=False)``): ``y = x + transform(context)``, see
    :class:`GlobalContext` (Cao et al., ICCV Workshops 2019) for the formula and the parameter count.

    attnlab's ``gc`` already defaults to this fusion, the one the GCNet paper uses; ``gca`` pins it (there is no
    ``fusion`` argument), so a name copied from timm's ``attn_layer='gca'`` means the same thing here. timm's
    ``gc`` is the other fusion, the sigmoid scaling: ``create_attention('gc', C, fusion='mul')``.

    Differences from timm's ``gca`` (the parity test uses the equal configuration): timm's hidden width is
    ``channels / 8`` (``reduction=8`` here, default 16 as the paper), its attention-pooling conv has a bias (a
    constant under the softmax, it changes nothing), and it zeroes only the last conv's weight, not its bias.
    """

    def __init__(self, channels: int, *, reduction: float = 16, zero_init_last: bool = True):
        super().__init__(channels, reduction=reduction, fusion="add", zero_init_last=zero_init_last)
