"""Video I/O: every writer/reader pair round-trips frame count, size, fps and pixels within a
per-codec bound; the five shared real videos decode with their true frame counts and sizes.

Bounds (measured with `tests/data/clips.py::make_clip`, sizes 48x64, 37x51 and 64x64, seeds 0-2,
on PyAV 18 / FFmpeg's libx264 and libvpx-vp9; printed by `python tests/data/measure_codecs.py`):
  H.264 (.mp4/.mov, crf 18): PSNR 35.4-38.5 dB  -> asserted > 34 dB
  VP9 (.webm):               PSNR 34.9-37.5 dB  -> asserted > 33 dB
  GIF (median-cut palette):  PSNR 31.5-32.2 dB, max |error| 32-46 -> asserted > 30 dB and <= 64;
                             exact on clips of at most 256 colors (ShapesWorld)
  PNG frame folder:          exact
"""

from __future__ import annotations

import hashlib
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from clips import make_clip, psnr

from t2v.data.shapes import render_clip
from t2v.data.video_io import VideoReadError, read_video, to_uint8_frames, write_video
from t2v.errors import T2VError

PSNR_BOUND = {".mp4": 34.0, ".mov": 34.0, ".webm": 33.0, ".gif": 30.0}


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".webm", ".gif", ""])
@pytest.mark.parametrize("shape", [(12, 48, 64), (9, 37, 51)])
def test_round_trip(tmp_path, suffix, shape):
    f, h, w = shape
    clip = make_clip(f, h, w, seed=1)
    path = write_video(tmp_path / f"clip{suffix}", clip, fps=12.5)
    back, fps = read_video(path, folder_fps=12.5)
    assert back.dtype == torch.uint8 and back.shape[0] == f
    if suffix in (".mp4", ".mov", ".webm"):
        # yuv420p: odd sizes padded by one row/column, repeating the edge
        assert back.shape[1:] == (h + h % 2, w + w % 2, 3)
        if h % 2:
            assert psnr(back[:, h], back[:, h - 1]) > 30  # padded row repeats the last one
        back = back[:, :h, :w]
    else:
        assert back.shape[1:] == (h, w, 3)
    assert fps == pytest.approx(12.5, abs=1e-9)
    if suffix == "":
        assert torch.equal(back, clip)  # PNG: lossless
    else:
        assert psnr(back, clip) > PSNR_BOUND[suffix]
    if suffix == ".gif":
        assert (back.int() - clip.int()).abs().max() <= 64


def test_gif_exact_on_few_colors_and_keeps_fps_as_frame_durations(tmp_path):
    clip = torch.from_numpy(render_clip("orange", "triangle", "down", num_frames=16))
    back, fps = read_video(write_video(tmp_path / "s.gif", clip, fps=8))
    assert torch.equal(back, clip)
    # GIF stores durations in 1/100 s: 15 intervals of 12.5 cs are written as rounded cumulative
    # times, last at round(187.5) = 188 cs, so the mean rate read back is 15 / 1.88 s.
    assert fps == pytest.approx(15 / 1.88, abs=1e-9)
    with av.open(str(tmp_path / "s.gif")) as c:
        pts = [fr.pts for fr in c.decode(video=0)]
    assert pts == [round(i * 12.5) for i in range(16)]


def test_mp4_keeps_ntsc_rate(tmp_path):
    back, fps = read_video(write_video(tmp_path / "n.mp4", make_clip(6, 16, 16), fps=30000 / 1001))
    assert fps == pytest.approx(30000 / 1001, rel=1e-9)


def test_webm_container_reports_zero_frames_but_decoding_counts_them(tmp_path):
    path = write_video(tmp_path / "c.webm", make_clip(7, 16, 24), fps=10)
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0
    frames, fps = read_video(path)
    assert frames.shape[0] == 7 and fps == pytest.approx(10)


def test_odd_size_rejected_when_not_padding(tmp_path):
    with pytest.raises(T2VError, match="even"):
        write_video(tmp_path / "odd.mp4", make_clip(4, 15, 16), fps=8, pad_odd=False)


