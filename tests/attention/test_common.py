import pytest
import torch
from plain_ops import assert_same_values_and_grads

from attnlab.attention._common import pointwise


@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_is_the_1x1_convolution(bias):
    conv = torch.nn.Conv2d(12, 5, 1, bias=bias).double()
    pooled = torch.randn(3, 12, 1, 1, dtype=torch.float64, requires_grad=True)
    assert_same_values_and_grads(pointwise(conv, pooled), conv(pooled), [pooled, *conv.parameters()])


def test_pointwise_on_channels_last_pools():
    conv = torch.nn.Conv2d(8, 4, 1)
    pooled = torch.randn(2, 8, 1, 1).to(memory_format=torch.channels_last)
    torch.testing.assert_close(pointwise(conv, pooled), conv(pooled))
