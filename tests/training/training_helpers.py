"""Helpers of the training tests: the tiny preset with overrides, `python -m t2v` subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_test.yaml"


def tiny_config(output_dir: Path, **overrides):
    """configs/tiny_test.yaml with `output_dir` and `--set`-style overrides ({"optim.lr": 1e-3})."""
    from t2v.training.config import apply_overrides, config_from_dict

    data = yaml.safe_load(TINY.read_text())
    sets = [f"output_dir={output_dir}"] + [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                                           for k, v in overrides.items()]
    return config_from_dict(apply_overrides(data, sets))


def cli_env(**extra: str) -> dict[str, str]:
    """Environment of a `python -m t2v` subprocess: this worktree's sources, one thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def t2v_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "t2v", *args]


def run_t2v(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(t2v_cmd(*args), capture_output=True, text=True, env=env or cli_env(), timeout=timeout, cwd=ROOT)
