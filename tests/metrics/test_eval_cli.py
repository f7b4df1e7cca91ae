"""`t2v eval fvd|is|clipsim|consistency`: one-line errors with exit status 2, and reports whose
numbers equal the library's."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from t2v import cli
from t2v.models.c3d import C3D, C3DConfig, state_dict_to_chainer


def _run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "t2v", *args], capture_output=True, text=True)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in stderr, stderr
    return lines[0]


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run `t2v` in this process (so the test's video reader is seen); (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["t2v", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


def test_empty_directory_is_one_line_exit_2(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    r = _run_module("eval", "fvd", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"))
    assert r.returncode == 2
    assert "no videos" in _one_error_line(r.stderr)


def test_missing_weights_is_one_line_exit_2_saying_where_to_get_them(tmp_path, monkeypatch):
    for d in ("real", "fake"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "a.mp4").write_bytes(b"")  # listed, never decoded: the weights are checked first
    monkeypatch.setenv("T2V_CACHE", str(tmp_path / "cache"))
    r = _run_module("eval", "fvd", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--weights", str(tmp_path / "none.pt"))
    assert r.returncode == 2 and "rgb_imagenet.pt" in _one_error_line(r.stderr)
    r = _run_module("eval", "is", "--fake", str(tmp_path / "fake"))
    assert r.returncode == 2 and "c3d_ucf101.pt" in _one_error_line(r.stderr)


@pytest.fixture(scope="module")
def i3d_weights(tmp_path_factory, random_i3d):
    path = tmp_path_factory.mktemp("i3d") / "i3d.pt"
    torch.save(random_i3d.state_dict(), path)
    return path


@pytest.fixture
def folders(tmp_path, square_video, mp4_writer):
    for i in range(5):
        mp4_writer(tmp_path / "real" / f"r{i}.mp4", square_video(i, 10, (32, 48)))
        (tmp_path / "real" / f"r{i}.txt").write_text("a cat")
    for i in range(4):
        mp4_writer(tmp_path / "fake" / f"f{i}.mp4", square_video(100 + i, 10, (32, 48)))
        (tmp_path / "fake" / f"f{i}.txt").write_text("a dog")
    return tmp_path / "real", tmp_path / "fake"


def test_too_short_clips_are_one_line_exit_2(monkeypatch, capsys, video_io, folders, i3d_weights):
    real, fake = folders
    code, _, err = _main(monkeypatch, capsys, "eval", "fvd", "--real", str(real), "--fake", str(fake), "--weights", str(i3d_weights), "--size", "32")
    assert code == 2 and "has 10 frames" in _one_error_line(err)


def test_fvd_report_equals_the_library(monkeypatch, capsys, video_io, folders, i3d_weights, random_i3d, tmp_path):
    from t2v.metrics.fvd import FVDConfig, frechet_video_distance, i3d_extractor
    from t2v.metrics.video_folder import iter_clips, list_videos

    real, fake = folders
    report = tmp_path / "fvd.json"
    code, out, _ = _main(monkeypatch, capsys, "eval", "fvd", "--real", str(real), "--fake", str(fake), "--weights", str(i3d_weights),
                         "--frames", "8", "--size", "32", "--resize", "center-crop", "--json", str(report))
    assert code == 0 and "FVD" in out
    got = json.loads(report.read_text())
    cfg = FVDConfig(frames=8, size=32, resize="center_crop")
    ref = frechet_video_distance(iter_clips(list_videos(real), 8, reader=video_io), iter_clips(list_videos(fake), 8, reader=video_io),
                                 i3d_extractor(random_i3d), cfg)
    assert (got["real"]["videos"], got["fake"]["videos"]) == (5, 4)
    assert got["value"] > 0 and abs(got["value"] - ref.fvd) / ref.fvd < 1e-6


def test_is_report_equals_the_library(monkeypatch, capsys, video_io, square_video, mp4_writer, tmp_path):
    from t2v.metrics.inception_score import class_probabilities, inception_score
    from t2v.metrics.video_folder import iter_clips, list_videos
    from t2v.models.c3d import load_c3d

    for i in range(4):
        mp4_writer(tmp_path / "videos" / f"v{i}.mp4", square_video(i, 16, (32, 48)))
    torch.manual_seed(0)
    np.savez(tmp_path / "c3d.npz", **state_dict_to_chainer(C3D(C3DConfig(widths=(4, 8, 8, 16, 16), fc=32)).state_dict()))
    np.savez(tmp_path / "mean2.npz", mean=np.random.RandomState(0).uniform(80, 120, (3, 16, 128, 171)).astype(np.float32))
    report = tmp_path / "is.json"
    code, out, _ = _main(monkeypatch, capsys, "eval", "is", "--fake", str(tmp_path / "videos"), "--weights", str(tmp_path / "c3d.npz"),
                         "--splits", "2", "--json", str(report))
    assert code == 0 and "Inception Score" in out
    got = json.loads(report.read_text())["fake"]
    probs = class_probabilities(iter_clips(list_videos(tmp_path / "videos"), 16, reader=video_io), load_c3d(tmp_path / "c3d.npz"))
    mean, std = inception_score(probs, splits=2)
    assert got["videos"] == 4 and abs(got["mean"] - mean) < 1e-9 and abs(got["std"] - std) < 1e-9


def test_clip_reports_equal_the_library(monkeypatch, capsys, video_io, folders, clip_dir, tmp_path):
    from t2v.metrics.clip_score import load_clip, mean_clipsim, mean_frame_consistency
    from t2v.metrics.video_folder import iter_clips, list_videos

    real, fake = folders
    scorer = load_clip(clip_dir)
    for metric in ("clipsim", "consistency"):
        report = tmp_path / f"{metric}.json"
        code, out, _ = _main(monkeypatch, capsys, "eval", metric, "--fake", str(fake), "--real", str(real), "--clip", str(clip_dir),
                             "--frames", "6", "--json", str(report))
        assert code == 0, out
        got = json.loads(report.read_text())
        for name, folder, prompt in (("fake", fake, "a dog"), ("real", real, "a cat")):
            clips = list(iter_clips(list_videos(folder), 6, reader=video_io))
            if metric == "clipsim":
                ref = mean_clipsim(scorer, clips, [prompt] * len(clips)).mean
            else:
                ref = mean_frame_consistency(scorer, clips).mean
            assert abs(got[name]["value"] - ref) < 1e-6, (metric, name)
    code, _, err = _main(monkeypatch, capsys, "eval", "clipsim", "--fake", str(tmp_path / "nothing"), "--clip", str(clip_dir))
    assert code == 2 and "not a directory" in _one_error_line(err)
