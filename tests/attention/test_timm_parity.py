"""Numerical parity with timm: every attention type timm also has, built in the equal configuration, with timm's
weights copied over by an explicit key map, gives the same output and the same input gradient.

Where attnlab's defaults differ from timm's (SE/coord/scoord/SK widths rounded to multiples of 8, CBAM's MLP bias,
ELA's paper configuration, ...), the case passes the configuration that computes the same function; each
attnlab docstring states the difference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from attnlab.attention import create_attention

timm_layers = pytest.importorskip("timm.layers", reason="timm is not installed: nothing to compare against")
from timm.layers.cbam import CbamModule, LightCbamModule  # noqa: E402
from timm.layers.coord_attn import CoordAttn, EfficientLocalAttn, SimpleCoordAttn, StripAttn  # noqa: E402

ATOL = 1e-5


def _flip_pool_order(w: torch.Tensor) -> torch.Tensor:
    return w.flip(1)  # timm pools [mean, max] into the spatial conv, attnlab [max, mean]


def _linear_to_conv(w: torch.Tensor) -> torch.Tensor:
    return w[:, :, None, None]


def _conv2d_to_conv1d(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0], w.shape[1], -1)


def _channel_shape(w: torch.Tensor) -> torch.Tensor:
    return w[:, None, None]  # LayerNorm2d (C,) -> nn.LayerNorm([C, 1, 1]) (C, 1, 1)


@dataclass
class Case:
    """``ours()`` and ``theirs()`` build the two modules; ``rename`` maps attnlab key prefixes to timm's (every key
    of both must be covered, except timm keys in ``unused``); ``convert`` transforms a tensor by attnlab key."""

    ours: Callable[[], nn.Module]
    theirs: Callable[[], nn.Module]
    rename: dict[str, str]
    convert: dict[str, Callable[[torch.Tensor], torch.Tensor]] = field(default_factory=dict)
    unused: tuple[str, ...] = ()
    channels: int = 64
    conv_kind: bool = False


def gc_ours(fusion: str) -> nn.Module:
    module = create_attention(
        "gc" if fusion == "mul" else "gca", 64, reduction=8, **({"fusion": "mul"} if fusion == "mul" else {})
    )
    module.transform[1].eps = 1e-6  # timm's LayerNorm2d eps (the official GCNet's nn.LayerNorm has 1e-5)
    return module


CASES: dict[str, Case] = {
    "se": Case(
        lambda: create_attention("se", 64, reduction=16),
        lambda: timm_layers.SEModule(64, rd_channels=4),  # timm's default rounds 64/16 up to 8
        {"fc1": "fc1", "fc2": "fc2"},
    ),
    "ese": Case(lambda: create_attention("ese", 64), lambda: timm_layers.EffectiveSEModule(64), {"fc": "fc"}),
    "eca": Case(lambda: create_attention("eca", 64), lambda: timm_layers.EcaModule(64), {"conv": "conv"}),
    "eca-256": Case(
        lambda: create_attention("eca", 256), lambda: timm_layers.EcaModule(256), {"conv": "conv"}, channels=256
    ),
    "ecam": Case(
        lambda: create_attention("ecam", 64),
        lambda: timm_layers.EcaModule(64, use_mlp=True),
        {"conv1": "conv", "conv2": "conv2"},
    ),
    "ceca": Case(lambda: create_attention("ceca", 64), lambda: timm_layers.CecaModule(64), {"conv": "conv"}),
    "ceca-256": Case(
        lambda: create_attention("ceca", 256), lambda: timm_layers.CecaModule(256), {"conv": "conv"}, channels=256
    ),
    # timm 1.0.31's GatherExcite(use_mlp=True) does not build (it passes device/dtype positionally to ConvMlp), so
    # only the parameter-free GE-theta-minus (timm's use_mlp=False) is compared
    "ge": Case(lambda: create_attention("ge", 64), lambda: timm_layers.GatherExcite(64, use_mlp=False), {}),
    "ge-extent2": Case(
        lambda: create_attention("ge", 64, extent=2),
        lambda: timm_layers.GatherExcite(64, extent=2, use_mlp=False),
        {},
    ),
    "ge-extent4": Case(
        lambda: create_attention("ge", 64, extent=4),
        lambda: timm_layers.GatherExcite(64, extent=4, use_mlp=False),
        {},
    ),
    "gc": Case(
        lambda: gc_ours("mul"),
        lambda: timm_layers.GlobalContext(64),  # timm's gc is the scaling fusion
        {
            "mask_conv": "conv_attn",
            "transform.0": "mlp_scale.fc1",
            "transform.1": "mlp_scale.norm",
            "transform.3": "mlp_scale.fc2",
        },
        {"transform.1.weight": _channel_shape, "transform.1.bias": _channel_shape},
        unused=("conv_attn.bias",),  # a constant under the softmax over positions
    ),
    "gca": Case(
        lambda: gc_ours("add"),
        lambda: timm_layers.GlobalContext(64, fuse_add=True, fuse_scale=False),
        {
            "mask_conv": "conv_attn",
            "transform.0": "mlp_add.fc1",
            "transform.1": "mlp_add.norm",
            "transform.3": "mlp_add.fc2",
        },
        {"transform.1.weight": _channel_shape, "transform.1.bias": _channel_shape},
        unused=("conv_attn.bias",),
    ),
    "cbam": Case(
        lambda: create_attention("cbam", 64, bias=False),
        lambda: CbamModule(64),
        {
            "mlp.0": "channel.fc1",
            "mlp.2": "channel.fc2",
            "spatial_conv": "spatial.conv.conv",
            "spatial_bn": "spatial.conv.bn",
        },
        {"spatial_conv.weight": _flip_pool_order},
    ),
    "lcbam": Case(
        lambda: create_attention("lcbam", 64, bias=False),
        lambda: LightCbamModule(64),
        {
            "mlp.0": "channel.fc1",
            "mlp.2": "channel.fc2",
            "spatial_conv": "spatial.conv.conv",
            "spatial_bn": "spatial.conv.bn",
        },
    ),
    "coord": Case(
        lambda: create_attention("coord", 64),  # mid = max(64 // 32, 8) = 8
        lambda: CoordAttn(64, rd_channels=8, bias=True),
        {"conv": "conv1", "bn": "bn1", "conv_h": "conv_h", "conv_w": "conv_w"},
    ),
    "scoord": Case(
        lambda: create_attention("scoord", 64),  # mid = 64 // 6 = 10
        lambda: SimpleCoordAttn(64, rd_channels=10),
        {"conv": "fc1", "conv_h": "fc_h", "conv_w": "fc_w"},
        {"conv.weight": _linear_to_conv, "conv_h.weight": _linear_to_conv, "conv_w.weight": _linear_to_conv},
    ),
    "ela": Case(
        lambda: create_attention("ela", 64, shared=False, norm_groups=1, act="swish"),
        lambda: EfficientLocalAttn(64),
        {"conv_h": "conv_h", "conv_w": "conv_w", "norm_h": "norm_h", "norm_w": "norm_w"},
        {"conv_h.weight": _conv2d_to_conv1d, "conv_w.weight": _conv2d_to_conv1d},
    ),
    "strip": Case(
        lambda: create_attention("strip", 64),
        lambda: StripAttn(64),
        {"conv_h": "conv_h", "conv_w": "conv_w"},
    ),
    "nl": Case(
        lambda: create_attention("nl", 64, reduction=8, scale=True),
        lambda: timm_layers.NonLocalAttn(64),
        {"theta": "t", "phi": "p", "g": "g", "out": "z", "norm": "norm"},
    ),
    "sk": Case(
        lambda: create_attention("sk", 64, 128),  # d = max(128 // 16, 32) = 32
        lambda: timm_layers.SelectiveKernel(64, 128, groups=32, split_input=False, rd_channels=32),
        {
            "branches.0.0": "paths.0.conv",
            "branches.0.1": "paths.0.bn",
            "branches.1.0": "paths.1.conv",
            "branches.1.1": "paths.1.bn",
            "fuse.0": "attn.fc_reduce",
            "fuse.1": "attn.bn",
            "select": "attn.fc_select",
        },
        conv_kind=True,
    ),
    "splat": Case(
        lambda: create_attention("splat", 64, 128),  # d = max(64 * 2 // 4, 32) = 32
        lambda: timm_layers.SplitAttn(64, 128, norm_layer=nn.BatchNorm2d),
        {"conv": "conv", "bn0": "bn0", "fc1": "fc1", "bn1": "bn1", "fc2": "fc2"},
        conv_kind=True,
    ),
    "splat-groups2": Case(
        lambda: create_attention("splat", 64, 128, groups=2),
        lambda: timm_layers.SplitAttn(64, 128, groups=2, norm_layer=nn.BatchNorm2d),
        {"conv": "conv", "bn0": "bn0", "fc1": "fc1", "bn1": "bn1", "fc2": "fc2"},
        conv_kind=True,
    ),
    "splat-radix1": Case(
        lambda: create_attention("splat", 64, 128, radix=1),
        lambda: timm_layers.SplitAttn(64, 128, radix=1, norm_layer=nn.BatchNorm2d),
        {"conv": "conv", "bn0": "bn0", "fc1": "fc1", "bn1": "bn1", "fc2": "fc2"},
        conv_kind=True,
    ),
}

STRIDED = {"sk-stride2": "sk", "splat-stride2": "splat"}


def randomize(module: nn.Module) -> None:
    """Random values for every float tensor of timm's module (its zero inits would hide differences), scaled by
    fan-in so activations stay near unit size and float32 rounding stays well under the tolerance."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif tensor.dim() > 1:
                tensor.normal_(0, tensor[0].numel() ** -0.5)
            else:
                tensor.normal_(0, 0.3)


