"""Checkpoints without pickle: tensors in safetensors, everything else as JSON, written atomically.

A run directory holds ``best.safetensors`` and ``last.safetensors`` (model weights under their usual state-dict
keys, loadable with ``safetensors.torch.load_file``; the run's metadata as JSON in the file header and in a
``.json`` beside it for people) and ``resume.safetensors`` (model, optimizer, scheduler, scaler and EMA state,
the complete training state; non-tensor leaves of those state dicts are stored as JSON in the header).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from attnlab.utils import atomic_write, atomic_write_text, read_safetensors

METADATA_KEY = "attnlab"
TREE_KEY = "attnlab_tree"


def _encode(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """A JSON tree for ``obj`` with each tensor replaced by a reference into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__items__": [[k, _encode(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint (tensors and JSON values only)")


def _decode(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        if "__tuple__" in tree:
            return tuple(_decode(v, tensors) for v in tree["__tuple__"])
        return {k: _decode(v, tensors) for k, v in tree["__items__"]}
    if isinstance(tree, list):
        return [_decode(v, tensors) for v in tree]
    return tree


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor], metadata: dict) -> Path:
    """Write model weights (safetensors) with ``metadata`` in the header and as ``<path>.json`` beside it."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    header = {METADATA_KEY: json.dumps(metadata)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))
    atomic_write_text(path.with_suffix(".json"), json.dumps(metadata, indent=2))
    return path


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, metadata) of a file written by ``save_weights``."""
    state, header = read_safetensors(path, "checkpoint")
    return state, _metadata(path, header)


def _metadata(path: str | Path, header: dict[str, str]) -> dict:
    """The attnlab metadata of a safetensors header; ValueError naming the file when it is not a JSON object."""
    try:
        metadata = json.loads(header.get(METADATA_KEY, "{}"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} has a damaged attnlab header ({err}); the file was edited or is corrupt") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path} has a damaged attnlab header (not a JSON object)")
    return metadata


def require_metadata(metadata: dict, *keys: str) -> None:
    """ValueError unless the checkpoint ``metadata`` has every one of ``keys`` (``classes``, ``preprocess``, ...)."""
    missing = [key for key in keys if key not in metadata]
    if missing:
        raise ValueError(
            f"the checkpoint's attnlab metadata has no {', '.join(missing)} record; the file is damaged or was not "
            "written by attnlab train"
        )


def save_state(path: str | Path, state: dict[str, Any], metadata: dict) -> Path:
    """Write a nested training state (state dicts of model, optimizer, scheduler, ...) without pickle."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors, "s")
    header = {METADATA_KEY: json.dumps(metadata), TREE_KEY: json.dumps(tree)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def load_state(path: str | Path) -> tuple[dict[str, Any], dict]:
    """(state, metadata) of a file written by ``save_state``."""
    tensors, header = read_safetensors(path, "training state")
    if TREE_KEY not in header:
        raise ValueError(f"{path} is not an attnlab training state (no {TREE_KEY!r} header)")
    try:
        tree = json.loads(header[TREE_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} has a damaged training-state header ({err}); resume from a good copy") from None
    return _decode(tree, tensors), _metadata(path, header)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file (attnlab checkpoints included) or of a ``.pt``/``.pth`` state dict
    (loaded with ``weights_only=True``: no code from the file runs)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path, "state dict")[0]
    if not path.is_file():
        raise FileNotFoundError(f"no state dict at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad or unsafe files
        raise ValueError(
            f"cannot read the state dict {path}: it is not a plain tensor state dict (attnlab loads weights only, "
            "never code from a file); save it with torch.save(model.state_dict(), path) or as .safetensors"
        ) from None
    if not (isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a state dict (parameter name -> tensor)")
    return state
