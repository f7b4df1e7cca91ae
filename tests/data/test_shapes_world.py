"""ShapesWorld against its spec (shapes-world.md): constants, determinism per seed, held-out
combinations never emitted by default, object always whole inside the canvas, geometry and captions."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
import torch

from t2v.data.shapes import (
    ALL_COMBINATIONS,
    COLORS,
    HELD_IN,
    HELD_OUT,
    MOTIONS,
    PHRASINGS,
    SHAPE_FILL,
    SHAPES,
    ShapesWorldDataset,
    caption,
    render_clip,
    shape_mask,
    trajectory,
)
from t2v.errors import T2VError

# The spec's tables, typed in from shapes-world.md.
SPEC_COLORS = {
    "red": (230, 25, 25), "green": (25, 200, 25), "blue": (40, 80, 255), "yellow": (240, 220, 20),
    "magenta": (220, 40, 220), "cyan": (30, 220, 220), "white": (240, 240, 240), "orange": (255, 140, 0),
}
SPEC_HELD_OUT = {
    ("yellow", "triangle", "left"), ("blue", "circle", "up"), ("white", "square", "down"), ("orange", "circle", "right"),
    ("cyan", "triangle", "down"), ("magenta", "square", "left"), ("green", "triangle", "up"), ("red", "square", "right"),
}


def test_constants_follow_the_spec():
    assert COLORS == SPEC_COLORS
    assert set(SHAPES) == {"circle", "square", "triangle"} and set(MOTIONS) == {"left", "right", "up", "down"}
    assert len(ALL_COMBINATIONS) == len(set(ALL_COMBINATIONS)) == 96
    assert set(HELD_OUT) == SPEC_HELD_OUT and len(HELD_OUT) == 8
    assert set(HELD_IN) == set(ALL_COMBINATIONS) - SPEC_HELD_OUT and len(HELD_IN) == 88


def test_deterministic_per_seed_byte_for_byte():
    a, b = ShapesWorldDataset(50, seed=7), ShapesWorldDataset(50, seed=7)
    for i in (0, 1, 13, 49):
        x, y = a[i], b[i]
        assert x["video"].numpy().tobytes() == y["video"].numpy().tobytes()
        assert (x["caption"], x["color"], x["shape"], x["motion"]) == (y["caption"], y["color"], y["shape"], y["motion"])
    # another seed gives other clips
    other = ShapesWorldDataset(50, seed=8)
    assert sum(torch.equal(a[i]["video"], other[i]["video"]) for i in range(10)) == 0


def test_held_out_never_emitted_by_default_and_every_held_in_appears():
    ds = ShapesWorldDataset(3000, seed=0)
    seen = Counter((p.color, p.shape, p.motion) for p in map(ds.params, range(len(ds))))
    assert not set(seen) & SPEC_HELD_OUT
    assert set(seen) == set(HELD_IN)  # all 88, about 34 each
    assert min(seen.values()) > 10
    only = ShapesWorldDataset(400, seed=1, only_held_out=True)
    assert {(p.color, p.shape, p.motion) for p in map(only.params, range(400))} == SPEC_HELD_OUT
    every = ShapesWorldDataset(3000, seed=2, include_held_out=True)
    assert {(p.color, p.shape, p.motion) for p in map(every.params, range(3000))} == set(ALL_COMBINATIONS)
    assert all(it["held_out"] for it in (only[0], only[1]))


@pytest.mark.parametrize("size,num_frames", [(64, 16), (32, 8), (48, 24)])
def test_object_whole_inside_the_canvas_in_every_frame(size, num_frames):
    ds = ShapesWorldDataset(150, seed=3, size=size, num_frames=num_frames, include_held_out=True)
    for i in range(len(ds)):
        p = ds.params(i)
        clip = np.rint((ds[i]["video"].numpy() + 1) * 127.5).astype(np.uint8).transpose(1, 2, 3, 0)  # (F, H, W, 3)
        assert clip.shape == (num_frames, size, size, 3)
        full = int(shape_mask(p.shape, p.object_size).sum())
        fg = (clip.max(-1) > 0).reshape(num_frames, -1).sum(1)
        assert (fg == full).all()  # a cut-off object would lose pixels
        packed = np.unique(clip.reshape(-1, 3).astype(np.int64) @ np.array([1 << 16, 1 << 8, 1]))  # RGB as one int
        r, g, b = COLORS[p.color]
        assert packed.tolist() == [0, (r << 16) + (g << 8) + b]
        corners = trajectory(p.motion, num_frames, p.displacement, p.start)
        assert corners.min() >= 0 and corners.max() + p.object_size <= size


def test_sizes_displacements_and_constant_velocity():
    ds = ShapesWorldDataset(300, seed=4, include_held_out=True)
    sizes, moves = [], []
    for i in range(len(ds)):
        p = ds.params(i)
        sizes.append(p.object_size)
        moves.append(p.displacement)
        c = trajectory(p.motion, 16, p.displacement, p.start).astype(float)  # (F, 2)
        ideal = np.asarray(p.start) + np.outer(np.arange(16) / 15, {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[p.motion]) * p.displacement
        assert np.abs(c - ideal).max() <= 0.5  # constant velocity, rounded to whole pixels
    assert min(sizes) == 14 and max(sizes) == 20
    assert 20 <= min(moves) and max(moves) <= 36 and max(moves) - min(moves) > 12
    # at another canvas, sizes and displacements scale with it
    small = [ShapesWorldDataset(200, seed=4, size=32).params(i) for i in range(200)]
    assert {p.object_size for p in small} <= set(range(7, 11))
    assert all(10 <= p.displacement <= 18 for p in small)


def test_shape_masks_fill_ratio():
    for s in range(14, 21):
        for shape in SHAPES:
            m = shape_mask(shape, s)
            ys, xs = np.nonzero(m)
            ratio = m.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
            assert abs(ratio - SHAPE_FILL[shape]) < 0.045, (shape, s, ratio)
        tri = shape_mask("triangle", s)
        assert tri[-1].all() and tri.sum(1).tolist() == sorted(tri.sum(1).tolist())  # base at the bottom, apex up
        assert np.array_equal(tri, tri[:, ::-1])  # isosceles: mirror-symmetric


def test_captions_name_color_shape_and_direction():
    words = set(MOTIONS)
    seen_phrasings = set()
    ds = ShapesWorldDataset(200, seed=5, include_held_out=True)
    for i in range(len(ds)):
        it = ds[i] if i < 20 else None
        p = ds.params(i)
        text = caption(p.color, p.shape, p.motion, p.phrasing)
        tokens = re.findall(r"[a-z]+", text)
        assert p.color in tokens and p.shape in tokens
        assert [t for t in tokens if t in words] == [p.motion]
        assert not (set(tokens) & (set(COLORS) - {p.color}))
        seen_phrasings.add(p.phrasing)
        if it is not None:
            assert it["caption"] == text and it["source"] == f"shapes:seed=5:index={i}"
    assert seen_phrasings == set(range(len(PHRASINGS))) and len(PHRASINGS) >= 4
    assert caption("orange", "circle", "right") == "an orange circle moving right"
    assert caption("red", "circle", "right", 1) == "a red circle is moving to the right"


def test_images_are_single_frames_of_the_clip():
    clips, images = ShapesWorldDataset(10, seed=6), ShapesWorldDataset(10, seed=6, images=True)
    for i in range(10):
        img, clip = images[i], clips[i]
        assert img["video"].shape == (3, 1, 64, 64) and img["caption"] == clip["caption"]
        assert any(torch.equal(img["video"][:, 0], clip["video"][:, f]) for f in range(16))


def test_render_clip_rejects_bad_requests():
    with pytest.raises(T2VError, match="unknown ShapesWorld color 'purple'"):
        render_clip("purple", "circle", "up")
    with pytest.raises(T2VError, match="leaves the 64x64 canvas"):
        render_clip("red", "square", "right", object_size=20, displacement=30, start=(20, 0))
    default = render_clip("red", "circle", "right")
    assert default.shape == (16, 64, 64, 3) and default.dtype == np.uint8
    with pytest.raises(T2VError):
        ShapesWorldDataset(0)
    with pytest.raises(T2VError):
        ShapesWorldDataset(4, seed=-1)


def test_batches_are_b_c_f_h_w():
    from torch.utils.data import DataLoader

    batch = next(iter(DataLoader(ShapesWorldDataset(6, seed=0, size=32, num_frames=8), batch_size=3)))
    assert batch["video"].shape == (3, 3, 8, 32, 32) and len(batch["caption"]) == 3
    assert batch["video"].min() == -1.0 and batch["video"].max() <= 1.0
