"""Checkpoints without pickle: tensors in safetensors, everything else as JSON, written atomically.

A run directory holds ``best.safetensors`` and ``last.safetensors`` (model weights under their usual state-dict
keys, loadable with ``safetensors.torch.load_file``; the run's metadata as JSON in the file header and in a
``.json`` beside it for people) and ``resume.safetensors`` (model, optimizer, scheduler, scaler and EMA state,
the complete training state; non-tensor leaves of those state dicts are stored as JSON in the header).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

METADATA_KEY = "attnlab"
TREE_KEY = "attnlab_tree"


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` then move ``tmp_path`` onto ``path``: readers see the old file or the new one,
    also after a crash or ``kill -9`` (the temporary file is a hidden sibling, created with the usual umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"))
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


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


def _read_safetensors(path: str | Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, string header) of a safetensors file; clear errors for a missing or unreadable one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except SafetensorError as err:
        raise ValueError(f"cannot read the {what} {path}: {err} (truncated, or not a safetensors file?)") from err


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, metadata) of a file written by ``save_weights``."""
    state, header = _read_safetensors(path, "checkpoint")
    return state, json.loads(header.get(METADATA_KEY, "{}"))


def save_state(path: str | Path, state: dict[str, Any], metadata: dict) -> Path:
    """Write a nested training state (state dicts of model, optimizer, scheduler, ...) without pickle."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors, "s")
    header = {METADATA_KEY: json.dumps(metadata), TREE_KEY: json.dumps(tree)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def load_state(path: str | Path) -> tuple[dict[str, Any], dict]:
    """(state, metadata) of a file written by ``save_state``."""
    tensors, header = _read_safetensors(path, "training state")
    if TREE_KEY not in header:
        raise ValueError(f"{path} is not an attnlab training state (no {TREE_KEY!r} header)")
    return _decode(json.loads(header[TREE_KEY]), tensors), json.loads(header.get(METADATA_KEY, "{}"))
