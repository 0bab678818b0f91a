"""The attention contract, checked for every registered module."""

import inspect

import pytest
import torch

from attnlab.attention import attention_class, attention_kind, create_attention, list_attentions

CHANNELS = 64
ALL = list_attentions()

INPLACE = [name for name in ALL if "inplace" in inspect.signature(attention_class(name)).parameters]


def build(name: str, out_channels: int = CHANNELS, stride: int = 1) -> torch.nn.Module:
    if attention_kind(name) == "conv":
        return create_attention(name, CHANNELS, out_channels, stride=stride)
    return create_attention(name, CHANNELS)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (16, 16)])
@pytest.mark.parametrize("train", [True, False])
def test_shape_dtype_any_size(name, size, train):
    module = build(name).train(train)
    x = torch.randn(2, CHANNELS, *size)
    y = module(x)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", [n for n in ALL if attention_kind(n) == "conv"])
def test_conv_replacement_stride_and_width(name):
    module = build(name, out_channels=128, stride=2)
    x = torch.randn(2, CHANNELS, 9, 8)
    assert module(x).shape == (2, 128, 5, 4)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision(name, dtype):
    module = build(name).eval()
    x = torch.randn(2, CHANNELS, 6, 6)
    with torch.no_grad():
        want = module(x)
        try:
            got = module.to(dtype)(x.to(dtype))
        except (RuntimeError, NotImplementedError) as err:  # an op without a CPU kernel for this dtype
            pytest.skip(f"{dtype} not supported on CPU here: {err}")
    assert got.dtype == dtype and got.shape == x.shape
    torch.testing.assert_close(got.float(), want, atol=0.1, rtol=0.05)


@pytest.mark.parametrize("name", ALL)
def test_channels_last_matches_contiguous(name):
    module = build(name).eval()
    x = torch.randn(2, CHANNELS, 7, 5)
    with torch.no_grad():
        torch.testing.assert_close(module(x.to(memory_format=torch.channels_last)), module(x))
        module = module.to(memory_format=torch.channels_last)
        torch.testing.assert_close(module(x.to(memory_format=torch.channels_last)), module(x))


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_every_parameter(name):
    module = build(name).train()
    x = torch.randn(2, CHANNELS, 6, 6, requires_grad=True)
    (module(x) * torch.randn(x.shape)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, p in module.named_parameters():
        assert p.grad is not None, f"no gradient reached {pname}"
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", ALL)
def test_eval_output_independent_of_batch(name):
    module = build(name).eval()
    x = torch.randn(4, CHANNELS, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(module(x)[:1], module(x[:1]))


@pytest.mark.parametrize("name", ALL)
def test_gate_hook_sees_excitation(name):
    module = build(name).eval()
    seen = []
    module.gate.register_forward_hook(lambda mod, args, out: seen.append(out))
    module(torch.randn(2, CHANNELS, 6, 6))
    assert seen, "the gate submodule was never called"
    assert all(out.shape[0] == 2 and torch.isfinite(out).all() for out in seen)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("train", [True, False])
def test_every_submodule_hook_runs(name, train):
    # fast paths that compute a submodule's maths without calling it (pointwise, conv_over_channels) step aside
    # for a hooked module: users' hooks on any part of a gate must see it run
    module = build(name).train(train)
    containers = (torch.nn.ModuleList, torch.nn.ModuleDict)  # hold modules, never called themselves
    parts = {path: sub for path, sub in module.named_modules() if path and not isinstance(sub, containers)}
    called = set()
    for path, sub in parts.items():
        sub.register_forward_hook(lambda mod, args, out, path=path: called.add(path))
    module(torch.randn(2, CHANNELS, 6, 6))
    assert called == set(parts)


@pytest.mark.parametrize("name", ALL)
def test_compile_matches_eager(name):
    module = build(name).eval()
    x = torch.randn(2, CHANNELS, 7, 7)
    # the channel gates share ChannelGate.forward: compiled one type after another they would exhaust dynamo's
    # per-function recompile limit (8) in this one process
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), module(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_onnx_matches_onnxruntime(name, tmp_path):
    pytest.importorskip("onnxruntime", reason="install the 'onnx' extra to test ONNX export")
    pytest.importorskip("onnxscript", reason="install the 'onnx' extra to test ONNX export")
    from attnlab.export import export_onnx, onnx_max_error

    module = build(name).eval()
    path = export_onnx(module, torch.randn(2, CHANNELS, 8, 8), tmp_path / f"{name}.onnx")
    abs_err, _ = onnx_max_error(path, module, torch.randn(2, CHANNELS, 8, 8))
    assert abs_err < 1e-4


@pytest.mark.parametrize("name", ALL)
def test_bad_input_names_expected_and_got(name):
    module = build(name)
    with pytest.raises(ValueError, match="4D"):
        module(torch.randn(CHANNELS, 8, 8))
    with pytest.raises(ValueError, match=f"expected {CHANNELS} input channels, got {CHANNELS // 2}"):
        module(torch.randn(2, CHANNELS // 2, 8, 8))
    for empty in ((2, CHANNELS, 0, 8), (2, CHANNELS, 8, 0), (0, CHANNELS, 8, 8)):
        with pytest.raises(ValueError, match="expected a non-empty input"):
            module(torch.randn(empty))
    with pytest.raises(ValueError, match="expected a floating-point input, got torch.int64; convert it with"):
        module(torch.ones(2, CHANNELS, 8, 8, dtype=torch.int64))


@pytest.mark.parametrize("name", ALL)
def test_bad_channels_raise_at_construction(name):
    args = (0, CHANNELS) if attention_kind(name) == "conv" else (0,)
    with pytest.raises(ValueError, match="channels"):
        create_attention(name, *args)


def test_the_scaling_gates_offer_inplace():
    assert {"se", "ese", "eca", "cbam", "fca", "ge", "gct", "srm", "simam", "coord"} <= set(INPLACE)


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_writes_into_the_input_only_without_autograd(name):
    reference = create_attention(name, CHANNELS).eval()
    module = create_attention(name, CHANNELS, inplace=True).eval()
    module.load_state_dict(reference.state_dict())
    x = torch.randn(2, CHANNELS, 5, 6)
    with torch.no_grad():
        want = reference(x)
        scratch = x.clone()
        got = module(scratch)
    assert got.data_ptr() == scratch.data_ptr()
    torch.testing.assert_close(got, want)

    leaf = x.clone().requires_grad_()
    module.train()(leaf).square().sum().backward()
    torch.testing.assert_close(leaf.detach(), x, rtol=0, atol=0)
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()
