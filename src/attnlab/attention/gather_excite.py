"""Gather-Excite."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import ChannelGate, check_positive_int, create_act, global_avg_pool, reduced_channels
from ._registry import register_attention


@register_attention("ge", paper="Gather-Excite: Exploiting Feature Context in Convolutional Neural Networks", year=2018)
class GatherExcite(ChannelGate):
    """Gather-Excite (Hu, Shen, Albanie, Sun, Vedaldi, "Gather-Excite: Exploiting Feature Context in
    Convolutional Neural Networks", NeurIPS 2018).

    ``y = x * sigmoid(upsample(excite(gather(x))))``. The gather aggregates over an ``extent``: 0 is global
    (the map is reduced to 1x1), ``e`` in {2, 4, 8, ...} reduces (H, W) to (ceil(H/e), ceil(W/e)); the result is
    upsampled back to (H, W) with nearest interpolation. The variants of the paper:

    - GE-theta-minus (default, ``extra_params=False``): parameter-free average pooling; for ``extent=e`` an
      average pool of kernel 2e-1, stride e, padding e-1 that ignores the padding.
    - GE-theta (``extra_params=True``): log2(e) depthwise 3x3 stride-2 convs, each with BN and ``act`` between
      them. The global GE-theta is one depthwise conv as large as the feature map followed by BN, so it needs
      ``feat_size=(H, W)`` and only accepts inputs of that size.
    - GE-theta-plus (``use_mlp=True``, with either gather): the excite is SE's bottleneck, biased 1x1 convs
      ``C -> C // reduction -> C`` with ``act``.

    timm's ``GatherExcite`` defaults to ``use_mlp=True`` (GE-theta-plus) with ``C / 16`` hidden units; here the
    MLP is opt-in. The default is the global GE-theta-minus, the one variant with neither parameters nor a fixed
    input size.
    Parameters: 0; GE-theta adds 11C per stride-2 conv (9C + 2C BN), or C*H*W + 2C when global; the MLP adds
    2*C*hidden + hidden + C. The gate output is (N, C, H, W), or (N, C, 1, 1) for the global extent.
    ``inplace=True`` scales the input in place at inference (see :func:`apply_gate`).
    """

    def __init__(
        self,
        channels: int,
        *,
        extent: int = 0,
        extra_params: bool = False,
        use_mlp: bool = False,
        reduction: float = 16,
        act: str | nn.Module = "relu",
        feat_size: int | tuple[int, int] | None = None,
        inplace: bool = False,
    ):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.inplace = inplace
        is_power_of_two = isinstance(extent, int) and extent >= 2 and not extent & (extent - 1)
        if isinstance(extent, bool) or not isinstance(extent, int) or not (extent == 0 or is_power_of_two):
            raise ValueError(f"extent must be 0 (global) or a power of 2 >= 2, got {extent!r}")
        global_theta = extra_params and extent == 0
        if global_theta and feat_size is None:
            raise ValueError(
                "the global GE-theta gather (extent=0, extra_params=True) is a depthwise conv as large as the feature "
                "map; pass feat_size=(H, W), or use extent=2/4/8 or extra_params=False for any input size"
            )
        if feat_size is not None and not global_theta:
            raise ValueError("feat_size is only used by the global GE-theta gather (extent=0, extra_params=True)")
        self.extent, self.extra_params, self.use_mlp, self.reduction = extent, extra_params, use_mlp, reduction
        self.feat_size = None
        if global_theta:
            size = (feat_size, feat_size) if isinstance(feat_size, int) else tuple(feat_size)
            self.feat_size = tuple(check_positive_int("feat_size", s) for s in size)
            if len(self.feat_size) != 2:
                raise ValueError(f"feat_size must be an int or (H, W), got {feat_size!r}")
            self.gather = nn.Sequential(
                nn.Conv2d(channels, channels, self.feat_size, groups=channels, bias=False), nn.BatchNorm2d(channels)
            )
        elif extra_params:
            layers: list[nn.Module] = []
            for i in range(int(math.log2(extent))):
                if i:
                    layers.append(create_act(act))
                layers += [
                    nn.Conv2d(channels, channels, 3, stride=2, padding=1, groups=channels, bias=False),
                    nn.BatchNorm2d(channels),
                ]
            self.gather = nn.Sequential(*layers)
        else:
            self.gather = None
        self.hidden = reduced_channels(channels, reduction) if use_mlp else None
        self.mlp = (
            nn.Sequential(nn.Conv2d(channels, self.hidden, 1), create_act(act), nn.Conv2d(self.hidden, channels, 1))
            if use_mlp
            else nn.Identity()
        )
        self.gate = nn.Sigmoid()

    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, 1, 1) for the global extent, else (N, C, ceil(H/e), ceil(W/e))."""
        if self.gather is not None:
            return self.gather(x)
        if self.extent == 0:
            return global_avg_pool(x)
        e = self.extent
        return F.avg_pool2d(x, 2 * e - 1, stride=e, padding=e - 1, count_include_pad=False)

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        if self.feat_size is not None and tuple(x.shape[-2:]) != self.feat_size:
            raise ValueError(
                f"expected a {self.feat_size[0]}x{self.feat_size[1]} feature map (global GE-theta), got "
                f"{x.shape[-2]}x{x.shape[-1]}; build the module with feat_size=({x.shape[-2]}, {x.shape[-1]})"
            )
        excite = self.mlp(self._gather(x))
        if self.extent:
            excite = F.interpolate(excite, size=x.shape[-2:], mode="nearest")
        return self.gate(excite)

    def extra_repr(self) -> str:
        extent = self.extent or "global"
        return (
            f"channels={self.channels}, extent={extent}, extra_params={self.extra_params}, use_mlp={self.use_mlp}"
            + (f", hidden={self.hidden}" if self.use_mlp else "")
        )
