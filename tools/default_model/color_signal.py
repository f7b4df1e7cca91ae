"""Issue 7 diagnostic: how far each color moves the model's latent, and the oracle's scores per color.

The first table encodes, for each ShapesWorld color, a 16-frame clip of one object (a 12 px square
moving right) and prints the norm of its latent minus the black clip's latent: how much signal the
object carries into the diffusion model's space. The second, given `t2v eval shapes --json` reports,
prints shape / direction / all-three accuracy per color over the held-in clips.

    PYTHONPATH=src python tools/default_model/color_signal.py [MODEL_DIR] [--reports a.json b.json]
"""
import argparse
import json

import torch

from t2v.data.shapes import COLORS, clip_to_video, render_clip
from t2v.pipelines import TextToVideoPipeline

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model", nargs="?", default=None)
ap.add_argument("--reports", nargs="*", default=[])
a = ap.parse_args()
pipe = TextToVideoPipeline.from_pretrained(a.model)
with torch.no_grad():
    black = pipe.encode_video(-torch.ones(1, 3, 16, 64, 64))
    print("| color | latent signal (norm of latent - black's) |\n|---|---|")
    for color in COLORS:
        video = clip_to_video(render_clip(color, "square", "right", num_frames=16, object_size=12, displacement=20, start=(20, 30)))
        print(f"| {color} | {(pipe.encode_video(video[None]) - black).norm():.1f} |")
clips = [c for r in a.reports for c in json.load(open(r))["clips"] if not c["held_out"]]
if clips:
    print(f"\n| color | held-in clips | shape | direction | all-three |\n|---|---|---|---|---|")
    for color in COLORS:
        cs = [c for c in clips if c["target"][0] == color]
        ok = lambda i, key: sum(c[key] == c["target"][i] for c in cs) / len(cs)  # noqa: E731
        every = sum(c["color"] == color and c["shape"] == c["target"][1] and c["direction"] == c["target"][2] for c in cs)
        print(f"| {color} | {len(cs)} | {ok(1, 'shape'):.1%} | {ok(2, 'direction'):.1%} | {every / len(cs):.1%} |")
