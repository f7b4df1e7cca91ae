"""Frame sampling: indices against closed forms, resize + center crop against Pillow's antialiased
bilinear resize (the filter torch's `antialias=True` reproduces), output range and layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from clips import make_clip
from PIL import Image

from t2v.data.sampling import ClipTooShort, FrameSampling, frame_indices, item_generator, sample_clip
from t2v.errors import T2VError


def test_stride_indices_fixed_start():
    s = FrameSampling(num_frames=5, sample_stride=3, start=2)
    assert frame_indices(20, 30.0, s) == [2, 5, 8, 11, 14]
    assert s.output_fps(30.0) == 10.0


@pytest.mark.parametrize("fps,target", [(30.0, 10.0), (24.0, 10.0), (30000 / 1001, 8.0), (8.0, 12.0)])
def test_target_fps_picks_nearest_frames(fps, target):
    s = FrameSampling(num_frames=6, target_fps=target, start=0)
    # naive reference: the source frame nearest in time to each output time k / target (no ties here)
    ref = [min(range(200), key=lambda i: abs(i / fps - k / target)) for k in range(6)]
    assert frame_indices(200, fps, s) == ref
    assert s.output_fps(fps) == target


def test_random_start_covers_every_offset_and_is_seeded():
    s = FrameSampling(num_frames=4, sample_stride=2)  # span 7
    starts = {frame_indices(10, 8.0, s, item_generator(0, 0, i))[0] for i in range(200)}
    assert starts == {0, 1, 2, 3}  # all offsets that fit, none that do not
    a = frame_indices(50, 8.0, s, item_generator(3, 1, 7))
    b = frame_indices(50, 8.0, s, item_generator(3, 1, 7))
    assert a == b


def test_too_short_is_a_t2v_error_subclass():
    s = FrameSampling(num_frames=8, sample_stride=2)  # needs 15 frames
    assert frame_indices(15, 8.0, s, item_generator(0, 0, 0))[-1] <= 14
    with pytest.raises(ClipTooShort, match="14 frames; 8 frames every 2 need 15"):
        frame_indices(14, 8.0, s)
    with pytest.raises(ClipTooShort):
        frame_indices(20, 8.0, FrameSampling(num_frames=8, sample_stride=2, start=6))
    assert issubclass(ClipTooShort, T2VError)


def _pil_reference(frame: np.ndarray, h: int, w: int) -> np.ndarray:
    """Resize the short side with Pillow's (antialiased) bilinear filter per channel in float, then center-crop."""
    H, W = frame.shape[:2]
    scale = max(h / H, w / W)
    nh, nw = max(h, round(H * scale)), max(w, round(W * scale))
    chans = [np.asarray(Image.fromarray(frame[..., c].astype(np.float32), mode="F").resize((nw, nh), Image.BILINEAR)) for c in range(3)]
    out = np.stack(chans, -1)
    top, left = (nh - h) // 2, (nw - w) // 2
    return out[top : top + h, left : left + w]


@pytest.mark.parametrize("src,dst", [((48, 64), (24, 24)), ((48, 64), (32, 40)), ((37, 51), (16, 16)), ((20, 20), (40, 40))])
def test_resize_center_crop_matches_pillow(src, dst):
    clip = make_clip(6, *src)
    s = FrameSampling(num_frames=3, sample_stride=2, start=1, height=dst[0], width=dst[1])
    out = sample_clip(clip, 8.0, s)
    assert out.shape == (3, 3, *dst) and out.dtype == torch.float32
    for k, f in enumerate([1, 3, 5]):
        ref = _pil_reference(clip[f].numpy().astype(np.float32), *dst) / 127.5 - 1
        got = out[:, k].permute(1, 2, 0).numpy()
        assert np.abs(got - ref).max() < 1.5 / 127.5  # within 1.5 levels of 255


