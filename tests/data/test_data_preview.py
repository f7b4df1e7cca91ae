"""`t2v data preview`: writes a grid video whose frame count, size and tiles are what the data set gives."""

from __future__ import annotations

import numpy as np
import pytest
from clips import make_clip, psnr
from typer.testing import CliRunner

from t2v.cli import app
from t2v.data.preview import GAP, preview_grid
from t2v.data.shapes import ShapesWorldDataset
from t2v.data.video_io import read_video, write_video
from t2v.errors import T2VError

runner = CliRunner()


def test_preview_shapes_mp4(tmp_path):
    out = tmp_path / "p.mp4"
    r = runner.invoke(app, ["data", "preview", "shapes", "--out", str(out), "--n", "4", "--frames", "6", "--size", "32", "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().endswith(str(out))
    frames, fps = read_video(out)
    # 4 samples -> 2 x 2 tiles of 32 px enlarged 4x (to 128 px), GAP px apart, captions under each row
    assert frames.shape[0] == 6 and fps == pytest.approx(8.0)
    assert frames.shape[2] == 2 * 128 + GAP and frames.shape[1] > 2 * 128 + GAP
    ds = ShapesWorldDataset(4, seed=3, size=32, num_frames=6)
    for k, (y, x) in enumerate([(0, 0), (0, 128 + GAP)]):  # the first row of tiles
        want = np.rint((ds[k]["video"].numpy() + 1) * 127.5).astype(np.uint8).transpose(1, 2, 3, 0)
        want = want.repeat(4, axis=1).repeat(4, axis=2)  # nearest-neighbour enlargement
        got = frames[:, y : y + 128, x : x + 128].numpy()
        assert psnr(got, want) > 40  # measured 61 dB; the same tile shifted by 1 px scores 25 dB


def test_preview_caption_folder_gif_skips_bad_clip(tmp_path):
    root = tmp_path / "v"
    write_video(root / "a.mp4", make_clip(8, 24, 32), fps=10)
    (root / "a.txt").write_text("first")
    (root / "b.mp4").write_bytes(b"not a video at all")
    (root / "b.txt").write_text("broken")
    out = tmp_path / "p.gif"
    r = runner.invoke(app, ["data", "preview", str(root), "--out", str(out), "--frames", "4", "--size", "24", "--stride", "2"])
    assert r.exit_code == 0, r.output
    assert "skipped 1 of 2 clips (1 unreadable)" in r.output
    frames, fps = read_video(out)
    assert frames.shape[0] == 4 and frames.shape[2] == 120  # one 24 px tile enlarged 5x
    assert fps == pytest.approx(5.0, abs=0.1)  # 10 fps source, every 2nd frame


def test_preview_grid_holds_last_frame_of_shorter_clips():
    a = np.full((3, 8, 8, 3), 200, np.uint8)
    b = np.full((1, 8, 8, 3), 90, np.uint8)
    import torch

    g = preview_grid([torch.from_numpy(a), torch.from_numpy(b)], ["a", "b"], tile=16)
    assert g.shape[0] == 3 and g.shape[2] == 16 + GAP + 16
    assert (g[:, :16, :16] == 200).all() and (g[:, :16, 16 + GAP :] == 90).all()


def test_preview_missing_path_is_named(tmp_path):
    r = runner.invoke(app, ["data", "preview", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.mp4")])
    assert isinstance(r.exception, T2VError) and "nowhere" in str(r.exception)
