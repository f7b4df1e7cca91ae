"""Issue 7 diagnostic: where does the video model put the object at the noisiest timestep?

At t = 999 a v-prediction model's x0 estimate, alpha * x_t - sigma * v, is its guess of the mean clip
of the prompt. In ShapesWorld that mean depends on the direction: an object moving right starts in the
left part of the frame and ends in the right part (the start keeps the whole path on the canvas). This
prints, for "moving right" and "moving left", the brightness-weighted x centroid (px at 64) of the
decoded x0 estimate in frames 0, 4, 8, 12, 15, averaged over 8 noise draws, beside the same centroid of
the data's mean clip (200 rendered clips). Equal rows for right and left: the model ignores the word
where the direction is decided. With --xy it prints the x and y centroids for all four directions
instead (a path with a drift across the motion, e.g. "right" moving up as well, is what makes the
oracle read a perpendicular direction). With --gain it also prints how much of the x0 error knowing the
direction can remove there: the latent clips' mean squared distance to their direction's mean vs to the
mean over all four directions (150 clips per direction), i.e. what the word is worth at t = 999.

    PYTHONPATH=src python tools/default_model/mean_path.py [MODEL_DIR] [--color red] [--shape circle] [--t 999] [--xy] [--gain]
"""
import argparse
import pathlib

import numpy as np
import torch
from diffusers import DDPMScheduler

from t2v.data.shapes import clip_to_video, item_rng, render_clip, sample_params
from t2v.pipelines import TextToVideoPipeline

FRAMES = [0, 4, 8, 12, 15]


def centroid(video: torch.Tensor, axis: str = "x") -> np.ndarray:
    """(C, F, H, W) in [-1, 1] -> (F,) x (or y) centroid of the pixels brighter than their frame's mean."""
    w = (video.amax(0) + 1).clamp(min=0)
    w = (w - w.mean((1, 2), keepdim=True)).clamp(min=0)  # (F, H, W)
    xs = torch.arange(video.shape[-1]).float()
    profile = w.sum(1) if axis == "x" else w.sum(2)  # (F, W) or (F, H)
    return ((profile * xs).sum(-1) / w.sum((1, 2)).clamp(min=1e-8)).numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=None)
    ap.add_argument("--color", default="red")
    ap.add_argument("--shape", default="circle")
    ap.add_argument("--t", type=int, default=999)
    ap.add_argument("--xy", action="store_true")
    ap.add_argument("--gain", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    pipe = TextToVideoPipeline.from_pretrained(a.model)
    alphas = DDPMScheduler.from_pretrained(pathlib.Path(pipe.parts.path) / "scheduler").alphas_cumprod
    alpha, sigma = alphas[a.t].sqrt(), (1 - alphas[a.t]).sqrt()
    n, (h, w) = 8, pipe.default_size
    f = pipe.vae_factor
    print(f"{'x and y centroids' if a.xy else 'x centroid'} (px) of frames {FRAMES}, t = {a.t}, {a.color} {a.shape}")
    for direction in (("right", "left", "up", "down") if a.xy else ("right", "left")):
        text = pipe.encode_text([f"a {a.color} {a.shape} moving {direction}"] * n)
        xt = torch.randn((n, pipe.channels, 16, h // f, w // f), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            v = pipe.unet(xt, torch.full((n,), a.t), text)
            model_mean = pipe.decode_latents(alpha * xt - sigma * v).mean(0)
        clips = []
        for i in range(200):
            p = sample_params(item_rng(77, i), combinations=((a.color, a.shape, direction),))
            clips.append(clip_to_video(render_clip(p.color, p.shape, p.motion, num_frames=16, object_size=p.object_size,
                                                   displacement=p.displacement, start=p.start)))
        data_mean = torch.stack(clips).mean(0)
        for axis in ("x", "y") if a.xy else ("x",):
            print(f"  {direction:5} {axis} model {np.round(centroid(model_mean, axis)[FRAMES], 1)}   "
                  f"data {np.round(centroid(data_mean, axis)[FRAMES], 1)}")
    if a.gain:
        latents = {}
        for direction in ("left", "right", "up", "down"):
            clips = []
            for i in range(150):
                p = sample_params(item_rng(78, i), combinations=((a.color, a.shape, direction),))
                clips.append(clip_to_video(render_clip(p.color, p.shape, p.motion, num_frames=16, object_size=p.object_size,
                                                       displacement=p.displacement, start=p.start)))
            latents[direction] = torch.cat([pipe.encode_video(torch.stack(clips[j:j + 30])) for j in range(0, 150, 30)])
        overall = torch.cat(list(latents.values())).mean(0)
        by_direction = sum((x - x.mean(0)).square().mean().item() for x in latents.values()) / 4
        pooled = sum((x - overall).square().mean().item() for x in latents.values()) / 4
        print(f"x0 mean squared error around the direction's mean {by_direction:.4f}, around the mean over "
              f"directions {pooled:.4f}: knowing the direction removes {100 * (1 - by_direction / pooled):.1f}%")


if __name__ == "__main__":
    main()
