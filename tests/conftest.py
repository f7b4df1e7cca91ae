"""Shared test fixtures: paths to the shared assets and a fixed torch seed per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# `../shared/assets` beside the project root; T2V_ASSETS overrides it (e.g. for git worktrees).
ASSETS = Path(os.environ.get("T2V_ASSETS", ROOT.parent / "shared" / "assets"))


@pytest.fixture(scope="session")
def assets() -> Path:
    """`../shared/assets` beside the project root (see its README for sources and licenses)."""
    if not ASSETS.is_dir():
        pytest.skip(f"shared assets not found at {ASSETS}")
    return ASSETS


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
    yield
