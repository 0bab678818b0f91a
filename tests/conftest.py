"""Test-wide settings: one intra-op thread per test process.

The suite runs with pytest-xdist (one worker per core); tiny tensors gain nothing from several threads, and
oversubscribed threads make small convolutions tens of times slower.
"""

import torch

torch.set_num_threads(1)
