"""Training tests run with one intra-op thread, here and in subprocesses (OMP_NUM_THREADS=1): float
reductions split over another number of threads round differently (about 1e-7), and the resume
tests compare weights bit for bit between processes. Helpers live in training_helpers.py.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
