"""Sample videos during training, for TensorBoard and an mp4 beside the logs.

torch's `SummaryWriter.add_video` needs moviepy, which t2v does not depend on: the frames go to
TensorBoard as one image (a row per prompt, a column per frame) and the video, with captions, to
`samples/step-XXXXXXXX.mp4` written by t2v's own PyAV writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from t2v.data.preview import preview_grid
from t2v.data.video_io import to_uint8_frames, write_video
from t2v.diffusion.sampling import sample
from t2v.diffusion.schedulers import make_scheduler
from t2v.models import VideoUNet
from t2v.models.text import encode_prompts
from t2v.training.parts import latent_scale, vae_factor


@torch.no_grad()
def sample_videos(
    unet: torch.nn.Module,
    text_encoder: torch.nn.Module,
    tokenizer: Any,
    vae: Optional[torch.nn.Module],
    schedule: dict,
    prompts: Sequence[str],
    *,
    num_frames: int,
    height: int,
    width: int,
    steps: int,
    guidance: float,
    seed: int,
    fps: float = 8.0,
    device: torch.device | str = "cpu",
) -> Tensor:
    """DDIM samples, one per prompt -> float (B, 3, F, H, W) in [-1, 1].

    `unet` is a 2D `UNet2DConditionModel` (each frame on its own, F = 1 for the image stage) or a
    `VideoUNet`. Classifier-free guidance with the empty prompt (Ho & Salimans 2022).
    """
    k = vae_factor(vae)
    b, c = len(prompts), unet.config.in_channels
    emb = encode_prompts(tokenizer, text_encoder, [""] * b + list(prompts), device).to(unet.dtype)  # (2B, L, D)
    is_video = isinstance(unet, VideoUNet)

    def model_fn(x: Tensor, t: Tensor, encoder_hidden_states: Tensor) -> Tensor:
        x = x.to(unet.dtype)  # (N, C, F, h, w)
        if is_video:
            rate = torch.full((x.shape[0],), float(fps), device=x.device)
            return unet(x, t, encoder_hidden_states, fps=rate).float()
        f = x.shape[2]
        out = unet(rearrange(x, "n c f h w -> (n f) c h w"), t.repeat_interleave(f),
                   encoder_hidden_states.repeat_interleave(f, dim=0)).sample  # (N*F, C, h, w)
        return rearrange(out, "(n f) c h w -> n c f h w", f=f).float()

    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((b, c, num_frames, height // k, width // k), generator=generator).to(device)
    x = sample(
        model_fn, make_scheduler("ddim", schedule), shape=noise.shape,
        cond={"encoder_hidden_states": emb[b:]}, uncond={"encoder_hidden_states": emb[:b]},
        guidance_scale=guidance, num_inference_steps=steps, generator=generator, latents=noise,
        progress=False, device=device,
    )  # (B, C, F, h, w)
    if vae is None:
        return x.float().clamp(-1, 1).cpu()
    scale, shift = latent_scale(vae)
    z = rearrange(x, "b c f h w -> (b f) c h w") / scale + shift
    frames = vae.decode(z.to(vae.dtype)).sample.float().clamp(-1, 1)  # (B*F, 3, H, W)
    return rearrange(frames, "(b f) c h w -> b c f h w", b=b).cpu()


def frame_table(videos: Tensor) -> np.ndarray:
    """(B, 3, F, H, W) in [-1, 1] -> uint8 (B*H, F*W, 3): a row per video, a column per frame."""
    rows = [np.concatenate(list(to_uint8_frames(v).numpy()), axis=1) for v in videos]  # each (H, F*W, 3)
    return np.concatenate(rows, axis=0)


def write_samples(videos: Tensor, prompts: Sequence[str], out_dir: Path, step: int, fps: float,
                  writer: Any = None) -> Path:
    """Log `videos` (B, 3, F, H, W): an image to TensorBoard (`writer`), a captioned mp4 to `out_dir`."""
    if writer is not None:
        writer.add_image("samples", frame_table(videos), step, dataformats="HWC")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"step-{step:08d}.mp4"
    write_video(path, preview_grid(list(videos), list(prompts)), fps)
    return path
