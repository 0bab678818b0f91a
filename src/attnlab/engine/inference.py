"""Loading trained models back from run directories or checkpoint files."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from attnlab.engine.checkpoint import load_weights, require_metadata
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
    require_metadata(metadata, "model_kwargs")
    try:
        model, _ = build_model(metadata["model"], metadata["model_kwargs"], metadata.get("attach"))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: its metadata does not describe a model attnlab can build ({err})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError:
        problems = _state_dict_problems(model.state_dict(), state)
        raise ValueError(
            f"{path}: the weights do not match the model its metadata describes ({metadata['model']}): {problems}; "
            "the file is damaged or was edited"
        ) from None
    return model.to(device).eval(), metadata


def _state_dict_problems(want: dict, got: dict) -> str:
    missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    shapes = [k for k in set(want) & set(got) if want[k].shape != got[k].shape]
    return (
        f"{len(missing)} missing keys {missing[:2]}, {len(unexpected)} unexpected keys {unexpected[:2]}, "
        f"{len(shapes)} of other shape {sorted(shapes)[:2]}"
    )
