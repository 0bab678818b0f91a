from attnlab.attention import attention_stages
from attnlab.engine.config import resolve_config
from attnlab.engine.modeling import model_for_config, parse_where


def test_parse_where():
    assert parse_where("conv") == "conv"
    assert parse_where("layer3.*.bn2, layer4.*.bn2") == ["layer3.*.bn2", "layer4.*.bn2"]


def test_model_for_config_attaches_what_the_run_attaches():
    config = resolve_config("fast", model="torchvision:resnet18", attach="eca", img_size=32)
    model = model_for_config(config, num_classes=3)
    assert model.fc.out_features == 3
    assert sorted(set(attention_stages(model).values())) == [1, 2, 3, 4]  # layer1-layer4, tagged by attach
