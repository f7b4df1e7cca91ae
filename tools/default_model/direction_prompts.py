"""Issue 7 diagnostic: does a model move the object the way the prompt says? Eight prompts (a red circle
and a green square, each moving left / right / up / down), N seeds each, read back by the ShapesWorld
oracle; prints every clip's direction and displacement and the count of right directions.

    PYTHONPATH=src python tools/default_model/direction_prompts.py MODEL_DIR [--seeds 2] [--guidance 4]
        [--shift 4] [--steps 15]

Seeds are 0, 100, 200, ... (one batch of 8 prompts per seed); DPM-Solver++ as the shipped model samples.
"""
import argparse
import collections

import torch

from t2v.metrics.shapes_eval import to_uint8_frames
from t2v.metrics.shapes_oracle import read_clip
from t2v.pipelines import TextToVideoPipeline

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model")
ap.add_argument("--seeds", type=int, default=2)
ap.add_argument("--guidance", type=float, default=4.0)
ap.add_argument("--shift", type=float, default=4.0)
ap.add_argument("--steps", type=int, default=15)
a = ap.parse_args()
torch.set_num_threads(1)
pipe = TextToVideoPipeline.from_pretrained(a.model, device="cpu")
prompts = [f"a {c} {s} moving {m}" for c, s in (("red", "circle"), ("green", "square")) for m in ("left", "right", "up", "down")]
right = collections.Counter()
for k in range(a.seeds):
    video = pipe(prompts, seed=100 * k, progress=False, guidance_scale=a.guidance, timestep_shift=a.shift,
                 num_inference_steps=a.steps, scheduler="dpm++")
    for prompt, clip in zip(prompts, video):
        r = read_clip(to_uint8_frames(clip))
        right[r.direction == prompt.split()[-1]] += 1
        print(f"seed {100 * k}: {prompt} -> {r.direction} ({r.displacement:.1f} px)", flush=True)
print(f"direction right: {right[True]} / {sum(right.values())}")
