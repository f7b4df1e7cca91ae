"""Issue 7 diagnostic: how far each color moves the model's latent, and the oracle's scores per color.

The first table encodes, for each ShapesWorld color, a 16-frame clip of one object (a 12 px square
moving right) and prints the norm of its latent minus the black clip's latent: how much signal the
object carries into the diffusion model's space. The second prints, per color, the latent of one cell
well inside a 24 px square minus black's (its 4 channels, in units of the latent's std over ShapesWorld
frames, i.e. after the scaling factor) and, under it, how the colors' second-moment matrix splits over
its eigenvalues: one share near 100% means the autoencoder codes color as a magnitude along a single
direction, the faintest color nearest black and so nearest the noise (session 13: green). The third,
given `t2v eval shapes --json` reports, prints shape / direction / all-three accuracy per color over
the held-in clips. `--vae DIR` measures a bare diffusers AutoencoderKL folder instead of a model's
(the second table only; e.g. an autoencoder candidate before any diffusion model is trained on it).

    PYTHONPATH=src python tools/default_model/color_signal.py [MODEL_DIR | --vae VAE_DIR] [--reports a.json b.json]
"""
import argparse
import json

import torch

from t2v.data.shapes import COLORS, clip_to_video, render_clip
from t2v.pipelines import TextToVideoPipeline

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model", nargs="?", default=None)
ap.add_argument("--reports", nargs="*", default=[])
ap.add_argument("--vae", default=None, help="a diffusers AutoencoderKL folder to measure instead of a model's")
a = ap.parse_args()


def color_cells(encode) -> dict[str, torch.Tensor]:
    """color -> (C,): the latent of cell (7, 7), inside a 24 px square at (20, 20), minus the black frame's.
    `encode` maps frames (B, 3, 64, 64) in [-1, 1] to latents (B, C, 16, 16) in units of the latent std."""
    frames = [clip_to_video(render_clip(c, "square", "right", num_frames=1, object_size=24, displacement=0, start=(20, 20)))[:, 0]
              for c in COLORS]
    z = encode(torch.stack([-torch.ones(3, 64, 64)] + frames))
    return {c: z[i + 1, :, 7, 7] - z[0, :, 7, 7] for i, c in enumerate(COLORS)}


def print_cells(cells: dict[str, torch.Tensor]) -> None:
    print("\n| color | latent cell - black's (per channel, latent std units) | norm |\n|---|---|---|")
    for c, v in cells.items():
        print(f"| {c} | {' '.join(f'{x:+.2f}' for x in v.tolist())} | {v.norm():.2f} |")
    m = torch.stack(list(cells.values()))
    ev = torch.linalg.eigvalsh(m.T @ m).flip(0)  # descending
    print("colors' second moment, eigenvalue shares:", " ".join(f"{x:.4%}" for x in (ev / ev.sum()).tolist()))


if a.vae is not None:
    from diffusers import AutoencoderKL

    from t2v.data.shapes import item_rng, sample_params

    vae = AutoencoderKL.from_pretrained(a.vae).eval()
    with torch.no_grad():
        ref = []
        for i in range(64):  # the latent std over ShapesWorld frames (what a scaling factor is set from)
            p = sample_params(item_rng(5, i))
            ref.append(clip_to_video(render_clip(p.color, p.shape, p.motion, num_frames=16, object_size=p.object_size,
                                                 displacement=p.displacement, start=p.start))[:, i % 16])
        std = vae.encode(torch.stack(ref)).latent_dist.mode().std()
        print_cells(color_cells(lambda x: vae.encode(x).latent_dist.mode() / std))
    raise SystemExit(0)
pipe = TextToVideoPipeline.from_pretrained(a.model)
with torch.no_grad():
    black = pipe.encode_video(-torch.ones(1, 3, 16, 64, 64))
    print("| color | latent signal (norm of latent - black's) |\n|---|---|")
    for color in COLORS:
        video = clip_to_video(render_clip(color, "square", "right", num_frames=16, object_size=12, displacement=20, start=(20, 30)))
        print(f"| {color} | {(pipe.encode_video(video[None]) - black).norm():.1f} |")
    print_cells(color_cells(lambda x: pipe.encode_video(x[:, :, None])[:, :, 0]))
clips = [c for r in a.reports for c in json.load(open(r))["clips"] if not c["held_out"]]
if clips:
    print(f"\n| color | held-in clips | shape | direction | all-three |\n|---|---|---|---|---|")
    for color in COLORS:
        cs = [c for c in clips if c["target"][0] == color]
        ok = lambda i, key: sum(c[key] == c["target"][i] for c in cs) / len(cs)  # noqa: E731
        every = sum(c["color"] == color and c["shape"] == c["target"][1] and c["direction"] == c["target"][2] for c in cs)
        print(f"| {color} | {len(cs)} | {ok(1, 'shape'):.1%} | {ok(2, 'direction'):.1%} | {every / len(cs):.1%} |")
