"""A reduced ShapesWorld oracle run (what the 2-core budget allowed): every 11th held-in combination
(8) + the 8 held-out ones, SEEDS seeds, video model and image-only ablation on the same prompts and seeds.

    PYTHONPATH=src python tools/default_model/eval_subset.py [MODEL_DIR] [SEEDS]
The full protocol is `t2v eval shapes --seeds 4` (and `--image-only`).
"""
import json
import sys

import torch

from t2v.data.shapes import HELD_IN, HELD_OUT
from t2v.metrics.shapes_eval import evaluate_shapes
from t2v.pipelines import TextToVideoPipeline

model = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "default" else None
seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
torch.set_num_threads(1)
pipe = TextToVideoPipeline.from_pretrained(model, device="cpu")
combos = list(HELD_IN[::11]) + list(HELD_OUT)
out = {}
for name, image_only in (("video", False), ("image_only", True)):
    gen = lambda prompts, seed: pipe(prompts, seed=seed, progress=False, image_only=image_only)  # noqa: E731
    scores, _ = evaluate_shapes(gen, seeds=seeds, batch_size=8, combinations=combos)
    out[name] = scores
    print(name, json.dumps({g: {k: round(v, 3) for k, v in s.items()} for g, s in scores.items()}), flush=True)
