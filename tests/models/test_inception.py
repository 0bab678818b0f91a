import pytest
import torch
import torchvision
from model_helpers import meta_params, num_params, se_params
from torch import nn

from attnlab.models import attention_layers, create_model, default_input_size
from attnlab.models import inception as inception_module
from attnlab.models.inception import INCEPTION_BLOCKS, InceptionOutputs

BLOCK_NAMES = [name for name, _, _ in INCEPTION_BLOCKS]
# output channels of the 11 Inception blocks of torchvision's Inception-v3, on the 35x35, 17x17 and 8x8 grids
BLOCK_CHANNELS = [256, 288, 288] + [768] * 5 + [1280, 2048, 2048]
SMALL_INPUT = (2, 3, 75, 75)  # the smallest input Inception-v3 takes


def torchvision_inception(aux_logits: bool = False) -> nn.Module:
    return torchvision.models.inception_v3(weights=None, aux_logits=aux_logits, init_weights=False)


@pytest.fixture(scope="module")
def se_inception() -> nn.Module:
    torch.manual_seed(0)
    return create_model("se_inception_v3", num_classes=10).eval()


def test_parameter_counts_match_torchvision():
    with torch.device("meta"):
        reference, reference_aux = torchvision_inception(), torchvision_inception(aux_logits=True)
    assert meta_params("inception_v3") == num_params(reference)
    assert meta_params("inception_v3", aux_logits=True) == num_params(reference_aux) == 27_161_264  # torchvision docs
    added = sum(se_params(c) for c in BLOCK_CHANNELS)
    assert meta_params("se_inception_v3") == num_params(reference) + added
    assert [c for _, c, _ in INCEPTION_BLOCKS] == BLOCK_CHANNELS


def test_loads_torchvision_weights_and_matches_its_output():
    torch.manual_seed(0)
    reference = torchvision_inception().eval()
    model = create_model("inception_v3").eval()
    model.load_state_dict(reference.state_dict())  # strict: identical key names and shapes
    x = torch.randn(*SMALL_INPUT)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_key_names_with_aux_logits_and_attention():
    with torch.device("meta"):
        reference_keys = set(torchvision_inception(aux_logits=True).state_dict())
        assert set(create_model("inception_v3", aux_logits=True).state_dict()) == reference_keys
        se_keys = set(create_model("se_inception_v3", aux_logits=True).state_dict())
    assert reference_keys <= se_keys
    assert {key.split(".")[1] for key in se_keys - reference_keys} == set(BLOCK_NAMES)
    assert all(key.startswith("attention.") for key in se_keys - reference_keys)


def test_every_se_module_runs_exactly_once_per_forward(se_inception):
    calls = dict.fromkeys(BLOCK_NAMES, 0)
    handles = [
        se_inception.attention[name].register_forward_hook(
            lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)
        )
        for name in BLOCK_NAMES
    ]
    with torch.no_grad():
        assert se_inception(torch.randn(*SMALL_INPUT)).shape == (2, 10)
        se_inception(torch.randn(*SMALL_INPUT))
    for handle in handles:
        handle.remove()
    assert calls == dict.fromkeys(BLOCK_NAMES, 2)
    assert [layer["path"] for layer in attention_layers(se_inception)] == [f"attention.{n}" for n in BLOCK_NAMES]
    assert [layer["channels"] for layer in attention_layers(se_inception)] == BLOCK_CHANNELS


def test_se_gates_each_block_output_before_the_next_block(se_inception):
    seen = {}
    handles = [
        se_inception.Mixed_5c.register_forward_hook(lambda m, i, o: seen.__setitem__("block_out", o.clone())),
        se_inception.attention["Mixed_5c"].register_forward_pre_hook(
            lambda m, i: seen.__setitem__("gate_in", i[0].clone())
        ),
        se_inception.attention["Mixed_5c"].register_forward_hook(
            lambda m, i, o: seen.__setitem__("gate_out", o.clone())
        ),
        se_inception.Mixed_5d.register_forward_pre_hook(lambda m, i: seen.__setitem__("next_in", i[0].clone())),
    ]
    with torch.no_grad():
        se_inception(torch.randn(*SMALL_INPUT))
    for handle in handles:
        handle.remove()
    torch.testing.assert_close(seen["gate_in"], seen["block_out"])
    torch.testing.assert_close(seen["next_in"], seen["gate_out"])
    assert not torch.allclose(seen["gate_out"], seen["gate_in"])


def test_aux_logits_read_the_gated_mixed_6e_in_training(monkeypatch):
    model = create_model("se_inception_v3", num_classes=10, aux_logits=True)
    assert model.AuxLogits is not None and create_model("inception_v3").AuxLogits is None
    with pytest.raises(ValueError, match="at least 299x299 when training with aux_logits.*got 75x75"):
        model.train()(torch.randn(*SMALL_INPUT))
    # a real auxiliary head needs 299 px; a stand-in shows what it receives at 75 px
    received = []

    class AuxStandIn(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            received.append(x.clone())
            return torch.full((x.shape[0], 10), 7.0)

    monkeypatch.setattr(inception_module, "MIN_INPUT_SIZE_AUX", 75)
    model.AuxLogits = AuxStandIn()
    gate_out = []
    model.attention["Mixed_6e"].register_forward_hook(lambda m, i, o: gate_out.append(o.clone()))
    out = model.train()(torch.randn(*SMALL_INPUT))
    assert isinstance(out, InceptionOutputs) and out.logits.shape == (2, 10)
    assert torch.equal(out.aux_logits, torch.full((2, 10), 7.0)) and len(received) == 1
    torch.testing.assert_close(received[0], gate_out[0])
    with torch.no_grad():
        assert isinstance(model.eval()(torch.randn(*SMALL_INPUT)), torch.Tensor) and len(received) == 1


def test_conv_kind_attention_is_refused():
    with pytest.raises(ValueError, match="'psa' is a 'conv' module, which Inception-v3 cannot take"):
        create_model("inception_v3", attention="psa")


@pytest.mark.parametrize(
    "stages, blocks", [((1,), BLOCK_NAMES[:3]), ((2, 3), BLOCK_NAMES[3:]), ((3,), BLOCK_NAMES[8:])]
)
def test_attention_stages_remove_modules(stages, blocks):
    with torch.device("meta"):
        model = create_model("se_inception_v3", attention_stages=stages)
        plain = num_params(create_model("inception_v3"))
    assert list(model.attention) == blocks
    assert num_params(model) == plain + sum(se_params(c) for (name, c, _) in INCEPTION_BLOCKS if name in blocks)
    with pytest.raises(ValueError, match=r"stages are 1..3"):
        create_model("inception_v3", attention="eca", attention_stages=(4,))


def test_default_input_size_and_other_inputs():
    model = create_model("inception_v3", num_classes=5, in_chans=1, attention="eca").eval()
    assert default_input_size(model) == (1, 299, 299)
    with torch.no_grad():
        assert model(torch.randn(2, 1, 80, 76)).shape == (2, 5)
    with pytest.raises(ValueError, match="Inception-v3 needs inputs of at least 75x75.*got 74x80"):
        model(torch.randn(1, 1, 74, 80))
    with pytest.raises(ValueError, match="expected 1 input channels, got 3.*in_chans=3"):
        model(torch.randn(1, 3, 80, 80))
