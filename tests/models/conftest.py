"""Fixtures for the video U-Net tests: a tiny SD folder and its 2D U-Net."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from sd_fixture import make_tiny_sd


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    return make_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="session")
def _unet2d(tiny_sd):
    from t2v.models import load_unet2d

    return load_unet2d(tiny_sd).eval()


@pytest.fixture
def unet2d(_unet2d):
    """A fresh copy of the tiny SD U-Net (tests may train it)."""
    return copy.deepcopy(_unet2d)
