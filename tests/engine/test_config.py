import dataclasses

import pytest

from attnlab.data import AUGMENTS
from attnlab.engine.config import (
    AMP_MODES,
    NORMALIZATIONS,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    config_from_run,
    list_recipes,
    load_recipe,
    resolve_config,
)
from attnlab.engine.schedule import lr_factor, warmup_length


def test_shipped_recipes_follow_the_issue():
    assert set(list_recipes()) == {"fast", "keras-flowers", "paddle-cifar", "epsanet-cifar", "paper-imagenet"}
    keras = resolve_config("keras-flowers")
    assert (keras.img_size, keras.epochs, keras.batch_size, keras.optimizer, keras.lr) == (224, 100, 32, "adam", 1e-4)
    assert (keras.augment, keras.normalize, keras.milestones, keras.lr_gamma) == ("keras", "rescale", [40, 80], 0.1)
    paddle = resolve_config("paddle-cifar")
    assert (paddle.label_smoothing, paddle.weight_decay, paddle.schedule, paddle.img_size) == (0.1, 1e-5, "cosine", 128)
    assert (paddle.cache_size, paddle.augment, paddle.normalize, paddle.optimizer, paddle.lr) == (
        130,
        "paddle",
        "imagenet",
        "adam",
        1e-3,
    )
    assert (paddle.batch_size, paddle.epochs) == (128, 50) and paddle.mixup > 0
    epsa = resolve_config("epsanet-cifar")
    assert (epsa.img_size, epsa.normalize, epsa.optimizer, epsa.lr, epsa.batch_size, epsa.epochs) == (
        224,
        "imagenet",
        "adam",
        1e-3,
        64,
        10,
    )
    imagenet = resolve_config("paper-imagenet")
    assert (imagenet.optimizer, imagenet.lr, imagenet.momentum, imagenet.weight_decay) == ("sgd", 0.1, 0.9, 1e-4)
    assert (imagenet.milestones, imagenet.lr_gamma, imagenet.epochs) == ([30, 60, 90], 0.1, 100)
    assert (imagenet.img_size, imagenet.cache_size, imagenet.augment) == (224, 256, "imagenet")


def test_config_from_run_applies_overrides(tmp_path):
    import yaml

    config = resolve_config("keras-flowers", epochs=3, model="eca_resnet50")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    resumed = config_from_run(tmp_path, epochs=5, device=None)
    assert (resumed.epochs, resumed.model, resumed.lr, resumed.out) == (5, "eca_resnet50", 1e-4, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="holds no config.yaml"):
        config_from_run(tmp_path / "nope")
    with pytest.raises(ValueError, match="augment must be one of keras, paddle, imagenet, fast, resize, got 'x'"):
        resolve_config("fast", augment="x")


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
    fast = resolve_config("fast", epochs=4, warmup_steps=10)
    ramp = [lr_factor(s, 10, fast) for s in range(40)]
    assert ramp[9] == pytest.approx(1.0) and ramp[0] == pytest.approx(0.1) and ramp[-1] == pytest.approx(1 / 30)


def test_warmup_counts_optimizer_steps_with_a_floor_and_a_cap():
    fast = resolve_config("fast")
    assert fast.warmup_steps == 50 and warmup_length(1000, fast) == 50  # the same steps whatever the epoch length
    assert warmup_length(10_000, fast) == 500  # at least 1/20 of a long run
    assert warmup_length(40, fast) == 20  # at most half of a short one, which keeps its decay
    assert warmup_length(1, fast) == 1 and warmup_length(1000, resolve_config("fast", warmup_steps=0)) == 0


def test_choices_live_in_the_field_metadata_and_validate_reads_them():
    fields = dataclasses.fields(TrainConfig)
    choices = {f.name: f.metadata["choices"] for f in fields if "choices" in f.metadata}
    assert choices == {
        "augment": tuple(AUGMENTS),
        "normalize": NORMALIZATIONS,
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "amp": AMP_MODES,
    }
    for name, values in choices.items():
        assert [getattr(resolve_config("fast", **{name: value}), name) for value in values] == list(values)
        with pytest.raises(ValueError, match=f"{name} must be one of {', '.join(values)}, got 'x'"):
            resolve_config("fast", **{name: "x"})
