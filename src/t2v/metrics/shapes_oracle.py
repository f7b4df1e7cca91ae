"""The ShapesWorld oracle: read color, shape and motion back out of a clip, and score a set of clips.

Rules (shapes-world.md): foreground = pixels whose largest channel is above 60; per frame the
largest connected foreground component is the object; its median color goes to the nearest named
color, its centroid is its position, its fill ratio inside its bounding box gives the shape. Per
clip, color and shape are majorities over frames; the direction is the sign of the centroid's
first-to-last displacement along the axis that moved most, counted only from 8 px (at 64).

Hand-written: no library reads this synthetic world; scipy.ndimage does the connected components.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from t2v.data.shapes import CANVAS, COLORS, HELD_OUT, SHAPE_FILL

FOREGROUND = 60  # a pixel is foreground when its largest channel is above this (0-255)
MIN_DISPLACEMENT_64 = 8.0  # px at 64: less is "no direction"
MIN_OBJECT_AREA_64 = 8.0  # px at 64: smaller components are specks, not objects
AREA_TOLERANCE = 0.2  # consecutive frames whose object areas differ by less than 20% are "steady"
_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity
_COLOR_NAMES = list(COLORS)
_COLOR_TABLE = np.array([COLORS[c] for c in _COLOR_NAMES], dtype=np.float64)  # (8, 3)


@dataclass(frozen=True)
class FrameReading:
    """The object in one frame (None fields when the frame has no object)."""

    objects: int  # connected foreground components of at least MIN_OBJECT_AREA
    color: str | None
    shape: str | None
    centroid: tuple[float, float] | None  # (x, y), canvas px
    area: int


@dataclass(frozen=True)
class ClipReading:
    """What the oracle reads from one clip.

    `displacement`: first-to-last centroid displacement along the axis that moved most, px scaled
    to a 64 canvas (absolute value). Steadiness values are shares in [0, 1]:
    `single_object`: frames with exactly one object; `color_steadiness`: consecutive frame pairs
    whose object keeps its named color; `area_steadiness`: pairs whose area changes by less than
    20%; `motion_steadiness`: steps whose centroid move is within 2 px (at 64) or half a step of the
    clip's mean step (shuffled or jumping frames fail it).
    """

    color: str | None
    shape: str | None
    direction: str | None
    displacement: float
    single_object: float
    color_steadiness: float
    area_steadiness: float
    motion_steadiness: float

    @property
    def consistency(self) -> float:
        """Temporal consistency in [0, 1]: the mean of the four steadiness shares."""
        return (self.single_object + self.color_steadiness + self.area_steadiness + self.motion_steadiness) / 4


def nearest_color(rgb: np.ndarray) -> str:
    """The named ShapesWorld color nearest (Euclidean RGB) to `rgb`."""
    return _COLOR_NAMES[int(np.argmin(((_COLOR_TABLE - np.asarray(rgb, dtype=np.float64)) ** 2).sum(1)))]


def nearest_shape(fill_ratio: float) -> str:
    """The shape whose fill ratio (area / bounding-box area) is nearest."""
    return min(SHAPE_FILL, key=lambda s: abs(SHAPE_FILL[s] - fill_ratio))


def read_frame(frame: np.ndarray, min_area: float = MIN_OBJECT_AREA_64) -> FrameReading:
    """Read one uint8 `(H, W, 3)` frame."""
    fg = frame.max(axis=-1) > FOREGROUND  # (H, W)
    labels, n = ndimage.label(fg, structure=_EIGHT)
    if n == 0:
        return FrameReading(0, None, None, None, 0)
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]  # (n,)
    objects = int((areas >= min_area).sum())
    k = int(np.argmax(areas))
    if areas[k] < min_area:
        return FrameReading(0, None, None, None, 0)
    ys, xs = np.nonzero(labels == k + 1)
    color = nearest_color(np.median(frame[ys, xs].astype(np.float64), axis=0))
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    shape = nearest_shape(len(ys) / box)
    return FrameReading(objects, color, shape, (float(xs.mean() + 0.5), float(ys.mean() + 0.5)), int(len(ys)))


def _majority(values: list[str]) -> str | None:
    if not values:
        return None
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)  # ties: the first seen


def _share(flags: list[bool]) -> float:
    return float(np.mean(flags)) if flags else 0.0


def read_clip(frames: np.ndarray) -> ClipReading:
    """Read a uint8 `(F, H, W, 3)` clip (numpy or torch); positions are scaled to a 64 canvas."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"read_clip takes uint8 (F, H, W, 3) frames; got {frames.dtype} {frames.shape}")
    num_frames, h, w, _ = frames.shape
    scale = CANVAS / max(h, w)  # px -> px at 64
    min_area = MIN_OBJECT_AREA_64 / scale**2
    readings = [read_frame(f, min_area) for f in frames]
    seen = [r for r in readings if r.color is not None]

    color = _majority([r.color for r in seen])
    shape = _majority([r.shape for r in seen])
    direction, displacement = None, 0.0
    if len(seen) >= 2:
        (x0, y0), (x1, y1) = seen[0].centroid, seen[-1].centroid
        dx, dy = (x1 - x0) * scale, (y1 - y0) * scale
        displacement = max(abs(dx), abs(dy))
        if displacement >= MIN_DISPLACEMENT_64:
            direction = ("right" if dx > 0 else "left") if abs(dx) >= abs(dy) else ("down" if dy > 0 else "up")

    pairs = list(zip(readings[:-1], readings[1:]))
    if num_frames == 1:
        color_steady = area_steady = motion_steady = 1.0 if seen else 0.0
    else:
        color_steady = _share([a.color is not None and a.color == b.color for a, b in pairs])
        area_steady = _share(
            [a.area > 0 and b.area > 0 and abs(a.area - b.area) < AREA_TOLERANCE * max(a.area, b.area) for a, b in pairs]
        )
        motion_steady = _share(_smooth_steps(readings, scale))
    return ClipReading(
        color=color,
        shape=shape,
        direction=direction,
        displacement=float(displacement),
        single_object=_share([r.objects == 1 for r in readings]),
        color_steadiness=color_steady,
        area_steadiness=area_steady,
        motion_steadiness=motion_steady,
    )


