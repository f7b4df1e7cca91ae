"""benchmarks/unet_speed.py: the diffusers peers it builds really match the t2v models' size.

Only parameter counts are checked (built on the meta device: no memory, no timing); the benchmark
itself prints times and never asserts them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("unet_speed", ROOT / "benchmarks" / "unet_speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["unet_speed"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


WIDTHS = (32, 64, 128, 128)


@pytest.mark.parametrize("recipe", ["vdm", "make-a-video"])
def test_peers_are_matched_within_ten_percent(bench, recipe):
    setup = bench.Setup(frames=4, size=8)
    with torch.device("meta"):
        target = bench.n_params(bench.build_t2v(recipe, WIDTHS, setup))
    cache: dict = {}
    for peer, build in (("modelscope", bench.build_modelscope), ("animatediff", bench.build_animatediff)):
        widths, count = bench.match_widths(peer, target, WIDTHS, setup, cache)
        with torch.device("meta"):
            built = bench.n_params(build(widths, setup))  # the model the benchmark times, counted directly
        assert built == count
        assert abs(built / target - 1) <= bench.TOLERANCE, (peer, widths, built, target)


def test_sd_layout_and_head_widths(bench):
    cfg = bench.sd_config((64, 96, 192, 224), bench.Setup())
    assert cfg["attention_head_dim"] == (1, 3, 3, 7)  # heads of 64 (or 32 where 64 does not divide)
    assert cfg["norm_num_groups"] == 32 and cfg["cross_attention_dim"] == 768
    assert bench.sd_config((320, 640, 1280, 1280), bench.Setup(sd15_heads=True))["attention_head_dim"] == 8
