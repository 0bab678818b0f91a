"""Training configuration: named recipes (YAML presets in ``configs/recipes``) plus command-line overrides.

The valid choices of the string options live here once (``OPTIMIZERS``, ``SCHEDULES``, ``NORMALIZATIONS``, the
data's ``AUGMENTS`` and, shared with every command, ``utils.AMP_MODES``); each TrainConfig field carries its help
text and choices in its ``metadata``, which ``validate`` and the ``attnlab train`` / ``compare`` / ``analyze
kernel-sweep`` flags read.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from attnlab.data import AUGMENTS
from attnlab.utils import AMP_HELP, AMP_MODES, DEVICE_HELP, default_workers, read_yaml_mapping, unknown_name_error

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
NORMALIZATIONS = ("dataset", "imagenet", "rescale")
AUGMENT_POLICIES = tuple(AUGMENTS)
WORKERS_HELP = (
    "processes decoding image files: min(8, CPUs - 1), or 0 when that is 1; in-memory data such as digits and "
    "CIFAR batches uses none"
)


def _field(default: Any, *, help_text: str | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field whose metadata holds its help text and, for string options, its valid choices."""
    metadata: dict[str, Any] = {}
    if help_text is not None:
        metadata["help"] = help_text
    if choices is not None:
        metadata["choices"] = choices
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything that decides a training run. Field names double as ``attnlab train`` flags; each field's
    ``metadata`` holds its flag help (see :func:`field_help`) and, for string options, its ``choices``."""

    model: str = _field("resnet20", help_text="model name (attnlab list --models)")
    recipe: str = _field("fast", help_text="name of a shipped recipe (configs/recipes) or a YAML file's path")
    data: str | None = _field(
        "digits", help_text="'digits' (embedded), a folder with train/ and test/ (or val/), or CIFAR python batches"
    )
    train: str | None = _field(None, help_text="train split folder (with --val, instead of --data)")
    val: str | None = _field(None, help_text="validation split folder")
    out: str | None = _field(None, help_text="run directory (default runs/MODEL-RECIPE-sSEED)")
    attention: str | None = _field(None, help_text="attention registry name to put into the model")
    attention_kwargs: dict = field(
        default_factory=dict, metadata={"help": "JSON dict of attention keyword arguments, e.g. '{\"k_size\": 3}'"}
    )
    attach: str | None = _field(
        None,
        help_text="attention attached into a model without it (torchvision:/timm: "
        "models too, attnlab.attach), identity at init",
    )
    attach_where: str = _field(
        "residual",
        help_text="where --attach inserts: residual, conv, or comma-separated glob patterns over module paths",
    )
    init_from: str | None = _field(
        None, help_text="fine-tune from these weights of the model without attention (.safetensors or .pt state dict)"
    )
    # data and augmentation
    img_size: int = 32
    cache_size: int | None = _field(
        None, help_text="side of the cached uint8 squares (default: img-size); larger for crop recipes"
    )
    augment: str = _field(
        "fast", help_text=f"augmentation policy: {', '.join(AUGMENT_POLICIES)}", choices=AUGMENT_POLICIES
    )
    normalize: str = _field(
        "dataset",
        help_text=f"input normalisation, one of {', '.join(NORMALIZATIONS)} "
        "(dataset: train mean/std; rescale: x/255 only)",
        choices=NORMALIZATIONS,
    )
    hflip: bool | None = _field(
        None,
        help_text="random horizontal flips in training (default: on, except for "
        "digits, where a mirrored digit is wrong)",
    )
    strict: bool = _field(False, help_text="fail on the first unreadable image instead of skipping it")
    cache_dir: str | None = _field(
        None, help_text="folder for an on-disk copy of the decoded images (reused across runs)"
    )
    workers: int = _field(default_workers(), help_text=WORKERS_HELP)
    # optimisation
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = _field("sgd", help_text=f"optimizer, one of {', '.join(OPTIMIZERS)}", choices=OPTIMIZERS)
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = _field(
        "constant", help_text=f"learning-rate schedule, one of {', '.join(SCHEDULES)}", choices=SCHEDULES
    )
    milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1
    warmup_steps: int = _field(
        0,
        help_text="optimizer steps of linear learning-rate warm-up (0: none); at least 1/20 and at most half of "
        "the run's optimizer steps",
    )
    label_smoothing: float = 0.0
    mixup: float = 0.0
    grad_clip: float | None = None
    ema: float | None = _field(None, help_text="EMA decay of the weights used for evaluation (e.g. 0.999)")
    # execution
    seed: int = 0
    device: str = _field("auto", help_text=DEVICE_HELP)
    amp: str = _field(
        "auto",
        help_text=AMP_HELP,
        choices=AMP_MODES,
    )
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = _field(
        False, help_text="deterministic kernels: with --device cpu, a resumed run ends bit-identical"
    )
    tensorboard: bool = _field(
        True,
        help_text="per-epoch scalars in RUN/tensorboard when the tensorboard package is installed (default: on)",
    )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


TRAIN_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def field_help(f: dataclasses.Field) -> str:
    """The help text of a TrainConfig field: its metadata's, else "overrides the recipe's <name>"."""
    return f.metadata.get("help", f"overrides the recipe's {f.name}")


