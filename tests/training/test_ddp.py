"""Two CPU processes under `accelerate launch` (torchrun, gloo) keep identical weights.

Each process reads a disjoint half of the data and draws its own noise (per-process generators),
so without gradient synchronisation their weights would part after the first step; with DDP they
stay bit-equal. A test hook writes each process's trained parameters at the end.
"""

from __future__ import annotations

import sys

import pytest
import torch
from safetensors.torch import load_file

from t2v.training.checkpoint import checkpoint_name, read_state
from stall import run_with_stall_guard
from training_helpers import ROOT, TINY, cli_env, set_args


@pytest.mark.slow
def test_two_processes_keep_identical_weights(tmp_path):
    out, dump = tmp_path / "run", tmp_path / "dump"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
           "-m", "t2v", "train", str(TINY), *set_args(out, max_steps=6, **{"checkpoint.every": 6})]
    r = run_with_stall_guard(cmd, stall=400, env=cli_env(T2V_TEST_DUMP_DIR=str(dump)), cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 processes" in r.stderr

    w0, w1 = load_file(str(dump / "rank0.safetensors")), load_file(str(dump / "rank1.safetensors"))
    assert w0.keys() == w1.keys() and len(w0) > 100
    assert all(torch.equal(w0[k], w1[k]) for k in w0)

    # They trained (the final weights are not the initial ones) ...
    from t2v.training.parts import build_parts
    from training_helpers import tiny_config

    torch.manual_seed(0)  # build_parts draws fresh weights from the global RNG; the loop seeds it with config.seed = 0
    init = {n: p.detach() for n, p in build_parts(tiny_config(tmp_path / "x")).trainable.items()}
    moved = [k for k in w0 if not torch.equal(w0[k], init[k])]
    assert len(moved) > 0.9 * len(w0)
    # ... on different noise: the two processes' generators are in different states.
    ck = out / "checkpoints" / checkpoint_name(6)
    assert read_state(ck)["world_size"] == 2
    g0, g1 = (torch.load(ck / f"rng-{r}.pt", weights_only=True)["generator"] for r in (0, 1))
    assert not torch.equal(g0, g1)
