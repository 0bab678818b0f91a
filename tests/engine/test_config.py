import pytest

from attnlab.engine.config import list_recipes, load_recipe, resolve_config
from attnlab.engine.schedule import lr_factor


def test_shipped_recipes():
    assert set(list_recipes()) == {"fast", "keras-flowers", "paddle-cifar", "epsanet-cifar", "paper-imagenet"}
    keras = resolve_config("keras-flowers")
    assert (keras.img_size, keras.epochs, keras.batch_size, keras.optimizer, keras.lr) == (224, 100, 32, "adam", 1e-4)
    paddle = resolve_config("paddle-cifar")
    assert (paddle.label_smoothing, paddle.weight_decay, paddle.schedule, paddle.img_size) == (0.1, 1e-5, "cosine", 128)
    assert resolve_config("paper-imagenet").milestones == [30, 60, 90]


def test_overrides_and_errors(tmp_path):
    config = resolve_config("keras-flowers", epochs=3, lr=None, model="eca_resnet50")
    assert config.epochs == 3 and config.lr == 1e-4 and config.model == "eca_resnet50"
    with pytest.raises(ValueError, match="unknown recipe 'keras-flower'.*Did you mean 'keras-flowers'"):
        load_recipe("keras-flower")
    with pytest.raises(ValueError, match="lr must be > 0"):
        resolve_config("fast", lr=-1.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="unknown fields \\['learning_rate'\\]"):
        load_recipe(str(bad))


def test_keras_step_schedule_changes_after_epochs_40_and_80():
    config = resolve_config("keras-flowers")
    steps = 34
    lrs = [config.lr * lr_factor(e * steps, steps, config) for e in (0, 39, 40, 79, 80, 99)]
    assert lrs == pytest.approx([1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6])


def test_cosine_per_step_and_onecycle():
    config = resolve_config("paddle-cifar", epochs=2)
    factors = [lr_factor(s, 10, config) for s in range(20)]
    assert factors[0] == 1.0 and factors == sorted(factors, reverse=True) and factors[10] == pytest.approx(0.5)
    fast = resolve_config("fast", epochs=4, warmup_epochs=1)
    ramp = [lr_factor(s, 10, fast) for s in range(40)]
    assert ramp[9] == pytest.approx(1.0) and ramp[0] == pytest.approx(0.1) and ramp[-1] == pytest.approx(1 / 30)