def list_recipes() -> list[str]:
    """Names of the shipped recipes (``configs/recipes/*.yaml``)."""
    folder = resources.files("attnlab") / "configs" / "recipes"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str) -> dict:
    """The fields of a recipe given by name (``fast``, ``keras-flowers``, ...) or by a YAML file's path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        fields = read_yaml_mapping(path, "recipe file")
    elif name_or_path in list_recipes():
        with resources.as_file(resources.files("attnlab") / "configs" / "recipes" / f"{name_or_path}.yaml") as shipped:
            fields = read_yaml_mapping(shipped, "recipe")
    else:
        raise unknown_name_error("recipe", name_or_path, list_recipes())
    unknown = set(fields) - TRAIN_FIELDS
    if unknown:
        raise ValueError(f"recipe {name_or_path!r} has unknown fields {sorted(unknown)}")
    return fields


def load_config_file(path: str | Path) -> dict:
    """The TrainConfig fields of a YAML file (e.g. a run's ``config.yaml``); ValueError for unknown fields."""
    fields = read_yaml_mapping(path, "config file")
    unknown = set(fields) - TRAIN_FIELDS
    if unknown:
        raise ValueError(
            f"config file {path} has unknown fields {sorted(unknown)}; the fields are {sorted(TRAIN_FIELDS)}"
        )
    return fields


def resolve_config(recipe: str | None = None, config_file: str | Path | None = None, **overrides) -> TrainConfig:
    """A TrainConfig: the fields of ``recipe`` (default: the config file's ``recipe``, else ``fast``), then those
    of ``config_file`` (see :func:`load_config_file`), then ``overrides`` (None values are ignored)."""
    from_file = load_config_file(config_file) if config_file is not None else {}
    recipe = recipe or from_file.get("recipe") or TrainConfig.recipe
    fields = {**load_recipe(recipe), **from_file, "recipe": recipe, **_given(overrides)}
    return _checked_config(fields, "unknown training options {unknown}")


def config_from_run(run_dir: str | Path, **overrides) -> TrainConfig:
    """The config a run directory was trained with (its ``config.yaml``), with ``overrides`` (None values are
    ignored) applied, e.g. more ``epochs`` or another ``device`` to resume with."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no config.yaml; is it a run directory written by attnlab train?")
    saved = read_yaml_mapping(path, "run config")
    if not saved:
        raise ValueError(f"{path} is empty: the run folder is damaged; start a new run with another --out")
    fields = {**saved, **_given(overrides), "out": str(run_dir)}
    return _checked_config(fields, f"{path} has unknown fields {{unknown}}; was it written by another attnlab version?")


def _given(overrides: dict) -> dict:
    """The overrides that were given (None means: keep the recipe's value)."""
    return {k: v for k, v in overrides.items() if v is not None}


def _checked_config(fields: dict, unknown_message: str) -> TrainConfig:
    """A validated TrainConfig of ``fields``; unknown fields raise ``unknown_message`` with ``{unknown}`` filled."""
    unknown = sorted(set(fields) - TRAIN_FIELDS)
    if unknown:
        raise ValueError(unknown_message.format(unknown=unknown))
    config = TrainConfig(**fields)
    validate(config)
    return config


def _check_choice(config: TrainConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


MAX_IMG_SIZE = 4096


def _check_types(config: TrainConfig) -> None:
    """Each field holds a value of its declared type (YAML files can hold anything); ints are accepted for
    floats, bools are not ints, and floats must be finite."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        value, kind = getattr(config, f.name), hints[f.name]
        options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
        allowed = [t for t in options if t is not type(None)]
        if value is None and len(allowed) < len(options):
            continue
        base = typing.get_origin(allowed[0]) or allowed[0]
        ok = isinstance(value, base) and not (isinstance(value, bool) and base is not bool)
        if base is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif base is list:
            ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if not ok:
            expected = {
                int: "an integer",
                float: "a finite number",
                str: "a string",
                bool: "true or false",
                list: "a list of integers",
                dict: "a mapping (JSON object)",
            }[base]
            raise ValueError(f"{f.name} must be {expected}, got {value!r}")


def validate(config: TrainConfig) -> None:
    """Raise ValueError naming a bad field and the fix."""
    _check_types(config)
    for name in ("epochs", "batch_size", "img_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    for name in ("img_size", "cache_size"):
        if (getattr(config, name) or 0) > MAX_IMG_SIZE:
            raise ValueError(f"{name} must be <= {MAX_IMG_SIZE} pixels, got {getattr(config, name)}")
    if config.lr <= 0:
        raise ValueError(f"lr must be > 0, got {config.lr}")
    if any(m < 1 for m in config.milestones):
        raise ValueError(f"milestones are epochs >= 1 at which the lr drops, got {config.milestones}")
    _check_choice(config, "optimizer", OPTIMIZERS)
    _check_choice(config, "schedule", SCHEDULES)
    _check_choice(config, "amp", AMP_MODES)
    if not 0 <= config.label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
    if config.ema is not None and not 0 < config.ema < 1:
        raise ValueError(f"ema decay must be in (0, 1), got {config.ema}")
    _check_choice(config, "augment", AUGMENT_POLICIES)
    _check_choice(config, "normalize", NORMALIZATIONS)
    if config.cache_size is not None and config.cache_size < 1:
        raise ValueError(f"cache_size must be >= 1 (or unset to cache at img_size), got {config.cache_size}")
    for name in ("workers", "mixup", "warmup_steps", "momentum", "weight_decay", "lr_gamma"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")
    if config.grad_clip is not None and config.grad_clip <= 0:
        raise ValueError(f"grad_clip must be > 0 (or unset for no clipping), got {config.grad_clip}")
