"""`t2v tune`: Tune-A-Video's one-shot tuning (Wu et al. 2023) as a config of the training loop.

Defaults follow the paper's configs: AdamW at lr 3e-5 with weight decay 1e-2, batch 1, gradient
clipping at 1, gradient checkpointing, no caption dropout and no EMA; 24 frames every `stride`-th
frame from the start of the clip at the model's native size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from t2v.errors import T2VError
from t2v.training.config import (
    CheckpointConfig,
    DataConfig,
    EMAConfig,
    LoggingConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)


def native_size(model: Path, vae_factor: Optional[int] = None) -> int:
    """Pixel size a Stable Diffusion folder was trained at: unet sample_size x the VAE's factor
    (`vae_factor`: the caller's `folder_vae_factor(model)`, not read again)."""
    try:
        unet = json.loads((model / "unet" / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise T2VError(f"{model} has no readable unet/config.json; pass a Stable Diffusion folder (unet/, text_encoder/, vae/, ...)") from None
    size = unet.get("sample_size") or 64
    size = size if isinstance(size, int) else size[0]
    from t2v.pipelines.model_folder import folder_vae_factor

    return size * (folder_vae_factor(model) if vae_factor is None else vae_factor)


def tune_config(
    model: Path,
    video: Path,
    prompt: str,
    steps: int,
    out: Path,
    *,
    lr: float = 3e-5,
    num_frames: int = 24,
    stride: int = 1,
    height: Optional[int] = None,
    width: Optional[int] = None,
    lora_rank: Optional[int] = None,
    seed: int = 0,
    mixed_precision: str = "no",
    gradient_checkpointing: bool = True,
) -> TrainConfig:
    """The TrainConfig of `t2v tune` (stage `tune`, recipe `tune-a-video`)."""
    model, video = Path(model), Path(video)
    if not model.is_dir():
        raise T2VError(f"--model {model} is not a folder; pass a Stable Diffusion folder (unet/, text_encoder/, ...)")
    if not video.is_file():
        raise T2VError(f"--video {video} is not a file; pass the clip to tune on (mp4, gif, webm, ...)")
    if steps < 1:
        raise T2VError(f"--steps must be at least 1; got {steps}")
    size = native_size(model) if height is None or width is None else 0
    return TrainConfig(
        stage="tune",
        output_dir=str(out),
        seed=seed,
        max_steps=steps,
        mixed_precision=mixed_precision,
        model=ModelConfig(pretrained=str(model), recipe="tune-a-video", gradient_checkpointing=gradient_checkpointing,
                          lora_rank=lora_rank),
        data=DataConfig(dataset=str(video), prompt=prompt, num_frames=num_frames, height=height or size,
                        width=width or size, sample_stride=stride, start=0, batch_size=1, caption_dropout=0.0),
        optim=OptimConfig(lr=lr, weight_decay=1e-2, warmup_steps=0, schedule="constant", max_grad_norm=1.0),
        ema=EMAConfig(enabled=False),
        checkpoint=CheckpointConfig(every=0),
        logging=LoggingConfig(every=10, sample_every=0),
    )