def test_same_size_is_exact_and_range_maps_to_minus_one_one():
    clip = make_clip(4, 16, 16)
    clip[0, 0, 0] = torch.tensor([0, 255, 128], dtype=torch.uint8)
    out = sample_clip(clip, 8.0, FrameSampling(num_frames=4, height=16, width=16, start=0))
    assert torch.equal(((out + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0), clip)
    assert out[:, 0, 0, 0].tolist() == [-1.0, 1.0, pytest.approx(128 / 127.5 - 1, abs=1e-6)]


def test_config_errors_are_t2v_errors():
    with pytest.raises(T2VError):
        FrameSampling(num_frames=0)
    with pytest.raises(T2VError, match="not both"):
        FrameSampling(sample_stride=2, target_fps=8)
    with pytest.raises(T2VError, match="start"):
        FrameSampling(start="middle")
    with pytest.raises(T2VError, match="unknown"):
        frame_indices(10, 0.0, FrameSampling(num_frames=2, target_fps=4))


def _ramp_clip(frames: int = 3, h: int = 40, w: int = 60) -> torch.Tensor:
    """uint8 (F, H, W, 3): red = column index, green = row index, blue = frame index."""
    x = torch.zeros(frames, h, w, 3, dtype=torch.uint8)
    x[..., 0] = torch.arange(w, dtype=torch.uint8)[None, None, :]
    x[..., 1] = torch.arange(h, dtype=torch.uint8)[None, :, None]
    x[..., 2] = torch.arange(frames, dtype=torch.uint8)[:, None, None]
    return x


def test_random_crop_takes_one_window_of_the_drawn_size_for_every_frame():
    clip = _ramp_clip()  # 40 x 60; the largest square window is 40 x 40
    s = FrameSampling(num_frames=3, height=8, width=8, start=0, crop_scale=(0.5, 0.5))
    for i in range(20):
        out = sample_clip(clip, 8.0, s, item_generator(0, 0, i))  # (3, F, 8, 8) in [-1, 1]
        cols = (out[0] + 1) * 127.5  # red channel = source column
        rows = (out[1] + 1) * 127.5
        # a 20 x 20 window resized to 8 x 8: columns span ~19 source pixels, inside the frame
        assert 16 <= float(cols[0, 0, -1] - cols[0, 0, 0]) <= 20 and float(cols.min()) >= 0 and float(cols.max()) <= 59
        assert 16 <= float(rows[0, -1, 0] - rows[0, 0, 0]) <= 20 and float(rows.max()) <= 39
        assert torch.equal(cols[0], cols[-1]) and torch.equal(rows[0], rows[-1])  # the same window for all frames
    starts = {round(float(((sample_clip(clip, 8.0, s, item_generator(0, 0, i))[0] + 1) * 127.5)[0, 0, 0])) for i in range(40)}
    assert len(starts) > 10  # the position is drawn, not fixed
    a, b = (sample_clip(clip, 8.0, s, item_generator(5, 2, 3)) for _ in range(2))
    assert torch.equal(a, b)  # seeded by the item's generator


def test_full_crop_scale_and_no_flip_match_the_plain_sampling():
    clip = _ramp_clip(h=32, w=32)
    plain = sample_clip(clip, 8.0, FrameSampling(num_frames=3, height=16, width=16, start=0))
    full = sample_clip(clip, 8.0, FrameSampling(num_frames=3, height=16, width=16, start=0, crop_scale=(1.0, 1.0)), item_generator(0, 0, 0))
    assert torch.equal(plain, full)


def test_hflip_mirrors_about_half_the_clips():
    clip = _ramp_clip(h=16, w=16)
    s = FrameSampling(num_frames=3, height=16, width=16, start=0, hflip=True)
    plain = sample_clip(clip, 8.0, FrameSampling(num_frames=3, height=16, width=16, start=0))
    outs = [sample_clip(clip, 8.0, s, item_generator(0, 0, i)) for i in range(100)]
    flipped = sum(torch.equal(o, plain.flip(-1)) for o in outs)
    assert sum(torch.equal(o, plain) for o in outs) + flipped == 100
    assert 30 <= flipped <= 70


def test_camera_pan_moves_the_window_along_a_straight_line_inside_the_frame():
    clip = _ramp_clip(frames=9, h=100, w=120)  # red = source column, green = source row
    s = FrameSampling(num_frames=9, height=20, width=20, start=0, crop_scale=(0.5, 0.5), camera_pan=0.6)
    quadrants, travels = set(), []
    for i in range(60):
        out = (sample_clip(clip, 8.0, s, item_generator(0, 0, i)) + 1) * 127.5  # (3, F, 20, 20)
        assert float(out[0].min()) >= 0 and float(out[0].max()) <= 119 and float(out[1].max()) <= 99
        # the same 50 x 50 window shifted: each frame is the first plus a whole number of source pixels
        dx = (out[0] - out[0, :1]).mean(dim=(1, 2))
        dy = (out[1] - out[1, :1]).mean(dim=(1, 2))
        assert torch.allclose(dx, dx.round(), atol=1e-3) and torch.allclose(dy, dy.round(), atol=1e-3)
        k = torch.arange(9) / 8
        assert float((dx - k * dx[-1]).abs().max()) <= 1.0 and float((dy - k * dy[-1]).abs().max()) <= 1.0  # a line, even steps
        travel = float(torch.hypot(dx[-1], dy[-1]))
        assert travel <= 0.6 * 50 + 1.5
        travels.append(travel)
        if travel > 3:
            quadrants.add((bool(dx[-1] > 0), bool(dy[-1] > 0)))
    assert len(quadrants) == 4 and sum(t > 3 for t in travels) > 30  # every direction, mostly a real pan
    a, b = (sample_clip(clip, 8.0, s, item_generator(5, 2, 3)) for _ in range(2))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs,fragment", [({"camera_pan": 0.2}, "set crop_scale"),
                                             ({"camera_pan": 0.2, "crop_scale": (1.0, 1.0)}, "set crop_scale"),
                                             ({"camera_pan": 1.5, "crop_scale": (0.5, 0.8)}, "camera_pan (data.camera_pan) must be in (0, 1]")])
def test_bad_camera_pan_is_a_one_line_error(kwargs, fragment):
    with pytest.raises(T2VError) as e:
        FrameSampling(**kwargs)
    assert fragment in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("scale", [(0.0, 1.0), (0.8, 0.5), (0.5, 1.2), (0.5,)])
def test_bad_crop_scale_is_a_one_line_error(scale):
    with pytest.raises(T2VError, match=r"crop_scale \(data.random_crop\) must be"):
        FrameSampling(crop_scale=scale)