def test_float_frames_match_closed_form(tmp_path):
    x = torch.rand(3, 5, 8, 10) * 2.2 - 1.1  # (C, F, H, W), a bit outside [-1, 1]
    u = to_uint8_frames(x)
    ref = np.empty((5, 8, 10, 3), dtype=np.uint8)
    for c in range(3):
        for f in range(5):
            ref[f, :, :, c] = np.round((np.clip(x[c, f].numpy(), -1, 1) + 1) * 127.5)
    assert np.array_equal(u.numpy(), ref)
    back, _ = read_video(write_video(tmp_path / "fl", x, fps=8))
    assert torch.equal(back, u)
    gray = to_uint8_frames(torch.zeros(1, 2, 4, 4))
    assert gray.shape == (2, 4, 4, 3) and int(gray[0, 0, 0, 0]) == 128


def test_frame_folder_sorts_numbers_as_numbers(tmp_path):
    from PIL import Image

    clip = make_clip(11, 8, 8)
    for i in range(11):
        Image.fromarray(clip[i].numpy()).save(tmp_path / f"f{i}.png")  # f10 sorts before f2 as text
    back, fps = read_video(tmp_path, folder_fps=5)
    assert torch.equal(back, clip) and fps == 5


def test_bad_input_names_the_path(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoReadError, match="nope.mp4"):
        read_video(missing)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(VideoReadError, match="junk.mp4"):
        read_video(junk)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoReadError, match="no png/jpg frames in folder .*empty"):
        read_video(tmp_path / "empty")
    with pytest.raises(T2VError, match=r"\.mp4, \.mov"):
        write_video(tmp_path / "x.avi", make_clip(2, 8, 8), fps=8)
    with pytest.raises(T2VError, match=r"\(F, H, W, 3\)"):
        write_video(tmp_path / "x.mp4", torch.zeros(2, 8, 8, 4, dtype=torch.uint8), fps=8)


# The shared real videos, as ../shared/assets/README.md lists them (verified with this decoder).
REAL = {
    "car-turn.mp4": (80, 480, 480, Fraction(10)),
    "man-skiing.mp4": (91, 718, 718, Fraction(30000, 1001)),
    "man-surfing.mp4": (72, 656, 656, Fraction(24)),
    "rabbit-watermelon.mp4": (186, 718, 718, Fraction(30)),
    "wolf.mp4": (40, 512, 512, Fraction(20)),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_videos_decode(assets, name):
    frames, fps = read_video(assets / "videos" / name)
    n, h, w, rate = REAL[name]
    assert tuple(frames.shape) == (n, h, w, 3) and frames.dtype == torch.uint8
    assert fps == pytest.approx(float(rate), rel=1e-9)
    # real content, not a blank decode: frames differ over time and use the value range
    assert frames[::8, ::8, ::8].float().std() > 20 and not torch.equal(frames[0], frames[-1])


def test_truncated_real_video_is_an_error_naming_it(assets, tmp_path):
    data = (assets / "videos" / "car-turn.mp4").read_bytes()  # moov first: the index survives the cut
    cut = tmp_path / "car-turn-cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="car-turn-cut.mp4"):
        read_video(cut)


@pytest.mark.parametrize("suffix", [".webm", ".gif"])
def test_same_frames_give_the_same_bytes(tmp_path, suffix):
    # Seeded generation should give the same *file*, not only the same tensor: swscale's RGB->YUV
    # and WebM's random segment id used to make the bytes differ from run to run. H.264 (.mp4) is
    # left out: with one x264 thread and our own YUV conversion, about 1 run in 8 of this file still
    # gave a different packet size for one frame (cause not found yet; open work).
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 12, 48, 64, generator=g) * 2 - 1
    digests = set()
    for i in range(4):
        out = write_video(tmp_path / f"v{i}{suffix}", x, 8)
        digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(digests) == 1
