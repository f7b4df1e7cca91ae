"""Issue 7 diagnostic: the ShapesWorld oracle on a subset of combinations under several sampling settings.

Each setting is GUIDANCE,SHIFT,STEPS[,HIGH_GUIDANCE,T_HIGH] (DPM-Solver++, as the shipped model
samples, or `--scheduler`); with the last two, steps at t >= T_HIGH use HIGH_GUIDANCE instead. The subset is every
`--every`-th held-in combination plus the 8 held-out ones; clip j uses seed `--base-seed + j` (1000 by
default, so that settings are not chosen on the seeds of the issue's protocol, `t2v eval shapes`,
which starts at 0). Prints one line of scores per setting and where the wrong directions went;
`--json` also lists each failed clip (prompt, seed, what the oracle read).

    PYTHONPATH=src python tools/default_model/sweep_sampling.py MODEL_DIR --settings 4,4,15 8,4,15 \
        [--seeds 2] [--every 5] [--base-seed 1000] [--image-only] [--json out.json] [--colors green --every 1]
`--temporal-guidance S@T` samples every setting with skip guidance away from the image model (`none`:
off; default: the folder's `t2v_generation`). `--image-only` also runs each setting with every temporal layer skipped (the ablation) on the same
prompts and seeds. `--null-embedding FILE` feeds the unconditional branch that embedding instead of the
empty caption's (`null_embedding.py`).
"""
import argparse
import collections
import json
import time

import torch

from t2v.data.shapes import HELD_IN, HELD_OUT
from t2v.metrics.shapes_eval import evaluate_shapes
from t2v.pipelines import TextToVideoPipeline
from t2v.pipelines.text_to_video import parse_temporal_guidance

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model")
ap.add_argument("--settings", nargs="+", default=["4,4,15"])
ap.add_argument("--seeds", type=int, default=2)
ap.add_argument("--every", type=int, default=5)
ap.add_argument("--base-seed", type=int, default=1000)
ap.add_argument("--image-only", action="store_true", help="also run the image-only ablation")
ap.add_argument("--json", default=None)
ap.add_argument("--scheduler", default="dpm++", help="the sampler of every setting (dpm++, dpm++sde, ...)")
ap.add_argument("--colors", default=None, help="COLOR[,COLOR]: only held-in combinations of these colors, no held-out ones")
ap.add_argument("--temporal-guidance", default=None, help="S@T: skip guidance away from the image model at t >= T in every setting (none = off; default: the model's)")
ap.add_argument("--null-embedding", default=None, help="a (1, L, D) embedding (null_embedding.py) fed for the empty caption")
a = ap.parse_args()
torch.set_num_threads(1)
pipe = TextToVideoPipeline.from_pretrained(None if a.model == "default" else a.model, device="cpu")
skip = None if a.temporal_guidance is None else parse_temporal_guidance(a.temporal_guidance)
if a.null_embedding:
    null, encode_text = torch.load(a.null_embedding)[0], pipe.encode_text

    def encode_with_null(prompts):
        emb = encode_text(prompts)
        emb[[i for i, p in enumerate(prompts) if p == ""]] = null.to(emb.dtype)
        return emb

    pipe.encode_text = encode_with_null
combos = (list(HELD_IN[::a.every]) + list(HELD_OUT) if a.colors is None
          else [c for c in HELD_IN[::a.every] if c[0] in a.colors.split(",")])
results = {}
runs = [(s, False) for s in a.settings] + ([(s, True) for s in a.settings] if a.image_only else [])
for setting, image_only in runs:
    g, shift, steps, *high = setting.split(",")
    t0 = time.time()

    def gen(prompts, seed, g=float(g), shift=float(shift), steps=int(steps), high=high, image_only=image_only):
        kw = {"high_noise_guidance": (float(high[0]), int(high[1]))} if high else {}
        return pipe(prompts, seed=seed, progress=False, guidance_scale=g, timestep_shift=shift,
                    num_inference_steps=steps, scheduler=a.scheduler, image_only=image_only,
                    temporal_guidance=skip, **kw)

    scores, clips = evaluate_shapes(gen, seeds=a.seeds, batch_size=8, combinations=combos, base_seed=a.base_seed)
    wrong = collections.Counter(
        "none" if c.reading.direction is None else ("opposite" if {c.reading.direction, c.target[2]} in
                                                      ({"left", "right"}, {"up", "down"}) else "perpendicular")
        for c in clips if c.reading.direction != c.target[2])
    small = sum(c.reading.displacement < 8 for c in clips if c.reading.direction != c.target[2])
    name = setting + (" image-only" if image_only else "") + (f" temporal {a.temporal_guidance}" if a.temporal_guidance else "")
    failed = [{"prompt": c.prompt, "seed": c.seed, "held_out": c.held_out,
               "read": [c.reading.color, c.reading.shape, c.reading.direction]}
              for c in clips if (c.reading.color, c.reading.shape, c.reading.direction) != tuple(c.target)]
    results[name] = {"scores": scores, "wrong_directions": dict(wrong), "wrong_with_displacement_under_8px": small,
                     "failed": failed}
    s = scores["all"]
    print(f"{'image-only ' if image_only else ''}g={g} shift={shift} steps={steps} high={high} temporal={a.temporal_guidance or 'model'}: n={int(s['n'])} color {s['color']:.3f} shape {s['shape']:.3f} "
          f"direction {s['direction']:.3f} all-three {s['all_three']:.3f} consistency {s['consistency']:.3f} | "
          f"held-out all-three {scores.get('held_out', {}).get('all_three', float('nan')):.3f} | wrong directions {dict(wrong)}, "
          f"{small} of them under 8 px | {time.time() - t0:.0f} s", flush=True)
if a.json:
    with open(a.json, "w") as f:
        json.dump(results, f, indent=1)
