"""`t2v interpolate`, `t2v upscale` and `t2v generate --cascade`: outputs on tiny stages, and bad
input as one `error:` line with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from t2v.cli import app
from t2v.data.shapes import render_clip
from t2v.data.video_io import DEFAULT_FOLDER_FPS, read_video, write_video
from t2v.errors import T2VError

runner = CliRunner()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A 3-frame 16x16 ShapesWorld clip as PNG frames (lossless) and a 15x16 one."""
    root = tmp_path_factory.mktemp("clips")
    frames = render_clip("red", "square", "right", size=16, num_frames=3, object_size=5, displacement=6, start=(2, 5))
    write_video(root / "clip", torch.from_numpy(frames), 4.0)
    write_video(root / "odd", torch.from_numpy(np.ascontiguousarray(frames[:, 1:])), 4.0)
    return root


def test_interpolate_and_upscale_write_videos(stage_dirs, clip_dir, tmp_path):
    r = runner.invoke(app, ["interpolate", str(clip_dir / "clip"), "--model", str(stage_dirs / "interpolate"),
                            "--factor", "2", "-o", str(tmp_path / "i"), "--steps", "1"])
    assert r.exit_code == 0, r.output
    frames, fps = read_video(tmp_path / "i")
    source, _ = read_video(clip_dir / "clip")
    assert frames.shape == (5, 16, 16, 3)
    assert torch.equal(frames[::2], source)  # lossless PNG: the known frames come back byte for byte
    r = runner.invoke(app, ["upscale", str(clip_dir / "clip"), "--model", str(stage_dirs / "upscale"),
                            "-o", str(tmp_path / "u.mp4"), "--steps", "1"])
    assert r.exit_code == 0, r.output
    frames, fps = read_video(tmp_path / "u.mp4")
    assert frames.shape == (3, 32, 32, 3) and fps == pytest.approx(DEFAULT_FOLDER_FPS)  # the input (a frame folder) rate
    r = runner.invoke(app, ["upscale", str(clip_dir / "clip"), "--model", str(stage_dirs / "upscale"),
                            "-o", str(tmp_path / "u2"), "--steps", "1", "--self-ensemble", "2"])
    assert r.exit_code == 0, r.output
    assert read_video(tmp_path / "u2")[0].shape == (3, 32, 32, 3)


def _error(*args: str) -> str:
    """The T2VError message of a command run in-process (main() prints it as one `error:` line)."""
    r = runner.invoke(app, list(args))
    assert isinstance(r.exception, T2VError), r.output
    assert len(str(r.exception).splitlines()) == 1
    return str(r.exception)


def test_bad_input_is_one_line_and_exit_2(clip_dir, tmp_path):
    r = subprocess.run([sys.executable, "-m", "t2v", "interpolate", str(clip_dir / "clip"), "--factor", "3", "-o",
                        str(tmp_path / "x.mp4")], capture_output=True, text=True)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: --factor must be 2 or 4"), r.stderr


def test_bad_input_messages(stage_dirs, clip_dir, tmp_path):
    clip = str(clip_dir / "clip")
    assert "video not found" in _error("interpolate", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "x.mp4"))
    assert "not interpolate" in _error("interpolate", clip, "--model", str(stage_dirs / "upscale"), "-o", str(tmp_path / "x.mp4"))
    assert "multiples of 2" in _error("upscale", str(clip_dir / "odd"), "--model", str(stage_dirs / "upscale"),
                                      "-o", str(tmp_path / "x.mp4"))
    assert "--noise-level must be in [0, 1]" in _error("upscale", clip, "--noise-level", "2", "-o", str(tmp_path / "x.mp4"))
    assert "unknown video type" in _error("upscale", clip, "-o", str(tmp_path / "x.txt"))
    assert "--self-ensemble must be 1, 2, 4 or 8" in _error("upscale", clip, "--self-ensemble", "3", "-o", str(tmp_path / "x.mp4"))
    assert "need --cascade" in _error("generate", "a red circle", "--factor", "2")
    assert "--factor must be 2 or 4" in _error("generate", "a red circle", "--cascade", "--factor", "8")
    assert "has no interpolate/" in _error("generate", "a red circle", "--cascade", "--stages", str(clip_dir))


def test_a_missing_default_stage_is_a_one_line_error():
    from t2v.errors import T2VError
    from t2v.pipelines.cascade import default_stage_dir

    with pytest.raises(T2VError) as e:  # was a TypeError from importlib's namespace-package path
        default_stage_dir("no-such-stage")
    assert "no default no-such-stage stage" in str(e.value) and "\n" not in str(e.value)
