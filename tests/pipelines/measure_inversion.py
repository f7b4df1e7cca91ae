"""Print the DDIM inversion round-trip error of the tiny tuned model against the number of steps.

    PYTHONPATH=src:tests:tests/pipelines python tests/pipelines/measure_inversion.py

Invert the generated blob clip (PNG frames; 4 frames, 16x16, stride 2) with the empty prompt and no guidance,
sample back with DDIM and the same steps, and compare the latents (unit variance) with the clip's;
also sample from fresh noise (seed 0) as the baseline. Numbers quoted in test_tune_a_video.py and
docs/pipelines.md come from this script.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from pipeline_helpers import make_record, moving_blob, perturb_
from sd_fixture import make_tiny_sd
from t2v.data.sampling import FrameSampling
from t2v.data.video_io import write_video
from t2v.models import inflate, load_unet2d
from t2v.pipelines import tune_a_video as tav


STEPS = (5, 10, 25, 50, 100, 200, 500)


def main() -> None:
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    sd = make_tiny_sd(tmp / "sd")
    clip = write_video(tmp / "blob_frames", moving_blob(), 8)  # PNG frames: exact, unlike H.264
    sampling = FrameSampling(num_frames=4, height=16, width=16, sample_stride=2, start=0)
    unet = inflate(load_unet2d(sd), "tune-a-video")
    perturb_(unet.trainable_parameters())
    pipe, record = tav.load_tuned(tav.save_tuned(tmp / "t", unet, record=make_record(sd, clip, sampling)))
    z0 = pipe.encode_video(tav.source_clip(record)[0][None])
    kw = dict(guidance_scale=1.0, scheduler="ddim", progress=False, output_latents=True, allow_empty_prompt=True)
    print(f"latent std {z0.std().item():.3f}")
    print("steps  round-trip RMSE  fresh-noise RMSE  ratio")
    for steps in STEPS:
        noise = tav.invert_source(pipe, record, steps, cache=False, progress=False)
        back = pipe([""], latents=noise, num_inference_steps=steps, **kw)
        fresh = pipe([""], num_frames=4, num_inference_steps=steps, **kw)
        e, f = (back - z0).pow(2).mean().sqrt().item(), (fresh - z0).pow(2).mean().sqrt().item()
        print(f"{steps:5d}  {e:15.4f}  {f:16.4f}  {f / e:5.1f}")


if __name__ == "__main__":
    main()
