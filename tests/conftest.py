"""One torch thread for the whole suite: the tests' tensors are small, where intra-op threads cost more than they
give (x20 slower per step on a busy 2-core machine), and a fixed thread count keeps float reductions reproducible
from run to run. Set at import (module-scoped fixtures) and again around every test, since a run's `threads` or a
benchmark's `--threads` may change it."""
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)
