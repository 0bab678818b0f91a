"""Loading trained models back from run directories or checkpoint files, and predicting on image files."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from attnlab.data import Preprocess, read_image
from attnlab.engine.checkpoint import load_weights
from attnlab.engine.modeling import build_model


def checkpoint_path(run_or_ckpt: str | Path) -> Path:
    """``best.safetensors`` of a run directory (``last`` if there is no best), or the file itself."""
    path = Path(run_or_ckpt)
    if path.is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path} holds no best.safetensors or last.safetensors; is it a run directory?")
    if not path.is_file():
        raise FileNotFoundError(f"no run directory or checkpoint at {path}")
    return path


def load_model(run_or_ckpt: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode with the checkpoint's weights, checkpoint metadata)."""
    path = checkpoint_path(run_or_ckpt)
    state, metadata = load_weights(path)
    if "model" not in metadata:
        raise ValueError(f"{path} has no attnlab metadata (model name and kwargs); was it written by attnlab train?")
    model, _ = build_model(metadata["model"], metadata["model_kwargs"], metadata.get("attach"))
    model.load_state_dict(state)
    return model.to(device).eval(), metadata


@torch.no_grad()
def predict_files(
    model: nn.Module, metadata: dict, paths: list[str | Path], topk: int = 5, device: str | torch.device = "cpu"
) -> list[list[tuple[str, float]]]:
    """Top-k (class name, probability) for each image file, prepared as the run's evaluation prepared images."""
    preprocess = Preprocess.from_dict(metadata["preprocess"])
    images = []
    for path in paths:
        try:
            images.append(read_image(path, preprocess.cache_size, preprocess.fit))
        except (OSError, ValueError, SyntaxError) as err:
            raise ValueError(f"cannot read image {path} ({type(err).__name__}: {err})") from None
    probs = model.eval()(preprocess.eval(torch.stack(images).to(device))).float().softmax(1)
    values, indices = probs.topk(min(topk, probs.shape[1]), dim=1)
    classes = metadata["classes"]
    return [[(classes[i], v) for v, i in zip(vs.tolist(), ids.tolist())] for vs, ids in zip(values, indices)]
