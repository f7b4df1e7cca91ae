"""Fixtures for the cascade tests: tiny stage networks and folders (random weights), one torch thread."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads on the shared 2-core machine; restored after."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def stage_dirs(tmp_path_factory) -> Path:
    """A folder with tiny random interpolate/, upscale/ and vae_temporal/ stages (the --stages layout)."""
    from cascade_helpers import make_stage_dirs

    return make_stage_dirs(tmp_path_factory.mktemp("stages"))
