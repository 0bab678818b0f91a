"""Run folders that never lose work: safe default names, no silent overwrite, one writer at a time.

A run folder holds a run when it has a ``config.yaml``. Starting a run in such a folder is refused unless the run
is resumed (``--resume``) or replaced (``--overwrite``, which deletes only the files a run writes). Default names
say what distinguishes runs (model, attention, attached attention, recipe, seed), are one safe path component,
and take a numeric suffix instead of reusing a folder that holds another run. While a run writes, it holds an
exclusive ``fcntl`` lock on ``.lock`` in the folder; the operating system releases it when the process ends, even
by ``kill -9``, so a lock is never left stale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import re
import shutil
from pathlib import Path

import torch

from attnlab.engine.config import TrainConfig
from attnlab.utils import atomic_write_text, check_writable_folder, environment, now

LOCK_FILE = ".lock"
CONFIG_FILE = "config.yaml"
# Everything a training run writes into its folder; --overwrite deletes these and nothing else.
RUN_FILES = (
    CONFIG_FILE,
    "classes.json",
    "provenance.json",
    "resume.safetensors",
    "last.safetensors",
    "last.json",
    "best.safetensors",
    "best.json",
    "metrics.csv",
    "metrics.jsonl",
    "curves.png",
    "confusion.png",
    "predictions.png",
    "compare_wall_time.json",
)
RUN_FOLDERS = ("tensorboard",)


def safe_component(text: str) -> str:
    """``text`` as one path component: every character outside ``[A-Za-z0-9._+-]`` becomes '-' (so
    'torchvision:resnet18' -> 'torchvision-resnet18', 'cfg/my.yaml' -> 'cfg-my.yaml'); never '', '.' or '..'."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-")
    return cleaned if cleaned.strip(".") else "run"


def run_name(config: TrainConfig) -> str:
    """The default name of ``config``'s run: model, attention, attached attention, recipe (a file's stem) and seed."""
    recipe = Path(config.recipe).stem if config.recipe.endswith((".yaml", ".yml")) else config.recipe
    parts = [config.model]
    parts += [config.attention] if config.attention else []
    parts += [f"attach-{config.attach}"] if config.attach else []
    return safe_component("-".join([*parts, recipe, f"s{config.seed}"]))


def holds_run(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file()


def default_run_dir(config: TrainConfig, root: Path = Path("runs")) -> Path:
    """``root/<run_name>``, or with the first free suffix ``-2``, ``-3``, ... when that folder holds another run."""
    base = root / run_name(config)
    candidate, n = base, 1
    while holds_run(candidate) or (candidate.exists() and not candidate.is_dir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def with_run_dir(config: TrainConfig) -> TrainConfig:
    """``config`` with its run folder set: its own ``out``, else :func:`default_run_dir` (under torchrun the plain
    :func:`run_name`, since every process must name the same folder)."""
    if config.out is not None:
        return config
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    out = Path("runs") / run_name(config) if distributed else default_run_dir(config)
    return dataclasses.replace(config, out=str(out))


def refuse_existing_run(folder: Path) -> None:
    """ValueError naming ``--resume`` and ``--overwrite`` when ``folder`` holds a run."""
    if holds_run(folder):
        raise ValueError(
            f"{folder} already holds a run; continue it with `attnlab train --resume {folder}`, replace it with "
            "--overwrite, or choose another --out"
        )


def clear_run(folder: Path) -> list[str]:
    """Delete the files and folders a run writes in ``folder`` (and nothing else); returns their names."""
    removed = []
    for name in RUN_FILES:
        if (folder / name).is_file():
            (folder / name).unlink()
            removed.append(name)
    for name in RUN_FOLDERS:
        if (folder / name).is_dir():
            shutil.rmtree(folder / name)
            removed.append(name)
    return removed


class RunLock:
    """Exclusive lock of a run folder for one writer (``with RunLock(folder): ...``).

    The second process to lock a folder gets a ValueError naming the holder's PID. The lock is an ``fcntl.flock``
    on ``folder/.lock``, released by the OS when the holder exits in any way (kill -9 included).
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise ValueError(
                    f"{self.path.parent} is being written by another attnlab process (PID {holder}); wait for it "
                    "to finish or stop it, or use another --out"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class Provenance:
    """``provenance.json`` of a run folder: one entry per session that trained it (the start, then each
    ``--resume``), each with :func:`attnlab.utils.environment` (versions, git commit, command line, device and its
    name) and its start and end times (``finished`` stays null for a session that was killed)."""

    def __init__(self, folder: Path, device: str | torch.device):
        self.path = Path(folder) / "provenance.json"
        self.device = device
        self.sessions: list[dict] = []

    def start(self) -> None:
        if self.path.is_file():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                self.sessions = list(json.loads(self.path.read_text())["sessions"])
        environment_now = environment(self.device)
        self.sessions.append({**environment_now, "started": environment_now.pop("time"), "finished": None})
        self._write()

    def finish(self) -> None:
        self.sessions[-1]["finished"] = now()
        self._write()

    def _write(self) -> None:
        atomic_write_text(self.path, json.dumps({"sessions": self.sessions}, indent=2))


def claim_outputs(folder: Path, names: tuple[str, ...], overwrite: bool) -> Path:
    """Create the output ``folder`` of a command that writes the files ``names``; ValueError when one of them is
    there already (an earlier result), unless ``overwrite``."""
    check_writable_folder(folder)
    existing = [name for name in names if (folder / name).exists()]
    if existing and not overwrite:
        raise ValueError(
            f"{folder} already holds {', '.join(existing)}; pass --overwrite to replace them, or choose another --out"
        )
    return folder
