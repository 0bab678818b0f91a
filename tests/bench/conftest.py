import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """Tiny tensors gain nothing from threads, and on a shared, loaded machine thread barriers cost seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
