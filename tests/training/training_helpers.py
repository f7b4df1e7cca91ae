"""Helpers of the training tests: the tiny preset with overrides, `python -m t2v` subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from stall import run_with_stall_guard, tree_cpu_ticks, wait_until

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_test.yaml"


def tiny_config(output_dir: Path, **overrides):
    """configs/tiny_test.yaml with `output_dir` and `--set`-style overrides ({"optim.lr": 1e-3})."""
    from t2v.training.config import apply_overrides, config_from_dict

    data = yaml.safe_load(TINY.read_text())
    sets = set_args(output_dir, **overrides)[1::2]
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


def run_t2v(*args: str, env: dict | None = None, stall: float = 300) -> subprocess.CompletedProcess:
    """`python -m t2v ARGS`, output captured; killed only on a stall (`stall.run_with_stall_guard`)."""
    return run_with_stall_guard(t2v_cmd(*args), stall, env=env or cli_env(), cwd=ROOT)


def set_args(output_dir: Path, **overrides) -> list[str]:
    """`--set` arguments equal to `tiny_config(output_dir, **overrides)`."""
    args = ["--set", f"output_dir={output_dir}"]
    for k, v in overrides.items():
        args += ["--set", f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"]
    return args


def wait_for(path: Path, proc: subprocess.Popen, stall: float = 240.0) -> None:
    """Poll until `path` exists; fail with the process's stderr if it ends first. Not a speed check:
    it gives up only when the process tree has used no CPU and nothing under `path`'s folder (the run:
    logs, checkpoints) has changed for `stall` seconds (a hang), however long a run that keeps working takes."""
    import time

    def files() -> frozenset:
        """(name, size) of the run's files; a walk that meets a checkpoint being renamed counts as a change."""
        try:
            return frozenset((str(f), f.stat().st_size) for f in path.parent.rglob("*") if f.is_file())
        except FileNotFoundError:
            return frozenset({("<changing>", time.monotonic())})

    def appeared() -> bool:
        if not path.exists() and proc.poll() is not None:
            raise AssertionError(f"the training process ended ({proc.returncode}) before {path.name}:\n{proc.stderr.read()}")
        return path.exists()

    try:
        wait_until(appeared, lambda: (files(), tree_cpu_ticks(proc.pid)), stall, f"the run before {path.name} appeared under {path.parent}")
    except AssertionError:
        if proc.poll() is None:
            proc.kill()
        raise


def safetensors_equal(a: Path, b: Path) -> tuple[bool, float]:
    """(bit-equal, max abs difference) of two safetensors files with the same names."""
    import torch
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    assert x.keys() == y.keys()
    diff = max((x[k].double() - y[k].double()).abs().max().item() for k in x)
    return all(torch.equal(x[k], y[k]) for k in x), diff
