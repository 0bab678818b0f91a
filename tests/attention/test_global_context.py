import pytest
import torch

from attnlab.attention import create_attention
from attnlab.attention.global_context import GlobalContext


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("channels, reduction", [(64, 16), (256, 16), (32, 4)])
def test_parameter_count(channels, reduction):
    h = channels // reduction
    mask = channels  # 1x1 conv C -> 1, no bias
    transform = (channels * h + h) + 2 * h + (h * channels + channels)  # conv, LayerNorm affine, conv
    assert num_params(GlobalContext(channels, reduction=reduction)) == mask + transform


def test_official_zero_init_starts_as_identity():
    x = torch.randn(2, 16, 5, 4)
    torch.testing.assert_close(GlobalContext(16, reduction=4)(x), x)
    torch.testing.assert_close(GlobalContext(16, reduction=4, fusion="mul")(x), x * 0.5)


def randomize(gc: GlobalContext) -> None:
    ln = gc.transform[1]
    ln.weight.data.uniform_(0.5, 1.5)
    ln.bias.data.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("fusion", ["add", "mul"])
def test_matches_attention_pooling_formula(fusion):
    gc = GlobalContext(8, reduction=2, fusion=fusion, zero_init_last=False)
    randomize(gc)
    conv1, ln, conv2 = gc.transform[0], gc.transform[1], gc.transform[3]
    x = torch.randn(3, 8, 4, 5)
    logits = torch.einsum("c,nchw->nhw", gc.mask_conv.weight.flatten(), x)
    alpha = torch.softmax(logits.flatten(1), dim=1).reshape(3, 4, 5)
    context = torch.einsum("nhw,nchw->nc", alpha, x)
    t = context @ conv1.weight.flatten(1).T + conv1.bias
    t = (t - t.mean(1, keepdim=True)) / torch.sqrt(t.var(1, keepdim=True, correction=0) + ln.eps)
    t = torch.relu(t * ln.weight.flatten() + ln.bias.flatten())
    t = (t @ conv2.weight.flatten(1).T + conv2.bias)[:, :, None, None]
    want = x + t if fusion == "add" else x * torch.sigmoid(t)
    torch.testing.assert_close(gc(x), want)


def grads(gc: GlobalContext, x: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    gc.zero_grad()
    ((gc(x) - target) ** 2).mean().backward()
    return {name: p.grad.clone() for name, p in gc.named_parameters()}


def test_zero_init_gradients_flow_after_one_step():
    gc = GlobalContext(16, reduction=4)
    x, target = torch.randn(2, 16, 5, 5), torch.randn(2, 16, 5, 5)
    first = grads(gc, x, target)
    last = {"transform.3.weight", "transform.3.bias"}
    assert all(first[name].abs().sum() > 0 for name in last)
    assert all(torch.equal(g, torch.zeros_like(g)) for name, g in first.items() if name not in last)
    torch.optim.SGD(gc.parameters(), lr=0.1).step()
    assert all(g.abs().sum() > 0 for g in grads(gc, x, target).values())


def test_without_zero_init_every_gradient_flows_at_once():
    gc = GlobalContext(16, reduction=4, zero_init_last=False)
    assert all(g.abs().sum() > 0 for g in grads(gc, torch.randn(2, 16, 5, 5), torch.randn(2, 16, 5, 5)).values())


@pytest.mark.parametrize("fusion, gate_type", [("add", torch.nn.Identity), ("mul", torch.nn.Sigmoid)])
def test_gate_sees_channel_term(fusion, gate_type):
    gc = create_attention("gc", 16, reduction=4, fusion=fusion)
    assert isinstance(gc.gate, gate_type) and gc.mask_conv.bias is None
    seen = []
    gc.gate.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    gc(torch.randn(2, 16, 3, 5))
    assert seen == [(2, 16, 1, 1)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fusion": "concat"}, "fusion must be 'add' or 'mul'"),
        ({"reduction": 32}, "leaves 0 hidden units for channels=16; use reduction <= 16"),
        ({"reduction": 0}, "reduction must be > 0"),
    ],
)
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GlobalContext(16, **kwargs)


def test_repr_shows_resolved_settings():
    assert "reduction=4, fusion='mul', zero_init_last=False" in repr(
        GlobalContext(16, reduction=4, fusion="mul", zero_init_last=False)
    )


def test_gca_is_the_additive_fusion_with_gcs_parameters():
    from attnlab.attention.global_context import GlobalContextAdd

    c, h = 64, 4
    gca = create_attention("gca", c)
    assert isinstance(gca, GlobalContextAdd) and gca.fusion == "add" and isinstance(gca.gate, torch.nn.Identity)
    assert num_params(gca) == c + (c * h + h) + 2 * h + (h * c + c) == 652
    x = torch.randn(2, c, 5, 3)
    torch.testing.assert_close(gca(x), x)  # zero-initialised last conv: the identity
