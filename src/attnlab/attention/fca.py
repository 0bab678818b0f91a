"""Frequency Channel Attention (FcaNet)."""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from ._common import ChannelGate, check_positive_int, create_act, pointwise, reduced_channels
from ._registry import register_attention

# (u, v) frequencies of the 7x7 DCT grid (u along H, v along W), in the order of the official code: 'top' and
# 'bot' are the best and the worst of the paper's single-frequency ranking, 'low' goes zig-zag from DC.
FREQUENCIES_7X7: dict[str, tuple[tuple[int, int], ...]] = {
    "top": (
        (0, 0),
        (0, 1),
        (6, 0),
        (0, 5),
        (0, 2),
        (1, 0),
        (1, 2),
        (4, 0),
        (5, 0),
        (1, 6),
        (3, 0),
        (0, 4),
        (0, 6),
        (0, 3),
        (3, 5),
        (2, 2),
        (4, 6),
        (6, 3),
        (3, 3),
        (5, 3),
        (5, 5),
        (2, 1),
        (6, 1),
        (5, 2),
        (5, 4),
        (3, 2),
        (3, 1),
        (4, 1),
        (2, 3),
        (2, 0),
        (6, 5),
        (1, 3),
    ),
    "low": (
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (0, 2),
        (2, 0),
        (2, 1),
        (1, 2),
        (2, 2),
        (0, 3),
        (3, 0),
        (4, 0),
        (0, 4),
        (1, 3),
        (3, 1),
        (0, 5),
        (1, 4),
        (2, 3),
        (3, 2),
        (4, 1),
        (5, 0),
        (0, 6),
        (1, 5),
        (2, 4),
        (3, 3),
        (4, 2),
        (5, 1),
        (6, 0),
        (1, 6),
        (2, 5),
        (3, 4),
        (4, 3),
    ),
    "bot": (
        (6, 6),
        (1, 4),
        (3, 4),
        (3, 6),
        (2, 6),
        (4, 3),
        (1, 1),
        (2, 4),
        (4, 4),
        (4, 5),
        (5, 6),
        (1, 5),
        (4, 2),
        (6, 2),
        (2, 5),
        (5, 1),
        (6, 4),
        (1, 3),
        (6, 5),
        (2, 0),
        (2, 3),
        (4, 1),
        (3, 1),
        (3, 2),
        (5, 4),
        (5, 2),
        (6, 1),
        (2, 1),
        (5, 5),
        (5, 3),
        (3, 3),
        (6, 3),
    ),
}


def select_frequencies(freq_sel: str) -> tuple[tuple[int, int], ...]:
    """The (u, v) pairs of ``freq_sel``: 'top16', 'low4', 'bot32', ... (a ranking and a count from 1 to 32)."""
    match = re.fullmatch(r"(top|low|bot)(\d+)", str(freq_sel))
    if not match or not 1 <= int(match[2]) <= 32:
        raise ValueError(f"freq_sel must be 'top', 'low' or 'bot' followed by 1..32 (e.g. 'top16'), got {freq_sel!r}")
    return FREQUENCIES_7X7[match[1]][: int(match[2])]


def dct_basis(freqs: torch.Tensor, size: int) -> torch.Tensor:
    """Orthonormal DCT-II rows at (possibly fractional) ``freqs`` on ``size`` points: (F,) -> (F, size).

    ``b_f(i) = cos(pi * f * (i + 1/2) / size) * sqrt((1 if f == 0 else 2) / size)``.
    """
    pos = torch.arange(size, device=freqs.device, dtype=freqs.dtype) + 0.5
    basis = torch.cos(math.pi * freqs[:, None] * pos / size) / math.sqrt(size)
    return torch.where(freqs[:, None] == 0, basis, basis * math.sqrt(2))


@register_attention("fca", paper="FcaNet: Frequency Channel Attention Networks", year=2021)
class FrequencyChannelAttention(ChannelGate):
    """Multi-spectral channel attention (Qin, Zhang, Wu, Li, "FcaNet: Frequency Channel Attention Networks",
    ICCV 2021).

    The channels are split into F equal groups (F = 16 for 'top16'); group f is pooled with the 2D DCT basis
    function of frequency (u_f, v_f) of the paper's 7x7 frequency grid (``freq_sel``); the pooled (N, C) vector
    goes through SE's bias-free FC ``C -> C // reduction -> C`` with ``act`` and a sigmoid (the ``gate`` output,
    (N, C, 1, 1)). Parameters: 2 * C * (C // reduction).

    Any input size, without adaptive pooling: the DCT basis is evaluated on the actual H x W grid at the
    frequencies scaled from the 7x7 grid, ``(u * H / 7, v * W / 7)``. For H, W multiples of 7 this is exactly the
    official ImageNet configuration, which sets the DCT size to the feature size (56, 28, 14, 7) and the
    frequencies to ``u * (H // 7)``; other sizes get the same frequencies relative to the map (a fractional DCT
    frequency), where the official code would first adaptive-average-pool to its fixed DCT size. As in the
    official code the basis is not renormalised per size: the DC term is ``mean * sqrt(H * W)``.
    ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(
        self,
        channels: int,
        *,
        freq_sel: str = "top16",
        reduction: float = 16,
        act: str | nn.Module = "relu",
        inplace: bool = False,
    ):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.inplace = inplace
        frequencies = select_frequencies(freq_sel)
        if channels % len(frequencies):
            fitting = f"{freq_sel[:3]}{math.gcd(channels, len(frequencies))}"
            raise ValueError(
                f"channels={channels} must split evenly into the {len(frequencies)} frequencies of {freq_sel!r}; "
                f"use a count that divides {channels}, e.g. freq_sel={fitting!r}"
            )
        self.freq_sel, self.reduction = freq_sel, reduction
        self.num_freq = len(frequencies)
        self.hidden = reduced_channels(channels, reduction)
        u, v = zip(*frequencies)
        # Integer buffers, so .to(dtype) leaves them alone; the basis is built in float32 for the input's size.
        self.register_buffer("freq_h", torch.tensor(u), persistent=False)
        self.register_buffer("freq_w", torch.tensor(v), persistent=False)
        self.fc1 = nn.Conv2d(channels, self.hidden, 1, bias=False)
        self.act = create_act(act)
        self.fc2 = nn.Conv2d(self.hidden, channels, 1, bias=False)
        self.gate = nn.Sigmoid()

    def dct_filters(self, height: int, width: int) -> torch.Tensor:
        """(F, H, W) 2D DCT filters of the selected frequencies for an H x W map."""
        basis_h = dct_basis(self.freq_h.float() * (height / 7), height)
        basis_w = dct_basis(self.freq_w.float() * (width / 7), width)
        return basis_h[:, :, None] * basis_w[:, None, :]

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        filters = self.dct_filters(h, w).to(x.dtype)
        groups = x.reshape(n, self.num_freq, c // self.num_freq, h, w)
        pooled = (groups * filters[None, :, None]).sum((3, 4)).reshape(n, c, 1, 1)
        return self.gate(pointwise(self.fc2, self.act(pointwise(self.fc1, pooled))))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, freq_sel={self.freq_sel!r}, hidden={self.hidden}"
