"""The memory-lean gate tails (attnlab.attention.fused) against the plain implementation they replace.

The plain implementation stays the reference: ``relu(attention(bn(c)) + identity)`` through the modules'
``forward``. A model takes it whenever a forward hook sits on the attention module, which is how the reference
models here are built.
"""

import copy

import pytest
import torch
from torch import nn

import attnlab
from attnlab.attention import create_attention, gated_batch_norm
from attnlab.attention.fused import _channel_max, _spatial_max, attended, batch_norm_affine, pools_by_mean, unfused_copy
from attnlab.bench.throughput import saved_activation_bytes

FUSED = ["se", "ese", "eca", "ecam", "ceca", "fca", "ge", "gct", "srm", "cbam", "lcbam"]
KWARGS = {
    "se": {"reduction": 4},
    "fca": {"reduction": 4, "freq_sel": "top4"},
    "cbam": {"reduction": 4},
    "lcbam": {"reduction": 4},
}


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def make_bn(channels: int, dtype=torch.float64) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels).to(dtype)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    bn.momentum = 0.0  # gradcheck calls forward many times: keep the running statistics fixed
    return bn


@pytest.mark.parametrize("name", FUSED)
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_gradcheck_float64(name, residual, train):
    bn = make_bn(16).train(train)
    gate = create_attention(name, 16, **KWARGS.get(name, {})).double().train(train)
    c = torch.randn(2, 16, 5, 5, dtype=torch.float64, requires_grad=True)
    identity = torch.randn(2, 16, 5, 5, dtype=torch.float64, requires_grad=True) if residual else None
    params = [*bn.parameters(), *gate.parameters()]

    def fused(c, identity, *params):
        return gated_batch_norm(bn, c, gate, identity, relu=residual)

    assert torch.autograd.gradcheck(fused, (c, identity, *params), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("name", FUSED)
@pytest.mark.parametrize(
    "dtype",
    [torch.float64, torch.float32, torch.bfloat16],
)
def test_equals_the_plain_ops(name, dtype):
    bn = make_bn(16, dtype).train()
    bn.momentum = 0.1
    gate = create_attention(name, 16, **KWARGS.get(name, {})).to(dtype).train()
    ref_bn, ref_gate = copy.deepcopy(bn), copy.deepcopy(gate)
    c = torch.randn(2, 16, 6, 7, dtype=dtype, requires_grad=True)
    identity = torch.randn(2, 16, 6, 7, dtype=dtype, requires_grad=True)
    weight = torch.randn(2, 16, 6, 7, dtype=dtype)
    if dtype == torch.bfloat16:
        truth_bn, truth_gate = copy.deepcopy(bn).double(), copy.deepcopy(gate).double()
        c64, identity64 = c.detach().double().requires_grad_(), identity.detach().double().requires_grad_()
        truth = truth_gate(truth_bn(c64)) + identity64
        # an output within bf16 rounding of 0 lands on either side of the ReLU depending on the order of the
        # roundings, and takes its whole gradient with it (one such flip moved CBAM's spatial BN weight gradient by
        # 40%): those positions are left out of the loss
        weight[truth.detach().abs() < 0.05] = 0

    got = gated_batch_norm(bn, c, gate, identity, relu=True)
    want = torch.relu(ref_gate(ref_bn(c)) + identity)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(got, want, atol=tol, rtol=tol)
    inputs = [c, identity, *bn.parameters(), *gate.parameters()]
    ref_inputs = [c, identity, *ref_bn.parameters(), *ref_gate.parameters()]
    grads = torch.autograd.grad((got * weight).sum(), inputs)
    ref_grads = torch.autograd.grad((want * weight).sum(), ref_inputs)
    if dtype == torch.bfloat16:
        # bf16 rounding is large: the fused gradients must be no further from the float64 truth than the plain
        # path's. (Ties, common in bf16, still move a max pool's gradient between positions, where torch.max picks
        # one and amax splits: over seeds 1-30, 2 draws of lcbam exceed this bound.)
        truth_grads = torch.autograd.grad(
            (truth.relu() * weight.double()).sum(),
            [c64, identity64, *truth_bn.parameters(), *truth_gate.parameters()],
        )
        for g, r, t in zip(grads, ref_grads, truth_grads):
            assert (g.double() - t).norm() <= 2 * (r.double() - t).norm() + 5e-2 * t.norm()
        return
    for g, r in zip(grads, ref_grads):
        scale = r.abs().max().clamp_min(1)
        torch.testing.assert_close(g / scale, r / scale, atol=tol * 10, rtol=0)
    for (key, b), r in zip(bn.named_buffers(), ref_bn.buffers()):
        torch.testing.assert_close(b, r, msg=key)  # running statistics updated once, as nn.BatchNorm2d does


MEAN_POOLED = ["se", "ese", "eca", "ecam", "ceca"]


@pytest.mark.parametrize("name", FUSED)
def test_mean_pooled_gates_run_in_one_node(name):
    bn, gate = make_bn(16).train(), create_attention(name, 16, **KWARGS.get(name, {})).double().train()
    c = torch.randn(2, 16, 5, 5, dtype=torch.float64, requires_grad=True)
    out = gated_batch_norm(bn, c, gate, torch.randn_like(c), relu=True)
    assert (type(out.grad_fn).__name__ == "MeanGatedTailBackward") == (name in MEAN_POOLED)
    assert pools_by_mean(gate) == (name in MEAN_POOLED)


@pytest.mark.parametrize("name", ["se", "eca"])
def test_one_node_tail_with_retained_graph_and_frozen_gate(name):
    bn, gate = make_bn(16).train(), create_attention(name, 16, **KWARGS.get(name, {})).double().train()
    ref_bn, ref_gate = copy.deepcopy(bn), copy.deepcopy(gate)
    for module in (gate, ref_gate):
        next(module.parameters()).requires_grad_(False)
    c = torch.randn(2, 16, 5, 5, dtype=torch.float64, requires_grad=True)
    out = gated_batch_norm(bn, c, gate, None)
    want = ref_gate(ref_bn(c))
    torch.testing.assert_close(out, want)
    inputs = [c, *(p for p in (*bn.parameters(), *gate.parameters()) if p.requires_grad)]
    ref_inputs = [c, *(p for p in (*ref_bn.parameters(), *ref_gate.parameters()) if p.requires_grad)]
    first = torch.autograd.grad(out.sum(), inputs, retain_graph=True)
    second = torch.autograd.grad(out.sum(), inputs)  # the gate's small graph survived the first backward
    for got, again, ref in zip(first, second, torch.autograd.grad(want.sum(), ref_inputs), strict=True):
        torch.testing.assert_close(got, ref)
        torch.testing.assert_close(again, ref)


def test_attended_leaves_the_host_output_alone():
    # an attached gate's input is its host's output, which other forward hooks may hold: never written into
    bn, gate = make_bn(16).train(), create_attention("se", 16, reduction=4).double().train()
    c = torch.randn(2, 16, 5, 5, dtype=torch.float64, requires_grad=True)
    x = bn(c)
    before = x.detach().clone()
    var, mean = torch.var_mean(c.detach(), (0, 2, 3), correction=0)
    out = attended(gate, x, c, *batch_norm_affine(bn, mean, torch.rsqrt(var + bn.eps)))
    out.sum().backward()
    torch.testing.assert_close(x.detach(), before, rtol=0, atol=0)
    assert type(out.grad_fn).__name__ == "MeanGatedTailBackward"


@pytest.mark.parametrize("name", FUSED)
@pytest.mark.parametrize("residual", [True, False])
def test_inference_equals_the_plain_ops(name, residual):
    bn = make_bn(16).eval()
    gate = create_attention(name, 16, **KWARGS.get(name, {})).double().eval()
    c = torch.randn(2, 16, 6, 7, dtype=torch.float64)
    identity = torch.randn(2, 16, 6, 7, dtype=torch.float64) if residual else None
    with torch.no_grad():
        got = gated_batch_norm(bn, c, gate, identity, relu=residual)
        want = gate(bn(c))
        if residual:
            want = torch.relu(want + identity)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


def ratio_saved(model: nn.Module, plain: nn.Module, x: torch.Tensor) -> float:
    def saved(m):
        m.train()
        return saved_activation_bytes(m, lambda: m(x).sum())

    return saved(model) / saved(plain)


@pytest.mark.parametrize("name", FUSED)
def test_saved_bytes_close_to_the_plain_model(name):
    # 96 px: the last stage is 3 x 3, so each (N, C, 1, 1) tensor a gate's excitation keeps (GCT keeps five) is
    # 1/9 of an activation; at 64 px (2 x 2) that small-tensor share alone takes GCT and SRM past 1.02
    limit = 1.10 if "cbam" in name else 1.02
    x = torch.randn(2, 3, 96, 96)
    plain = attnlab.create_model("resnet18")
    model = attnlab.create_model("resnet18", attention=name)
    assert ratio_saved(model, plain, x) <= limit
    # the reference path keeps the gate input: the test would catch a fused path that silently falls back
    assert ratio_saved(unfused_copy(model), plain, x) > 1.10


@pytest.mark.parametrize("name", ["se", "eca", "gct", "cbam"])
def test_saved_bytes_of_attached_gates(name):
    x = torch.randn(2, 3, 96, 96)
    plain = attnlab.create_model("resnet18")
    model = copy.deepcopy(plain)
    attnlab.attach(model, name, example=x[:1])
    assert ratio_saved(model, plain, x) <= (1.10 if name == "cbam" else 1.02)


def test_mobilenet_saved_bytes():
    x = torch.randn(2, 3, 64, 64)
    plain = attnlab.create_model("mobilenet_v2")
    assert ratio_saved(attnlab.create_model("mobilenet_v2", attention="eca"), plain, x) <= 1.02


def assert_same_training_step(model: nn.Module, reference: nn.Module, x: torch.Tensor, tol: float) -> None:
    """One training forward/backward of each (dropout seeded alike): outputs and every gradient agree to ``tol``
    relative to the largest element."""
    outputs = []
    for m in (model, reference):
        torch.manual_seed(1)
        outputs.append(m.train()(x))
        outputs[-1].square().sum().backward()
    scale = outputs[1].abs().max()
    torch.testing.assert_close(outputs[0] / scale, outputs[1] / scale, atol=tol, rtol=0)
    largest = max(r.grad.abs().max() for r in reference.parameters())
    for (key, p), r in zip(model.named_parameters(), reference.parameters()):
        # relative to the parameter's largest gradient; gradients that are 0 up to rounding (the bias of a BN
        # before another train-mode BN) are compared relative to the model's largest
        scale = r.grad.abs().max().clamp_min(1e-6 * largest)
        torch.testing.assert_close(p.grad / scale, r.grad / scale, atol=tol, rtol=0, msg=key)
    for (key, b), r in zip(model.named_buffers(), reference.buffers()):
        torch.testing.assert_close(b, r, msg=key)


@pytest.mark.parametrize("model_name", ["resnet18", "resnet50", "mobilenet_v2"])
@pytest.mark.parametrize("name", ["se", "eca", "cbam"])
def test_models_match_the_plain_path(model_name, name):
    if model_name == "mobilenet_v2" and name == "cbam":
        pytest.skip("CBAM needs more channels than MobileNetV2's first stage has at reduction 16")
    model = attnlab.create_model(model_name, attention=name, num_classes=10).double()
    reference = unfused_copy(model)
    x = torch.randn(2, 3, 48, 48, dtype=torch.float64)
    assert_same_training_step(model, reference, x, 1e-9)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference.eval()(x))