def map_key(case: Case, key: str) -> str:
    for ours, theirs in case.rename.items():
        if key.startswith(ours + "."):
            return theirs + key[len(ours) :]
    raise AssertionError(f"attnlab key {key!r} has no mapping to timm")


def build_pair(case: Case, stride: int = 1) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    ours = case.ours()
    theirs = case.theirs()
    if stride != 1:
        ours.stride = stride
        for conv in (m for m in ours.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)):
            conv.stride = (stride, stride)
        for conv in (m for m in theirs.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)):
            conv.stride = (stride, stride)
    randomize(theirs)
    source = theirs.state_dict()
    state = {}
    for key in ours.state_dict():
        value = source[map_key(case, key)]
        state[key] = case.convert.get(key, lambda t: t)(value)
    used = {map_key(case, k) for k in state}
    assert set(source) - used == set(case.unused), f"timm keys not compared: {set(source) - used}"
    ours.load_state_dict(state)
    return ours, theirs


def differences(ours: nn.Module, theirs: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(max abs output difference, max abs input-gradient difference) for one upstream gradient."""
    results = []
    for module in (ours, theirs):
        leaf = x.detach().clone().requires_grad_()
        out = module(leaf)
        torch.manual_seed(1)
        upstream = torch.randn(out.shape)
        (out * upstream).sum().backward()
        results.append((out.detach(), leaf.grad))
    (out_a, grad_a), (out_b, grad_b) = results
    assert out_a.shape == out_b.shape
    return (out_a - out_b).abs().max().item(), (grad_a - grad_b).abs().max().item()


SHAPES = [(2, 7, 5), (3, 8, 8), (2, 1, 1), (1, 5, 9)]


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", [*CASES, *STRIDED])
def test_matches_timm(name, train, channels_last):
    case = CASES[STRIDED.get(name, name)]
    ours, theirs = build_pair(case, stride=2 if name in STRIDED else 1)
    ours.train(train)
    theirs.train(train)
    torch.manual_seed(2)
    for n, h, w in SHAPES:
        if train and n == 1 and any(isinstance(m, nn.BatchNorm2d) for m in ours.modules()):
            continue  # BN in training needs more than one value per channel (BNs after a global pool see N)
        x = torch.randn(n, case.channels, h, w)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        out_diff, grad_diff = differences(ours, theirs, x)
        assert out_diff <= ATOL, f"{name} {(n, h, w)}: outputs differ by {out_diff:.2e}"
        assert grad_diff <= ATOL, f"{name} {(n, h, w)}: input gradients differ by {grad_diff:.2e}"


def test_every_timm_type_attnlab_registers_is_compared():
    timm_names = {
        "se",
        "ese",
        "eca",
        "ecam",
        "ceca",
        "ge",
        "gc",
        "gca",
        "cbam",
        "lcbam",
        "coord",
        "scoord",
        "ela",
        "strip",
        "sk",
        "splat",
        "nl",
    }
    assert timm_names <= set(CASES)
