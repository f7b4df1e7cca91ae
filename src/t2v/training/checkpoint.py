"""Training checkpoints that are either complete or absent.

A checkpoint is a folder `checkpoints/step-00000500/`:
  accelerate's `save_state` files   models, optimizer, LR scheduler, registered objects (EMA)
  rng-<rank>.pt                     each process's RNG states: python, numpy, torch (+ CUDA) and the
                                    loop's own generator (noise, timesteps, caption dropout)
  state.json                        step, data position, number of processes, the config, and the
                                    size and SHA-256 of every file above
It is written under a temporary name (`.tmp-step-...`), every file and the folder are fsynced, and
only then is it renamed: a process killed while writing leaves a `.tmp-` folder, never a
`step-` folder. On resume the newest `step-` folder whose files match state.json is used; a damaged
one is reported and the one before it taken. The last `keep` complete checkpoints are kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from t2v.errors import T2VError

log = logging.getLogger("t2v.training")

FORMAT = "t2v-checkpoint-1"
STATE_FILE = "state.json"
_NAME = re.compile(r"^step-(\d+)$")
# Test hook: "STEP:SECONDS" sleeps that long in the middle of writing the checkpoint of STEP (after
# the state files, before state.json and the rename), so a test can kill the process mid-write.
SLEEP_ENV = "T2V_TEST_CHECKPOINT_SLEEP"


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


# ------------------------------------------------------------------------------------------------
# RNG states
# ------------------------------------------------------------------------------------------------
def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every random state of this process (plain types and tensors: loadable with weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Restore what `rng_state` returned."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------------
def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != STATE_FILE)


def complete_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of every `step-N` folder (renamed, so fully written), oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found)


def read_state(path: Path, *, verify: bool = True) -> dict[str, Any]:
    """state.json of a checkpoint, after checking that every file it lists has its size (and hash)."""
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise T2VError(f"checkpoint {path} has no readable {STATE_FILE} ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise T2VError(f"checkpoint {path} is not a t2v checkpoint ({FORMAT})")
    for name, meta in state["files"].items():
        f = path / name
        if not f.is_file() or f.stat().st_size != meta["bytes"]:
            raise T2VError(f"checkpoint {path} is damaged: {name} is missing or has another size")
        if verify and _digest(f) != meta["sha256"]:
            raise T2VError(f"checkpoint {path} is damaged: {name} does not match its SHA-256")
    return state


def latest_checkpoint(folder: Path) -> Optional[Path]:
    """The newest complete, undamaged checkpoint in `folder` (a damaged one is logged and skipped)."""
    for _, path in reversed(complete_checkpoints(folder)):
        try:
            read_state(path)
            return path
        except T2VError as exc:
            log.warning("%s; trying an earlier checkpoint", exc)
    return None


# ------------------------------------------------------------------------------------------------
# save / load
# ------------------------------------------------------------------------------------------------
def save_checkpoint(accelerator: Any, folder: Path, step: int, *, generator: torch.Generator,
                    state: dict[str, Any], keep: int) -> Path:
    """Write checkpoint `step` atomically (every process calls this); returns its folder.

    `state` (data position, config, ...) goes into state.json with the step, the number of
    processes and the list of files with their sizes and SHA-256.
    """
    folder = Path(folder)
    final = folder / checkpoint_name(step)
    tmp = folder / f".tmp-{final.name}"
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)  # left by a process killed while writing
        tmp.mkdir()
    accelerator.wait_for_everyone()
    # 1. Models, optimizer, LR scheduler, EMA (accelerate knows FSDP/DeepSpeed layouts); our RNG per process.
    accelerator.save_state(str(tmp))
    torch.save(rng_state(generator), tmp / f"rng-{accelerator.process_index}.pt")
    hook = os.environ.get(SLEEP_ENV, "")
    if hook and int(hook.split(":")[0]) == step:
        (folder / f"test-writing-{step}").touch()
        time.sleep(float(hook.split(":")[1]))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        # 2. The file list with sizes and hashes, then fsync everything, then the rename that commits it.
        files = {}
        for f in _files(tmp):
            _fsync(f)
            files[str(f.relative_to(tmp))] = {"bytes": f.stat().st_size, "sha256": _digest(f)}
        record = {"format": FORMAT, "step": step, "world_size": accelerator.num_processes, **state, "files": files}
        (tmp / STATE_FILE).write_text(json.dumps(record, indent=1) + "\n")
        _fsync(tmp / STATE_FILE)
        _fsync(tmp)
        if final.exists():  # a damaged checkpoint of the same step that resume skipped
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync(folder)
        prune(folder, keep)
    accelerator.wait_for_everyone()
    return final


def prune(folder: Path, keep: int) -> None:
    """Delete all but the last `keep` complete checkpoints and any unfinished `.tmp-` folder."""
    for _, path in complete_checkpoints(folder)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
    for p in folder.glob(".tmp-step-*"):
        shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(accelerator: Any, path: Path, *, generator: torch.Generator) -> dict[str, Any]:
    """Restore models, optimizer, LR scheduler, registered objects and this process's RNG states
    from checkpoint `path`; returns its state.json."""
    state = read_state(path, verify=False)  # latest_checkpoint verified the hashes
    if state["world_size"] != accelerator.num_processes:
        raise T2VError(
            f"checkpoint {path} was written by {state['world_size']} processes; resume with "
            f"{state['world_size']} (accelerate launch --num_processes {state['world_size']}), not {accelerator.num_processes}"
        )
    try:
        accelerator.load_state(str(path))
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise T2VError(f"checkpoint {path} does not fit this model/config ({first[:200]})") from None
    rng_file = path / f"rng-{accelerator.process_index}.pt"
    set_rng_state(torch.load(rng_file, weights_only=True), generator)
    return state
