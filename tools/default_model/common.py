"""Shared by the default-model stage scripts: ShapesWorld clips/frames as tensors, the output folder."""
import sys, time, math, json, os
import numpy as np, torch
torch.set_num_threads(int(os.environ.get("NT", "1")))
DM = os.environ.get("DM", "runs/default_model")  # where every stage writes
os.makedirs(DM, exist_ok=True)
from t2v.data.shapes import sample_params, render_clip, item_rng, HELD_IN, ALL_COMBINATIONS

def new_vae():
    """Stage 1's autoencoder, untrained: diffusers AutoencoderKL 64x64x3 <-> 16x16x4 (0.68 M parameters)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",)*3, up_block_types=("UpDecoderBlock2D",)*3,
        block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8, mid_block_add_attention=False)

@torch.no_grad()
def set_latent_scale(vae):
    """Record vae's scaling factor: 1 / the std of its posterior means over 64 ShapesWorld frames (seed 5)."""
    z = vae.encode(frames(5, 0, 64)[0]).latent_dist.mode()
    print("latent std", z.std().item(), "mean", z.mean().item())
    vae.register_to_config(scaling_factor=float(1 / z.std()))

def clips(seed, start, n, frames=16):
    """n clips (n, 3, F, 64, 64) in [-1,1] and captions."""
    vids, caps = [], []
    for i in range(start, start + n):
        p = sample_params(item_rng(seed, i))
        c = render_clip(p.color, p.shape, p.motion, size=64, num_frames=frames, object_size=p.object_size,
                        displacement=p.displacement, start=p.start)
        vids.append(torch.from_numpy(c).float().permute(3, 0, 1, 2) / 127.5 - 1)
        caps.append(p.caption)
    return torch.stack(vids), caps

def frames(seed, start, n):
    """n single frames (n,3,64,64) and captions."""
    out, caps = [], []
    for i in range(start, start + n):
        rng = item_rng(seed, i)
        p = sample_params(rng)
        c = render_clip(p.color, p.shape, p.motion, size=64, num_frames=16, object_size=p.object_size,
                        displacement=p.displacement, start=p.start)
        t = int(rng.integers(16))
        out.append(torch.from_numpy(c[t]).float().permute(2, 0, 1) / 127.5 - 1)
        caps.append(p.caption)
    return torch.stack(out), caps


def oracle_agreement(vae, n=24):
    """Share of n held-in/held-out clips (seed 999) whose reconstruction the oracle reads as it reads the clip
    (color, shape and direction), frame by frame through `vae` (a diffusers AutoencoderKL)."""
    from t2v.metrics.shapes_oracle import read_clip

    was_training = vae.training
    vae.eval()
    ok = 0
    with torch.no_grad():
        x, _ = clips(999, 0, n)
        for i in range(n):
            v = x[i].permute(1, 0, 2, 3)  # F C H W
            y = vae.decode(vae.encode(v).latent_dist.mode()).sample.clamp(-1, 1)
            a = ((v.permute(0, 2, 3, 1) + 1) * 127.5).round().byte().numpy()
            b = ((y.permute(0, 2, 3, 1) + 1) * 127.5).round().byte().numpy()
            ra, rb = read_clip(a), read_clip(b)
            ok += (ra.color, ra.shape, ra.direction) == (rb.color, rb.shape, rb.direction)
    vae.train(was_training)
    return ok / n