@pytest.mark.parametrize("name", ["se", "eca", "cbam"])
def test_float32_training_step_close_to_the_plain_path(name):
    model = attnlab.create_model("resnet18", attention=name, num_classes=10)
    reference = unfused_copy(model)
    # batch 8 at 64 px: train-mode BN over a handful of values would amplify rounding differences
    assert_same_training_step(model, reference, torch.randn(8, 3, 64, 64), 2e-4)


@pytest.mark.parametrize("name", ["se", "cbam"])
def test_attached_blend_matches_the_plain_hook(name):
    model = attnlab.create_model("resnet18", num_classes=10)
    attnlab.attach(model, name)
    with torch.no_grad():
        for path in attnlab.retrofit.attached_paths(model):
            model.get_submodule(path).attention_scale.fill_(0.7)
    # float64: the blend weight's gradient sums a whole activation, so float32 rounding would swamp a small one
    model.double()
    reference = copy.deepcopy(model)
    for path in attnlab.retrofit.attached_paths(reference):  # a hook on the attention forces the plain hook path
        model_attention = reference.get_submodule(path).attention
        model_attention.register_forward_hook(lambda *args: None)
    x = torch.randn(2, 3, 48, 48, dtype=torch.float64)
    got, want = model.train()(x), reference.train()(x)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    got.square().sum().backward()
    want.square().sum().backward()
    for (key, p), r in zip(model.named_parameters(), reference.parameters()):
        scale = r.grad.abs().max().clamp_min(1e-3)
        torch.testing.assert_close(p.grad / scale, r.grad / scale, atol=1e-9, rtol=0, msg=key)


