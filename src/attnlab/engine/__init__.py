"""Training, evaluation and checkpoints: ``train(resolve_config('fast', model='eca_resnet20'))`` trains a run
directory; ``load_model(run)`` loads it back; ``evaluate`` measures a model on batches; ``predict_images`` runs
``load_classifier(run)`` over image files."""

from attnlab.engine.checkpoint import load_state, load_weights, read_state_dict, save_state, save_weights
from attnlab.engine.config import TRAIN_FIELDS, TrainConfig, config_from_run, list_recipes, load_recipe, resolve_config
from attnlab.engine.evaluate import EvalResult, evaluate
from attnlab.engine.inference import checkpoint_path, load_model
from attnlab.engine.modeling import build_model, model_for_config, parse_where
from attnlab.engine.predict import Classifier, Prediction, collect_images, load_classifier, predict_images
from attnlab.engine.trainer import Trainer, TrainingDiverged, train

__all__ = [
    "TRAIN_FIELDS",
    "Classifier",
    "EvalResult",
    "Prediction",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "build_model",
    "checkpoint_path",
    "collect_images",
    "config_from_run",
    "evaluate",
    "list_recipes",
    "load_classifier",
    "load_model",
    "load_recipe",
    "load_state",
    "load_weights",
    "model_for_config",
    "parse_where",
    "predict_images",
    "read_state_dict",
    "resolve_config",
    "save_state",
    "save_weights",
    "train",
]
