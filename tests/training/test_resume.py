"""Resume exactness and atomic checkpoints.

The reference trains the tiny preset 8 steps straight (checkpoints every 2). Two other runs are
SIGKILLed: one after the checkpoint of step 4 is complete, one while it is writing the checkpoint of
step 6 (a test hook sleeps mid-write). Both resume with --resume and must end bit-equal to the
reference: weights, optimizer state, EMA, the losses of the resumed steps, the final model folder.
All runs use one CPU thread (see conftest.py).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess

import pytest
import torch

from t2v.errors import T2VError
from t2v.training.checkpoint import (
    STATE_FILE,
    checkpoint_name,
    complete_checkpoints,
    latest_checkpoint,
    prune,
    read_state,
)
from t2v.training.loop import HANG_ENV
from t2v.training.checkpoint import SLEEP_ENV
from t2v.training.loop import train
from training_helpers import TINY, cli_env, safetensors_equal, set_args, t2v_cmd, tiny_config, wait_for

SETTINGS = {"max_steps": 8, "checkpoint.every": 2, "checkpoint.keep": 4}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny preset trained 8 steps in one go, in this process."""
    out = tmp_path_factory.mktemp("straight")
    torch.set_num_threads(1)
    result = train(tiny_config(out, **SETTINGS))
    return out, result


def _killed_run(out, env_extra: dict, marker) -> None:
    """Start `t2v train` in a subprocess, wait for `marker(out)`, SIGKILL it."""
    proc = subprocess.Popen(t2v_cmd("train", str(TINY), *set_args(out, **SETTINGS)), env=cli_env(**env_extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(marker(out), proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()  # SIGKILL cannot be caught: no deadline needed
    assert proc.returncode == -signal.SIGKILL


def _assert_same_as_reference(out, result, reference) -> None:
    ref_out, ref = reference
    assert result.step == ref.step == 8
    assert result.losses == ref.losses[8 - len(result.losses):]  # the resumed steps' losses, bit for bit
    ck, ref_ck = out / "checkpoints" / checkpoint_name(8), ref_out / "checkpoints" / checkpoint_name(8)
    equal, diff = safetensors_equal(ck / "model.safetensors", ref_ck / "model.safetensors")
    assert equal, f"weights differ by up to {diff}"
    opt, ref_opt = (torch.load(p / "optimizer.bin", weights_only=False) for p in (ck, ref_ck))
    for i, s in ref_opt["state"].items():
        for k, v in s.items():
            assert torch.equal(opt["state"][i][k], v), (i, k)
    ema, ref_ema = (torch.load(p / "custom_checkpoint_0.pkl", weights_only=False) for p in (ck, ref_ck))
    assert ema["optimization_step"] == ref_ema["optimization_step"] == 8
    assert all(torch.equal(a, b) for a, b in zip(ema["shadow_params"], ref_ema["shadow_params"]))
    unet = "model/unet/diffusion_pytorch_model.safetensors"  # the EMA weights
    assert safetensors_equal(out / unet, ref_out / unet)[0]


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_is_bit_exact(tmp_path, reference):
    out = tmp_path / "run"
    _killed_run(out, {HANG_ENV: "4"}, lambda o: o / "test-hang-4")
    assert [s for s, _ in complete_checkpoints(out / "checkpoints")] == [2, 4]
    assert not (out / "model").exists()

    result = train(tiny_config(out, **SETTINGS), resume=True)
    assert result.resumed_from == out / "checkpoints" / checkpoint_name(4)
    assert len(result.losses) == 4
    _assert_same_as_reference(out, result, reference)


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_leaves_only_complete_ones(tmp_path, reference):
    out = tmp_path / "run"
    _killed_run(out, {SLEEP_ENV: "6:300"}, lambda o: o / "checkpoints" / "test-writing-6")
    ckpts = out / "checkpoints"
    partial = ckpts / f".tmp-{checkpoint_name(6)}"
    assert (partial / "model.safetensors").is_file() and not (partial / STATE_FILE).exists()  # killed mid-write
    assert [s for s, _ in complete_checkpoints(ckpts)] == [2, 4]
    assert latest_checkpoint(ckpts) == ckpts / checkpoint_name(4)

    result = train(tiny_config(out, **SETTINGS), resume=True)
    assert result.resumed_from == ckpts / checkpoint_name(4)
    assert not partial.exists()  # cleaned up by the next checkpoint
    _assert_same_as_reference(out, result, reference)


def test_damaged_checkpoints_are_skipped(tmp_path, reference, caplog):
    ckpts = tmp_path / "checkpoints"
    shutil.copytree(reference[0] / "checkpoints", ckpts)
    assert latest_checkpoint(ckpts) == ckpts / checkpoint_name(8)
    # Same size, one byte flipped: the SHA-256 catches it.
    f = ckpts / checkpoint_name(8) / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(T2VError, match="does not match its SHA-256"):
        read_state(ckpts / checkpoint_name(8))
    assert latest_checkpoint(ckpts) == ckpts / checkpoint_name(6)
    assert "trying an earlier checkpoint" in caplog.text
    # Truncated optimizer state, and a folder without state.json.
    opt = ckpts / checkpoint_name(6) / "optimizer.bin"
    opt.write_bytes(opt.read_bytes()[:100])
    (ckpts / checkpoint_name(4) / STATE_FILE).unlink()
    assert latest_checkpoint(ckpts) == ckpts / checkpoint_name(2)


def test_prune_keeps_the_last_k_and_removes_partial_ones(tmp_path):
    for s in (2, 4, 6, 8):
        (tmp_path / checkpoint_name(s)).mkdir()
    (tmp_path / f".tmp-{checkpoint_name(10)}").mkdir()
    prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint_name(6), checkpoint_name(8)]


def test_reference_run_keeps_k_checkpoints_and_writes_the_model(reference):
    out, result = reference
    assert [s for s, _ in complete_checkpoints(out / "checkpoints")] == [2, 4, 6, 8]  # keep 4
    state = json.loads((out / "checkpoints" / checkpoint_name(8) / STATE_FILE).read_text())
    assert state["step"] == 8 and state["world_size"] == 1 and state["stream"] == {"epoch": 0, "batch": 8}
    assert all(torch.isfinite(torch.tensor(result.losses)))


def test_resume_refuses_another_config_or_process_count(tmp_path, reference):
    out = tmp_path / "run"
    shutil.copytree(reference[0] / "checkpoints", out / "checkpoints")
    with pytest.raises(T2VError, match=r"optim\.lr = 0\.001, now 0\.002"):
        train(tiny_config(out, **{**SETTINGS, "max_steps": 10, "optim.lr": 2e-3}), resume=True)
    state_file = out / "checkpoints" / checkpoint_name(8) / STATE_FILE
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "world_size": 2}))
    with pytest.raises(T2VError, match="written by 2 processes"):
        train(tiny_config(out, **{**SETTINGS, "max_steps": 10}), resume=True)


def test_training_into_a_folder_with_checkpoints_needs_resume(tmp_path, reference):
    out = tmp_path / "run"
    shutil.copytree(reference[0] / "checkpoints", out / "checkpoints")
    with pytest.raises(T2VError, match="already has checkpoints.*--resume"):
        train(tiny_config(out, **SETTINGS))
