"""Issue 9, real clips: an image autoencoder for real footage, so that Video LDM's temporal decoder can
be measured on the shared real videos (the ShapesWorld autoencoder reconstructs them at 9 dB, and
no real-image autoencoder can be downloaded here).

The five shared videos are split in time: the last 16 frames of each (`REAL_EVAL_FRAMES`) are the
evaluation clips (`benchmarks/cascade_eval.py --sections decoder --real-vae ... --real-decoder ...`);
every frame before them is training data. All frames are resized and center-cropped to 64x64
(`split --size N`: N x N into runs/real/train_N, for training on random crops, `data.random_crop`).

    PYTHONPATH=src python tools/cascade/real_autoencoder.py split runs/real         # runs/real/train/NAME/ (PNG) + NAME.txt
    PYTHONPATH=src python tools/cascade/real_autoencoder.py vae runs/real --steps 1500
    t2v train configs/cascade/vae_decoder_real.yaml                                  # the temporal decoder

`vae` trains a diffusers AutoencoderKL (the default model's layout, wider) on single training frames
with L1 + L2 reconstruction and a 1e-6 KL term, random horizontal flips, AdamW with a cosine schedule,
and writes runs/real/vae. Written by hand: diffusers ships the model, not a training loop for it.
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import sys
import time
from pathlib import Path

import torch
from einops import rearrange

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from cascade_eval import REAL_EVAL_FRAMES, real_frames  # noqa: E402  (the one definition of the split)

CAPTIONS = {"car-turn": "a jeep car is moving on the road", "man-skiing": "a man is skiing",
            "man-surfing": "a man is surfing", "rabbit-watermelon": "a rabbit is eating a watermelon", "wolf": "a wolf"}


def assets() -> Path:
    return Path(os.environ.get("T2V_ASSETS", Path(__file__).resolve().parents[3] / "shared" / "assets"))


def train_frames(size: int = 64) -> dict[str, torch.Tensor]:
    """name -> (3, F, size, size) in [-1, 1]: every frame before the evaluation tail."""
    out = {}
    for p in sorted(glob.glob(str(assets() / "videos" / "*.mp4"))):
        x = real_frames(Path(p), size)
        out[Path(p).stem] = x[:, : x.shape[1] - REAL_EVAL_FRAMES]
    if not out:
        raise SystemExit(f"no videos under {assets() / 'videos'}: set T2V_ASSETS to the shared assets folder")
    return out


def split(out: Path, size: int = 64) -> None:
    from t2v.data.video_io import write_video

    folder = out / ("train" if size == 64 else f"train_{size}")
    folder.mkdir(parents=True, exist_ok=True)
    for name, x in train_frames(size).items():
        # Lossless PNG frames: an H.264 file is yuv420p, whose halved chroma the decoder would learn to
        # reproduce (session 9: trained on such files, it lost 1.4-3.5 dB on the originals' frames).
        write_video(folder / name, x, 8)
        (folder / f"{name}.txt").write_text(CAPTIONS.get(name, name) + "\n")
        print(f"{name}: {x.shape[1]} training frames", flush=True)


def train_vae(out: Path, steps: int, batch: int, lr: float) -> None:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    frames = torch.cat([rearrange(x, "c f h w -> f c h w") for x in train_frames().values()])  # (N, 3, 64, 64)
    print(f"{len(frames)} training frames", flush=True)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 64, 64), layers_per_block=1,
                        norm_num_groups=8, mid_block_add_attention=False)
    opt = torch.optim.AdamW(vae.parameters(), lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    g = torch.Generator().manual_seed(0)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(len(frames), (batch,), generator=g)
        x = frames[idx]
        flip = torch.rand(batch, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)  # (B, 3, 64, 64)
        post = vae.encode(x).latent_dist
        y = vae.decode(post.sample(generator=g)).sample
        rec = (y - x).abs().mean() + (y - x).square().mean()
        loss = rec + 1e-6 * post.kl().mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0:
            print(f"step {step + 1} reconstruction {rec.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    vae.eval()
    with torch.no_grad():  # the latent scale a diffusion model would use (Rombach et al. 2022, Sec. G)
        z = torch.cat([vae.encode(frames[i:i + 64]).latent_dist.mode() for i in range(0, len(frames), 64)])
    vae.register_to_config(scaling_factor=float(1 / z.std()))
    vae.save_pretrained(out / "vae", safe_serialization=True)
    print(f"wrote {out / 'vae'} in {time.time() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["split", "vae"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--size", type=int, default=64, help="split: frame size of the training clips")
    a = ap.parse_args()
    split(a.out, a.size) if a.command == "split" else train_vae(a.out, a.steps, a.batch, a.lr)


if __name__ == "__main__":
    main()
