"""Print the round-trip error of every writer/reader pair (the bounds in test_video_io.py come from here).

    PYTHONPATH=src:tests/data python tests/data/measure_codecs.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from clips import make_clip, psnr

from t2v.data.shapes import render_clip
from t2v.data.video_io import read_video, write_video


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'clip':>18} {'format':>7} {'PSNR dB':>8} {'max err':>8} {'fps':>8}")
        clips = {f"{h}x{w} seed {s}": make_clip(f, h, w, s) for (f, h, w) in [(12, 48, 64), (9, 37, 51), (16, 64, 64)] for s in range(3)}
        clips["shapes 64"] = torch.from_numpy(render_clip("red", "circle", "right"))
        for name, clip in clips.items():
            _, h, w, _ = clip.shape
            for suffix in (".mp4", ".mov", ".webm", ".gif", ""):
                back, fps = read_video(write_video(Path(tmp) / f"c{suffix}", clip, fps=12.5), folder_fps=12.5)
                back = back[:, :h, :w]
                err = int((back.int() - clip.int()).abs().max())
                print(f"{name:>18} {suffix or 'png':>7} {psnr(back, clip):8.2f} {err:8d} {fps:8.3f}")


if __name__ == "__main__":
    main()
