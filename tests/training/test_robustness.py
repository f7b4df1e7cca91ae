"""Bad data and bad numbers: a corrupt or too short clip is skipped and counted (and said in the
log); a NaN in the loss stops training with a one-line error, the last good checkpoint intact."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

import pytest

from t2v.data.shapes import render_clip
from t2v.data.video_io import write_video
from t2v.errors import T2VError
from t2v.training.checkpoint import checkpoint_name, complete_checkpoints, latest_checkpoint
from t2v.training.loop import NAN_ENV, train
from training_helpers import tiny_config

VDM_FROM_SCRATCH = {"stage": "video", "model.recipe": "vdm", "data.num_frames": 4, "data.batch_size": 2}


def _clip_folder(root, good: int = 4):
    """`good` 8-frame ShapesWorld mp4s with captions, one 2-frame clip (too short for 4 frames) and
    one file of random bytes named .mp4 (unreadable)."""
    root.mkdir()
    combos = [("red", "circle", "right"), ("blue", "square", "up"), ("green", "triangle", "left"), ("white", "circle", "down")]
    for i in range(good):
        color, shape, motion = combos[i % len(combos)]
        clip = render_clip(color, shape, motion, size=16, num_frames=8, object_size=5, displacement=6.0)
        write_video(root / f"clip{i}.mp4", clip, 8)
        (root / f"clip{i}.txt").write_text(f"a {color} {shape} moving {motion}")
    short = render_clip("red", "square", "left", size=16, num_frames=2, object_size=5, displacement=2.0)
    write_video(root / "short.mp4", short, 8)
    (root / "short.txt").write_text("a red square moving left")
    (root / "broken.mp4").write_bytes(torch.randint(0, 256, (4000,), generator=torch.Generator().manual_seed(0)).to(torch.uint8).numpy().tobytes())
    (root / "broken.txt").write_text("a broken clip")
    return root


def test_corrupt_and_short_clips_are_skipped_and_counted(tmp_path):
    data = _clip_folder(tmp_path / "clips")
    out = tmp_path / "run"
    # 6 entries, batches of 2: three steps touch every entry once; VDM from scratch on 4-frame clips.
    result = train(tiny_config(out, **VDM_FROM_SCRATCH, max_steps=3, **{"data.dataset": str(data), "checkpoint.every": 0}))
    assert result.step == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    assert result.skipped == 2
    log = (out / "train.log").read_text()
    assert "skipped 2 of 6 clips (1 too short, 1 unreadable)" in log
    assert f"skipped {data / 'broken.mp4'} (unreadable)" in log and f"skipped {data / 'short.mp4'} (too short)" in log
    assert (out / "model" / "unet" / "config.json").is_file()


def test_nan_loss_stops_cleanly_keeping_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    config = tiny_config(out, max_steps=8, **{"checkpoint.every": 2, "checkpoint.keep": 4, "logging.every": 2})
    monkeypatch.setenv(NAN_ENV, "5")
    from torch.utils.tensorboard import SummaryWriter

    closed = []
    close = SummaryWriter.close
    monkeypatch.setattr(SummaryWriter, "close", lambda self: (closed.append(self.log_dir), close(self))[1])
    with pytest.raises(T2VError) as e:
        train(config)
    msg = str(e.value)
    assert "\n" not in msg and "the loss is nan at step 5" in msg
    assert str(out / "checkpoints" / checkpoint_name(4)) in msg and "--resume" in msg
    ckpts = out / "checkpoints"
    assert [s for s, _ in complete_checkpoints(ckpts)] == [2, 4]
    assert latest_checkpoint(ckpts) == ckpts / checkpoint_name(4)  # every file matches its hash
    weights = load_file(str(ckpts / checkpoint_name(4) / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert not (out / "model").exists()
    # The TensorBoard writer was closed on the way out (no writer thread or open file left behind in
    # this process), and the log of the steps before the NaN is on disk.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert closed == [str(out / "logs")]
    events = EventAccumulator(str(next((out / "logs").glob("events.*"))))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4]

    # Without the fault, --resume continues from it to the end.
    monkeypatch.delenv(NAN_ENV)
    result = train(config, resume=True)
    assert result.resumed_from == ckpts / checkpoint_name(4) and result.step == 8
