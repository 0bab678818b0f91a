"""Deliberately plain float64 building blocks for the paper-parity tests: convolutions as explicit sums over
kernel offsets, BatchNorm in eval mode from its formula, and random parameters for a module under test."""

import torch
from torch import nn


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random parameters and BN statistics (so no default 0/1 init hides a mistake), float64, eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 1.5 + 0.5)
    return module.double().eval()


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, groups: int = 1) -> torch.Tensor:
    """Stride-1 'same' convolution (odd kernels, zero padding) as a sum over the kernel offsets."""
    n, c, h, w = x.shape
    out_channels, in_per_group, kh, kw = weight.shape
    ph, pw = kh // 2, kw // 2
    padded = torch.zeros(n, c, h + 2 * ph, w + 2 * pw, dtype=x.dtype)
    padded[:, :, ph : ph + h, pw : pw + w] = x
    out = torch.zeros(n, out_channels, h, w, dtype=x.dtype)
    out_per_group = out_channels // groups
    for u in range(kh):
        for v in range(kw):
            window = padded[:, :, u : u + h, v : v + w]
            if in_per_group == 1 and out_per_group == 1:  # depthwise
                out += window * weight[:, 0, u, v][None, :, None, None]
                continue
            for g in range(groups):
                src = window[:, g * in_per_group : (g + 1) * in_per_group]
                taps = weight[g * out_per_group : (g + 1) * out_per_group, :, u, v]
                out[:, g * out_per_group : (g + 1) * out_per_group] += torch.einsum("nchw,oc->nohw", src, taps)
    if bias is not None:
        out += bias[None, :, None, None]
    return out


def conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, groups: int = 1) -> torch.Tensor:
    """Stride-1 'same' 1D convolution of (N, C, L)."""
    return conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, groups).squeeze(2)


def batch_norm_eval(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    shape = (1, -1, 1, 1)
    normed = (x - bn.running_mean.reshape(shape)) / torch.sqrt(bn.running_var.reshape(shape) + bn.eps)
    return normed * bn.weight.reshape(shape) + bn.bias.reshape(shape)


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def assert_same_values_and_grads(got: torch.Tensor, want: torch.Tensor, inputs: list[torch.Tensor]) -> None:
    """``got`` and ``want`` (float64, two computations of one function of ``inputs``) agree to 1e-12, and so do
    their gradients with respect to every input for one random output gradient."""
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(want)
    for g, w in zip(torch.autograd.grad(got, inputs, grad), torch.autograd.grad(want, inputs, grad)):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