def test_fused_path_is_only_for_autograd():
    model = attnlab.create_model("resnet18", attention="se", num_classes=10).eval()
    seen = []
    # the fused path does not call bn2.forward: a hook on it is a way to see which path ran
    handle = model.layer1[0].bn2.register_forward_hook(lambda *args: seen.append(1))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert seen
    handle.remove()
    traced = torch.jit.trace(model, torch.randn(1, 3, 32, 32), check_trace=False)  # tracing takes the plain ops
    assert "GatedTail" not in str(traced.graph)


@pytest.mark.parametrize("name", ["se", "eca", "cbam"])
def test_compiled_training_matches_eager(name):
    model = attnlab.create_model("resnet18", attention=name, num_classes=10).double()
    reference = unfused_copy(model)
    compiled = torch.compile(model, fullgraph=True)
    assert_same_training_step(compiled, reference, torch.randn(2, 3, 32, 32, dtype=torch.float64), 1e-9)


@pytest.mark.parametrize("name", ["se", "cbam"])
def test_channels_last_training(name):
    model = attnlab.create_model("resnet18", attention=name, num_classes=10).double()
    model = model.to(memory_format=torch.channels_last)
    reference = unfused_copy(model)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64).to(memory_format=torch.channels_last)
    assert_same_training_step(model, reference, x, 1e-9)