def _smooth_steps(readings: list[FrameReading], scale: float) -> list[bool]:
    """Per consecutive pair: does the centroid step stay near the clip's mean step? (False without an object.)"""
    seen = [i for i, r in enumerate(readings) if r.centroid is not None]
    if len(seen) < 2:
        return [False] * (len(readings) - 1)
    first, last = readings[seen[0]].centroid, readings[seen[-1]].centroid
    span = seen[-1] - seen[0]
    mean = np.subtract(last, first) * scale / span  # (2,) px at 64 per frame
    flags = []
    for a, b in zip(readings[:-1], readings[1:]):
        if a.centroid is None or b.centroid is None:
            flags.append(False)
            continue
        step = np.subtract(b.centroid, a.centroid) * scale
        flags.append(bool(np.linalg.norm(step - mean) <= max(2.0, 0.5 * np.linalg.norm(mean))))
    return flags


def score(
    readings: list[ClipReading],
    targets: list[tuple[str, str, str]],
    held_out_flags: list[bool] | None = None,
) -> dict[str, dict[str, float]]:
    """Accuracies and consistency over clips, for "all", "held_in" and "held_out" clips.

    `targets`: the (color, shape, motion) each clip was asked for; `held_out_flags` default to
    membership in `HELD_OUT`. Each group maps to {n, color, shape, direction, all_three,
    consistency}; a group with no clip has n = 0 and NaN values.
    """
    if len(readings) != len(targets):
        raise ValueError(f"{len(readings)} readings but {len(targets)} targets")
    if held_out_flags is None:
        held_out_flags = [tuple(t) in HELD_OUT for t in targets]
    if len(held_out_flags) != len(targets):
        raise ValueError(f"{len(held_out_flags)} held-out flags but {len(targets)} targets")
    rows = []
    for r, (color, shape, motion) in zip(readings, targets):
        c, s, d = r.color == color, r.shape == shape, r.direction == motion
        rows.append((c, s, d, c and s and d, r.consistency))
    out = {}
    for group, keep in (("all", lambda f: True), ("held_in", lambda f: not f), ("held_out", lambda f: f)):
        sel = np.array([row for row, f in zip(rows, held_out_flags) if keep(f)], dtype=np.float64).reshape(-1, 5)
        means = sel.mean(0) if len(sel) else [math.nan] * 5
        out[group] = {"n": len(sel), **{k: float(v) for k, v in zip(("color", "shape", "direction", "all_three", "consistency"), means)}}
    return out
