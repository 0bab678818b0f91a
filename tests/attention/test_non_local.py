import torch

from attnlab.attention import create_attention
from attnlab.attention.non_local import NonLocal


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_count():
    c, d = 64, 32  # the paper's d = C / 2
    assert num_params(NonLocal(c)) == 3 * (c * d + d) + d * c + c + 2 * c == 8480
    assert num_params(create_attention("nl", c, reduction=8)) == 3 * (c * 8 + 8) + 8 * c + c + 2 * c


def test_starts_as_the_identity():
    x = torch.randn(2, 16, 5, 3)
    torch.testing.assert_close(NonLocal(16).train()(x), x)


def test_matches_embedded_gaussian_formula():
    nl = NonLocal(8, reduction=2, scale=True).eval()
    with torch.no_grad():
        nl.norm.weight.uniform_(0.5, 1.5)
        nl.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 8, 3, 4)
    flat = lambda conv: conv(x).flatten(2)  # noqa: E731  (N, d, HW)
    f = torch.softmax(torch.einsum("ndi,ndj->nij", flat(nl.theta), flat(nl.phi)) * 8**-0.5, dim=-1)
    y = torch.einsum("nij,ndj->ndi", f, flat(nl.g)).reshape(2, 4, 3, 4)
    torch.testing.assert_close(nl(x), x + nl.norm(nl.out(y)))