@pytest.mark.parametrize("name", ["se", "cbam"])
def test_autocast_bf16_training(name):
    model = attnlab.create_model("resnet18", attention=name, num_classes=10)
    reference = unfused_copy(model)
    truth = unfused_copy(model).double()
    x = torch.randn(8, 3, 64, 64)
    for m in (model, reference):
        with torch.autocast("cpu", torch.bfloat16):
            m.train()(x).float().square().sum().backward()
    truth.train()(x.double()).square().sum().backward()

    def flat(m):
        return torch.cat([p.grad.double().flatten() for p in m.parameters()])

    got, want, exact = flat(model), flat(reference), flat(truth)
    assert torch.isfinite(got).all()
    # bf16 rounding moves both far from float64; the fused path must not be further from it than the plain one
    assert (got - exact).norm() <= 1.5 * (want - exact).norm() + 1e-3 * exact.norm()


@pytest.mark.parametrize("name", ["se", "eca", "cbam"])
def test_digits_training_curve_unchanged(name):
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    # float64: in float32 the two curves drift apart by rounding (up to 8e-3 after 24 steps at this learning rate;
    # the plain path alone, on an input perturbed by one ulp, drifts up to 1e-2: benchmarks/results/curve_drift.md);
    # in float64 they agree to 4e-16
    images = torch.tensor(digits.images[:512], dtype=torch.float64).div(16).unsqueeze(1).expand(-1, 3, -1, -1)
    labels = torch.tensor(digits.target[:512])
    model = attnlab.create_model("resnet20", attention=name, num_classes=10).double()
    reference = unfused_copy(model)
    curves = []
    for m in (model, reference):
        optimizer = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
        order = torch.Generator().manual_seed(0)
        losses = []
        for _ in range(3):
            for idx in torch.randperm(len(labels), generator=order).split(64):
                loss = nn.functional.cross_entropy(m.train()(images[idx]), labels[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        curves.append(torch.tensor(losses))
    assert curves[0][-1] < curves[0][0]
    torch.testing.assert_close(curves[0], curves[1], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["se", "cbam"])
def test_activation_checkpointing_of_stages(name):
    # torch.utils.checkpoint reruns each stage's forward in backward: the in-place tails and the gate's small
    # graph kept on the node must survive the recomputation
    from torch.utils.checkpoint import checkpoint

    model = attnlab.create_model("resnet18", attention=name, num_classes=10).double().train()
    checkpointed = copy.deepcopy(model)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    want = model(x)
    h = checkpointed.maxpool(checkpointed.relu(checkpointed.bn1(checkpointed.conv1(x))))
    for stage in (checkpointed.layer1, checkpointed.layer2, checkpointed.layer3, checkpointed.layer4):
        h = checkpoint(stage, h, use_reentrant=False)
    got = checkpointed.forward_head(h)
    torch.testing.assert_close(got, want)
    want.square().sum().backward()
    got.square().sum().backward()
    for (key, p), q in zip(checkpointed.named_parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=key)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("size", [(5, 7), (3, 20), (17, 18)])
def test_pool_maxima_are_torch_max(dtype, channels_last, size):
    # rounded to one decimal: many ties, where the first index in memory order must win as in torch.max
    x = torch.randn(2, 24, *size).mul(2).round(decimals=1).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    top, index = _spatial_max(x)
    want_top, want_index = x.flatten(2).max(2, keepdim=True)
    assert torch.equal(top, want_top.unsqueeze(-1)) and torch.equal(index, want_index)
    top, index = _channel_max(x)
    want_top, want_index = x.max(1, keepdim=True)
    assert torch.equal(top, want_top) and torch.equal(index, want_index)


def test_cbam_wide_maps_match_the_plain_path():
    # 72 px: ResNet-18's first stage is 18 x 18, where the spatial max takes its two-step path
    model = attnlab.create_model("resnet18", attention="cbam", num_classes=10).double()
    assert_same_training_step(model, unfused_copy(model), torch.randn(2, 3, 72, 72, dtype=torch.float64), 1e-9)


def test_compiled_cbam_tail_with_dynamic_sizes():
    # multi-scale training recompiles with symbolic heights and widths; the channel max's transposed view once
    # broke inductor's layout planning there
    bn, gate = make_bn(64).train(), create_attention("cbam", 64, reduction=4).double().train()
    ref_bn, ref_gate = copy.deepcopy(bn), copy.deepcopy(gate)
    compiled = torch.compile(lambda c, identity: gated_batch_norm(bn, c, gate, identity, relu=True), dynamic=True)
    c = torch.randn(2, 64, 5, 6, dtype=torch.float64, requires_grad=True)
    identity = torch.randn_like(c, requires_grad=True)
    got, want = compiled(c, identity), torch.relu(ref_gate(ref_bn(c)) + identity)
    torch.testing.assert_close(got, want)
    grads = torch.autograd.grad(got.square().sum(), [c, identity, *bn.parameters(), *gate.parameters()])
    ref_grads = torch.autograd.grad(want.square().sum(), [c, identity, *ref_bn.parameters(), *ref_gate.parameters()])
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r)
