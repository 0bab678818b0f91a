"""Small helpers every attnlab package may use, each written once: argument checks, close-match errors, atomic
file writes, safetensors reading, Markdown tables, figures, progress bars, worker counts, devices, mixed precision
and output differences.

This module imports nothing else of attnlab, so any layer can depend on it.
"""

from __future__ import annotations

import datetime
import difflib
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml
from tqdm import tqdm

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
    if x.dim() == 4 and x.shape[1] == channels and x.numel() and x.is_floating_point():
        return
    if x.dim() != 4:
        raise ValueError(
            f"expected a 4D input (N, {channels}, H, W), got a {x.dim()}D tensor of shape {tuple(x.shape)}; "
            "add a batch dimension"
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"expected {channels} input channels, got {x.shape[1]} (input shape {tuple(x.shape)}); "
            f"build it with {argument}={x.shape[1]}"
        )
    if not x.numel():
        raise ValueError(f"expected a non-empty input, got shape {tuple(x.shape)}; batch and H, W must be >= 1")
    raise ValueError(f"expected a floating-point input, got {x.dtype}; convert it with x.float()")


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
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would create it (safetensors writes 0600)
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


def check_writable_folder(folder: Path, what: str = "--out") -> None:
    """Create ``folder`` (and its parents); ValueError with the fix when it is a file, lies under a file or cannot
    be written."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {folder} is a file, not a folder; give a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"{what} {folder}: a part of that path is a file; give a folder path") from None
    except PermissionError:
        raise ValueError(f"{what} {folder} cannot be created: permission denied; choose a writable folder") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {folder} is not writable (read-only?); choose a writable folder")


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


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """The mapping in the YAML file at ``path`` (``safe_load``: no Python tags, no code runs); ValueError naming
    ``what`` and the file when it is missing, unreadable, not YAML or not a mapping (an empty file is ``{}``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        fields = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        problem = " ".join(str(err).split())
        raise ValueError(f"{what} {path} is not valid YAML ({problem}); fix or replace the file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not a text file; give a YAML file") from None
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        raise ValueError(f"{what} {path} must hold a YAML mapping (name: value lines), got a {type(fields).__name__}")
    return fields


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


DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda, cuda:1, ..."
AMP_MODES = ("auto", "off", "bf16", "fp16")
AMP_HELP = "mixed precision, one of auto, off, bf16, fp16 (auto: bf16 on CUDA, fp16 on GPUs without bf16, off on CPU)"


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of an ``--amp`` mode (one of ``AMP_MODES``) on ``device``; None is full precision."""
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, amp_dtype: torch.dtype | None) -> AbstractContextManager:
    """Mixed precision context for ``device`` (a no-op when ``amp_dtype`` is None)."""
    return nullcontext() if amp_dtype is None else torch.autocast(device.type, dtype=amp_dtype)


def max_error(got: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    """(max abs difference, that divided by max |want|): relative to the output's scale, so values near 0 do
    not blow it up."""
    abs_err = (got.float() - want.float()).abs().max().item()
    return abs_err, abs_err / max(want.float().abs().max().item(), torch.finfo(torch.float32).tiny)


# ---------------------------------------------------------------------------------------- progress, workers


def progress_bar(iterable: Iterable, *, desc: str, total: int | None = None, enabled: bool = True) -> tqdm:
    """A tqdm bar over ``iterable`` on stderr that disappears when done; silent when stderr is no terminal (logs,
    pipes, tests) or ``enabled`` is False (e.g. on every process but rank 0)."""
    return tqdm(iterable, desc=desc, total=total, leave=False, disable=not (enabled and sys.stderr.isatty()))


def default_workers() -> int:
    """DataLoader worker processes for decoding image files: one per CPU this process may use, less one for the
    main process, at most 8; 0 (decode in the main process) when that leaves a single worker, which would only
    take turns with the main process. In-memory data (digits, CIFAR batches, cached images) uses no workers."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(8, cpus - 1)
    return workers if workers > 1 else 0


# ---------------------------------------------------------------------------------------------- provenance


def now() -> str:
    """The local time as ISO 8601 with its UTC offset, to the second."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def command_line() -> str:
    """The command this process runs, as a shell would take it back (``attnlab train ...`` for the CLI)."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    prefix = [program] if program == "attnlab" else [Path(sys.executable).name, *sys.argv[:1]]
    return shlex.join([*prefix, *sys.argv[1:]])


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """The commit of the attnlab source checkout this code runs from (``+dirty`` with uncommitted changes), or
    None for an installed wheel or without git."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str | torch.device = "cpu") -> dict:
    """Where and with what a result was produced: the device and its name (CPU model or GPU), CPU cores and torch
    threads, the versions of Python, attnlab, torch, torchvision and timm (None when not installed), attnlab's git
    commit when it runs from a checkout, the command line and the time. Run folders, eval, bench and compare
    reports all carry this block."""
    device = torch.device(device)
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model_name()
    return {
        "device": str(device),
        "hardware": hardware,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "attnlab": _version("attnlab"),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "git_commit": _git_commit(),
        "command": command_line(),
        "time": now(),
    }
