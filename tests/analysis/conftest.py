import pytest
import torch

NUM_CLASSES = 3
IMG_SIZE = 16


@pytest.fixture
def tiny_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two batches of 6 random 16x16 images, labels 0, 1, 2 twice each per batch (4 images per class)."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(NUM_CLASSES).repeat(2)
    return [(torch.randn(len(labels), 3, IMG_SIZE, IMG_SIZE, generator=generator), labels) for _ in range(2)]
