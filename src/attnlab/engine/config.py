"""Training configuration: named recipes (YAML presets in ``configs/recipes``) plus command-line overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from attnlab.attention._registry import unknown_name_error
from attnlab.data.augment import AUGMENTS

NORMALIZATIONS = ("dataset", "imagenet", "rescale")


@dataclass
class TrainConfig:
    """Everything that decides a training run. Field names double as ``attnlab train`` flags."""

    model: str = "resnet20"
    recipe: str = "fast"
    data: str | None = "digits"
    train: str | None = None
    val: str | None = None
    out: str | None = None
    attention: str | None = None
    attention_kwargs: dict = field(default_factory=dict)
    attach: str | None = None  # attention attached into a model built without it (attnlab.attach)
    attach_where: str = "residual"  # residual, conv, or comma-separated glob patterns over module paths
    init_from: str | None = None  # weights of the model without attention to fine-tune from (.safetensors, .pt)
    # data and augmentation
    img_size: int = 32
    cache_size: int | None = None  # side of the cached uint8 squares; None: img_size
    augment: str = "fast"
    normalize: str = "dataset"  # dataset (train mean/std), imagenet, or rescale (x / 255 only)
    hflip: bool | None = None  # random horizontal flips; None: unless the data says mirroring changes the class
    strict: bool = False
    cache_dir: str | None = None
    workers: int = 0
    # optimisation
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    mixup: float = 0.0
    grad_clip: float | None = None
    ema: float | None = None
    # execution
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False
    tensorboard: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def list_recipes() -> list[str]:
    """Names of the shipped recipes (``configs/recipes/*.yaml``)."""
    folder = resources.files("attnlab") / "configs" / "recipes"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str) -> dict:
    """The fields of a recipe given by name (``fast``, ``keras-flowers``, ...) or by a YAML file's path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"recipe file {path} does not exist")
        text = path.read_text()
    elif name_or_path in list_recipes():
        text = (resources.files("attnlab") / "configs" / "recipes" / f"{name_or_path}.yaml").read_text()
    else:
        raise unknown_name_error("recipe", name_or_path, list_recipes())
    fields = yaml.safe_load(text) or {}
    unknown = set(fields) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ValueError(f"recipe {name_or_path!r} has unknown fields {sorted(unknown)}")
    return fields


def resolve_config(recipe: str = "fast", **overrides) -> TrainConfig:
    """A TrainConfig from a recipe with ``overrides`` (None values are ignored) applied on top."""
    fields = {**load_recipe(recipe), "recipe": recipe}
    fields.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(fields) - known
    if unknown:
        raise ValueError(f"unknown training options {sorted(unknown)}")
    config = TrainConfig(**fields)
    validate(config)
    return config


def config_from_run(run_dir: str | Path, **overrides) -> TrainConfig:
    """The config a run directory was trained with (its ``config.yaml``), with ``overrides`` (None values are
    ignored) applied, e.g. more ``epochs`` or another ``device`` to resume with."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no config.yaml; is it a run directory written by attnlab train?")
    fields = yaml.safe_load(path.read_text())
    fields.update({k: v for k, v in overrides.items() if v is not None}, out=str(run_dir))
    unknown = set(fields) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ValueError(f"{path} has unknown fields {sorted(unknown)}; was it written by another attnlab version?")
    config = TrainConfig(**fields)
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    """Raise ValueError naming a bad field and the fix."""
    for name in ("epochs", "batch_size", "img_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.lr <= 0:
        raise ValueError(f"lr must be > 0, got {config.lr}")
    if config.optimizer not in ("sgd", "adam", "adamw"):
        raise ValueError(f"optimizer must be one of sgd, adam, adamw, got {config.optimizer!r}")
    if config.schedule not in ("constant", "step", "cosine", "onecycle"):
        raise ValueError(f"schedule must be one of constant, step, cosine, onecycle, got {config.schedule!r}")
    if config.amp not in ("auto", "off", "bf16", "fp16"):
        raise ValueError(f"amp must be one of auto, off, bf16, fp16, got {config.amp!r}")
    if not 0 <= config.label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
    if config.ema is not None and not 0 < config.ema < 1:
        raise ValueError(f"ema decay must be in (0, 1), got {config.ema}")
    if config.augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {config.augment!r}")
    if config.normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {config.normalize!r}")
    if config.cache_size is not None and config.cache_size < 1:
        raise ValueError(f"cache_size must be >= 1 (or unset to cache at img_size), got {config.cache_size}")
    for name in ("workers", "mixup", "warmup_epochs"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")
    if config.grad_clip is not None and config.grad_clip <= 0:
        raise ValueError(f"grad_clip must be > 0 (or unset for no clipping), got {config.grad_clip}")
