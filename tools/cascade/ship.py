"""Copy trained cascade stages into the package (t2v/assets/cascade/), with their sampling defaults.

    python tools/cascade/ship.py --interpolate runs/cascade/interpolate/model --upscale runs/cascade/upscale/model \
        [--steps 1] [--noise-level 0.0] [--self-ensemble 4]

Each stage is written through `save_stage` (fp16 weights, loaded back as float32) under a temporary
name and renamed, so a failed copy never leaves a half stage in the package. `--steps` sets the
interpolation and super-resolution stages' default number of DDIM steps (docs/cascade.md: the x0
networks' single step from t = T-1 scored best on held-out clips); `--noise-level` the default
augmentation level of super-resolution; `--self-ensemble` how many flips of the clip it averages.
The temporal decoder stage ships as the default model's `vae/` (tools/default_model/ship.py DECODER),
which the cascade uses when no decoder is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from t2v.pipelines.cascade import CascadeStage, save_stage

OUT = Path(__file__).resolve().parents[2] / "src" / "t2v" / "assets" / "cascade"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interpolate", type=Path, required=True)
    ap.add_argument("--upscale", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=None, help="default DDIM steps of both diffusion stages")
    ap.add_argument("--noise-level", type=float, default=None, help="default augmentation level of super-resolution")
    ap.add_argument("--self-ensemble", type=int, default=None, help="default flips averaged by super-resolution (1, 2, 4, 8)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for task, folder in (("interpolate", a.interpolate), ("upscale", a.upscale)):
        stage = CascadeStage.from_pretrained(folder, task)
        defaults = dict(stage.defaults)
        if a.steps is not None:
            defaults["steps"] = a.steps
        if task == "upscale" and a.noise_level is not None:
            defaults["noise_level"] = a.noise_level
        if task == "upscale" and a.self_ensemble is not None:
            defaults["self_ensemble"] = a.self_ensemble
        save_stage(a.out / task, stage.unet, stage.scheduler_config, defaults, fp16=True)
        print(f"{task}: {a.out / task} {defaults}")


if __name__ == "__main__":
    main()
