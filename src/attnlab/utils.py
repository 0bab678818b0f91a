"""Small helpers every attnlab package may use, each written once: argument checks, close-match errors, atomic
file writes, safetensors reading, Markdown tables, figures, devices, mixed precision and output differences.

This module imports nothing else of attnlab, so any layer can depend on it.
"""

from __future__ import annotations

import difflib
import os
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure


# ------------------------------------------------------------------------------------------------------ checks


def check_int(name: str, value: int, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum`` (bools are not ints here), else raise ValueError naming
    ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive_int(name: str, value: int) -> int:
    """Return ``value`` if it is an int >= 1, else raise ValueError naming ``name``."""
    return check_int(name, value, 1)


def check_input(x: torch.Tensor, channels: int, argument: str = "channels") -> None:
    """Raise ValueError unless ``x`` is an (N, channels, H, W) batch; the message says how to fix it, naming the
    constructor ``argument`` that sets the channel count (``channels`` of a module, ``in_chans`` of a model)."""
    if x.dim() == 4 and x.shape[1] == channels:
        return
    if x.dim() != 4:
        raise ValueError(
            f"expected a 4D input (N, {channels}, H, W), got a {x.dim()}D tensor of shape {tuple(x.shape)}; "
            "add a batch dimension"
        )
    raise ValueError(
        f"expected {channels} input channels, got {x.shape[1]} (input shape {tuple(x.shape)}); "
        f"build it with {argument}={x.shape[1]}"
    )


def default_input_size(model: torch.nn.Module) -> tuple[int, int, int]:
    """(C, H, W) the model was designed for (224 px ImageNet models, 32 px CIFAR ResNets, 128 px AlexNet), as
    ``create_model`` records it; (3, 224, 224) for a model that does not say."""
    return tuple(getattr(model, "default_input_size", (3, 224, 224)))


# --------------------------------------------------------------------------------------------- unknown names


def close_matches(name: object, known: Sequence[str], cutoff: float = 0.5) -> list[str]:
    """Up to three entries of ``known`` that look like ``name`` (case-insensitive), best first."""
    lowered = {k.lower(): k for k in known}
    return [lowered[m] for m in difflib.get_close_matches(str(name).lower(), list(lowered), n=3, cutoff=cutoff)]


def unknown_name_error(
    what: str, name: object, known: Sequence[str], *, listing: str | None = None, prefix: str = ""
) -> ValueError:
    """A ValueError for an unknown ``name`` that suggests close matches among ``known`` (each shown with
    ``prefix``, e.g. 'timm:'). It lists ``known`` itself, or says where the names come from (``listing``) when
    there are too many to print."""
    close = close_matches(name, known, 0.6 if listing else 0.5)
    hint = f" Did you mean {', '.join(repr(prefix + c) for c in close)}?" if close else ""
    known_text = f"The names are those of {listing}." if listing else f"Known: {', '.join(sorted(known))}."
    return ValueError(f"unknown {what} {name!r}.{hint} {known_text}")


# ---------------------------------------------------------------------------------------------------- files


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
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_safetensors(path: str | Path, what: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, string header) of a safetensors file, with an error naming ``what`` and the likely cause for a
    missing, truncated or foreign file. Reading runs no code from the file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}  # noqa: SIM118 (safe_open is no dict)
    except SafetensorError as err:
        raise ValueError(f"cannot read the {what} {path}: {err} (truncated, or not a safetensors file?)") from err


# ------------------------------------------------------------------------------------------- tables, figures


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """A Markdown table; ``align`` holds one of 'l', 'r' per column (default: all left)."""
    rule = {"l": "---", "r": "---:"}
    marks = [rule[a] for a in align] if align else ["---"] * len(head)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib Figure that draws off-screen without touching pyplot's global backend (a notebook user's
    backend stays as it was); save it with ``fig.savefig(path)``."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="tight")


# ----------------------------------------------------------------------------------------- devices, numerics


def resolve_device(name: str | torch.device) -> torch.device:
    """'auto' is CUDA when available, else CPU; a CUDA device without a GPU is a ValueError with the fix. Under
    torchrun a plain 'cuda' takes the GPU of LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name} asked for CUDA but no GPU is available; use --device cpu")
        if device.index is None and "LOCAL_RANK" in os.environ:
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


def autocast(device: torch.device, amp_dtype: torch.dtype | None) -> AbstractContextManager:
    """Mixed precision context for ``device`` (a no-op when ``amp_dtype`` is None)."""
    return nullcontext() if amp_dtype is None else torch.autocast(device.type, dtype=amp_dtype)


def max_error(got: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    """(max abs difference, that divided by max |want|): relative to the output's scale, so values near 0 do
    not blow it up."""
    abs_err = (got.float() - want.float()).abs().max().item()
    return abs_err, abs_err / max(want.float().abs().max().item(), torch.finfo(torch.float32).tiny)
