import pytest
import torch
from engine_helpers import TINY

from attnlab.engine.config import resolve_config

# Two CPU cores shared with other jobs: one thread per process avoids oversubscription stalls, and keeps the
# numerics of in-process and subprocess runs identical (OMP_NUM_THREADS=1 there).
torch.set_num_threads(1)


@pytest.fixture
def tiny_config(tmp_path):
    """``tiny_config(**overrides)``: the fast recipe on digits at 8 px, run directory under tmp_path."""

    def make(**overrides):
        return resolve_config("fast", **{**TINY, "out": str(tmp_path / "run"), **overrides})

    return make
