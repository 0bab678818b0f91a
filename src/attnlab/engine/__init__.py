"""Training, evaluation and checkpoints: ``train(resolve_config('fast', model='eca_resnet20'))`` trains a run
directory; ``load_model(run)`` loads it back; ``evaluate`` measures a model on batches."""

from attnlab.engine.checkpoint import load_state, load_weights, read_state_dict, save_state, save_weights
from attnlab.engine.config import TRAIN_FIELDS, TrainConfig, config_from_run, list_recipes, load_recipe, resolve_config
from attnlab.engine.evaluate import EvalResult, evaluate
from attnlab.engine.inference import checkpoint_path, load_model, predict_files
from attnlab.engine.modeling import build_model, model_for_config, parse_where
from attnlab.engine.trainer import Trainer, TrainingDiverged, train

__all__ = [
    "TRAIN_FIELDS",
    "EvalResult",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "build_model",
    "checkpoint_path",
    "config_from_run",
    "evaluate",
    "list_recipes",
    "load_model",
    "load_recipe",
    "load_state",
    "load_weights",
    "model_for_config",
    "parse_where",
    "predict_files",
    "read_state_dict",
    "resolve_config",
    "save_state",
    "save_weights",
    "train",
]
