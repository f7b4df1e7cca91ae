"""The ShapesWorld oracle reads back what the renderer drew (all 96 combinations, 100%), its
consistency is 1 on clean clips and drops on shuffled or corrupted ones, and `score` computes the
accuracies the way a hand count does."""

from __future__ import annotations

import math

import numpy as np
import pytest

from t2v.data.shapes import ALL_COMBINATIONS, HELD_OUT, ShapesWorldDataset, render_clip, sample_params
from t2v.data.video_io import read_video, write_video
from t2v.metrics.shapes_oracle import ClipReading, nearest_color, read_clip, score


def _clips(size: int, num_frames: int, per_combination: int, seed: int = 0):
    """Every combination with random sizes, displacements and starts (the data set's sampler)."""
    for k, combo in enumerate(ALL_COMBINATIONS):
        for j in range(per_combination):
            p = sample_params(np.random.default_rng([seed, k, j]), size=size, combinations=(combo,))
            clip = render_clip(*combo, size=size, num_frames=num_frames, object_size=p.object_size, displacement=p.displacement, start=p.start)
            yield combo, p, clip


@pytest.mark.parametrize("size,num_frames,per", [(64, 16, 2), (32, 8, 1)])
def test_reads_all_96_combinations_exactly(size, num_frames, per):
    readings, targets = [], []
    for combo, p, clip in _clips(size, num_frames, per):
        r = read_clip(clip)
        assert (r.color, r.shape, r.direction) == combo, (combo, p, r)
        # displacement in px at 64 matches what was drawn (whole-pixel rounding at both ends)
        assert abs(r.displacement - p.displacement * 64 / size) <= 64 / size
        assert r.single_object == r.color_steadiness == r.area_steadiness == r.motion_steadiness == 1.0
        readings.append(r)
        targets.append(combo)
    s = score(readings, targets)
    assert s["all"]["n"] == 96 * per and s["held_out"]["n"] == 8 * per and s["held_in"]["n"] == 88 * per
    for group in ("all", "held_in", "held_out"):
        assert {k: s[group][k] for k in ("color", "shape", "direction", "all_three", "consistency")} == dict.fromkeys(
            ("color", "shape", "direction", "all_three", "consistency"), 1.0
        )


def test_reads_the_data_set_items_through_noise_and_h264(tmp_path):
    ds = ShapesWorldDataset(24, seed=11, include_held_out=True)
    rng = np.random.default_rng(0)
    for i in range(len(ds)):
        it = ds[i]
        want = (it["color"], it["shape"], it["motion"])
        clip = np.rint((it["video"].numpy() + 1) * 127.5).astype(np.uint8).transpose(1, 2, 3, 0)
        noisy = np.clip(clip.astype(np.int16) + rng.normal(0, 20, clip.shape).round(), 0, 255).astype(np.uint8)
        r = read_clip(noisy)
        assert (r.color, r.shape, r.direction) == want
        if i < 6:  # generated clips are saved as H.264: chroma subsampling blurs the edges
            back, _ = read_video(write_video(tmp_path / f"{i}.mp4", it["video"], fps=8))
            r = read_clip(back.numpy())
            assert (r.color, r.shape, r.direction) == want and r.consistency == 1.0


def test_shuffled_and_corrupted_frames_lower_consistency():
    clip = render_clip("green", "circle", "right", displacement=32.0)
    clean = read_clip(clip)
    assert clean.consistency == 1.0
    shuffled = read_clip(clip[np.random.default_rng(1).permutation(16)])
    assert shuffled.motion_steadiness < 0.5 and shuffled.consistency < 0.9
    corrupt = clip.copy()
    corrupt[5] = 0  # an empty frame
    corrupt[9, :, :] = 0
    corrupt[9, 2:10, 2:10] = (230, 25, 25)  # a small red square instead of the object
    corrupt[9, 40:60, 40:60] = (230, 25, 25)  # and a second, larger red object
    r = read_clip(corrupt)
    assert r.single_object == 14 / 16  # frames 5 (no object) and 9 (two) fail
    # pairs 4-5 and 5-6 (no object), 8-9 and 9-10 (a red object twice the area, elsewhere) fail
    assert r.color_steadiness == r.area_steadiness == r.motion_steadiness == 11 / 15
    assert r.consistency < clean.consistency
    assert (r.color, r.shape) == ("green", "circle")  # the majority over frames still wins


def test_no_motion_and_no_object():
    still = render_clip("white", "triangle", "up", displacement=4.0)  # below 8 px
    r = read_clip(still)
    assert r.direction is None and r.displacement < 8 and (r.color, r.shape) == ("white", "triangle")
    empty = read_clip(np.zeros((8, 64, 64, 3), np.uint8))
    assert (empty.color, empty.shape, empty.direction, empty.consistency) == (None, None, None, 0.0)


def test_nearest_color_is_the_named_one():
    assert nearest_color([250, 30, 20]) == "red" and nearest_color([255, 150, 10]) == "orange"
    assert nearest_color([235, 235, 250]) == "white"


def test_score_counts_like_a_hand_count():
    def reading(color, shape, direction, consistency=1.0):
        return ClipReading(color, shape, direction, 20.0, consistency, consistency, consistency, consistency)

    targets = [("red", "circle", "left"), ("red", "square", "right"), ("blue", "circle", "up"), ("cyan", "square", "down")]
    readings = [
        reading("red", "circle", "left"),  # all three right
        reading("red", "circle", "right", 0.5),  # shape wrong          (held out: red square right)
        reading("blue", "circle", None),  # direction missing          (held out: blue circle up)
        reading("green", "square", "down", 0.0),  # color wrong
    ]
    s = score(readings, targets)
    assert s["all"] == {"n": 4, "color": 0.75, "shape": 0.75, "direction": 0.75, "all_three": 0.25, "consistency": 0.625}
    assert s["held_out"] == {"n": 2, "color": 1.0, "shape": 0.5, "direction": 0.5, "all_three": 0.0, "consistency": 0.75}
    assert s["held_in"] == {"n": 2, "color": 0.5, "shape": 1.0, "direction": 1.0, "all_three": 0.5, "consistency": 0.5}
    only_in = score(readings[:1], targets[:1])
    assert only_in["held_out"]["n"] == 0 and math.isnan(only_in["held_out"]["color"])
    flags = score(readings, targets, held_out_flags=[True, False, False, False])
    assert flags["held_out"]["n"] == 1 and flags["held_out"]["all_three"] == 1.0
    assert ("red", "square", "right") in HELD_OUT and ("blue", "circle", "up") in HELD_OUT
