"""Seconds per training step of a preset: forward + backward + AdamW on one batch (a benchmark; tests never time).

    PYTHONPATH=src python benchmarks/train_step_time.py configs/shapes_image.yaml [--threads 1] [--set k=v ...]

The video preset starts from the image stage's folder; without it, pass the image preset's U-Net and
text encoder, e.g. for both recipes:
    PYTHONPATH=src python benchmarks/train_step_time.py configs/shapes_video.yaml --set model.pretrained=null \
        --set "model.unet={sample_size: 32, block_out_channels: [32, 64, 64], layers_per_block: 1, \
down_block_types: [DownBlock2D, CrossAttnDownBlock2D, CrossAttnDownBlock2D], up_block_types: [CrossAttnUpBlock2D, \
CrossAttnUpBlock2D, UpBlock2D], attention_head_dim: 8, norm_num_groups: 8}" \
        --set "model.text_encoder={hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, max_length: 16}" \
        --set model.recipe=video-ldm
Prints the trained / U-Net parameter counts and the time of each of 6 steps (the first warms up).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from t2v.diffusion.loss import diffusion_loss
from t2v.training.config import load_config
from t2v.training.datasets import build_dataset
from t2v.training.parts import build_parts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    c = load_config(args.config, args.sets)
    torch.manual_seed(c.seed)
    parts, ds = build_parts(c), build_dataset(c)
    b = c.data.batch_size
    items = [ds[i] for i in range(b)]
    x0 = torch.stack([it["video"] for it in items])  # (B, 3, F, H, W)
    ids = parts.tokenizer([it["caption"] for it in items], padding="max_length",
                          max_length=parts.tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
    opt = torch.optim.AdamW(list(parts.trainable.values()))
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        with torch.set_grad_enabled(c.model.train_text_encoder):
            text = parts.text_encoder(ids)[0]  # (B, L, D)
        if c.stage == "image":
            loss = diffusion_loss(parts.unet, parts.noise_scheduler, x0[:, :, 0], {"encoder_hidden_states": text}).loss
        else:
            loss = diffusion_loss(parts.unet, parts.noise_scheduler, x0, {"encoder_hidden_states": text,
                                                                            "fps": torch.full((b,), 8.0)}).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    trained = sum(p.numel() for p in parts.trainable.values())
    unet = sum(p.numel() for p in parts.unet.parameters())
    print(f"{args.config}: {trained:,} trained parameters, U-Net {unet:,}; threads {args.threads}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("seconds per step:", " ".join(f"{x:.2f}" for x in times))


if __name__ == "__main__":
    main()
