"""The training data of each stage, from `data` config values (t2v.data does the decoding).

  image  one frame per clip: ShapesWorld's image mode, or any clip data set sampled to 1 frame;
  video  clips of `num_frames` frames from `shapes`, a caption folder, a manifest or a WebVid CSV;
  tune   the one clip of Tune-A-Video, sampled exactly as `t2v edit` will sample it again.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from t2v.data.sampling import FrameSampling
from t2v.data.shapes import ShapesWorldDataset
from t2v.data.sources import open_dataset
from t2v.errors import T2VError
from t2v.training.config import TrainConfig


def frame_sampling(config: TrainConfig) -> FrameSampling:
    """The FrameSampling of the config's data section (1 frame for the image stage)."""
    d = config.data
    return FrameSampling(
        num_frames=1 if config.stage == "image" else d.num_frames, height=d.height, width=d.width,
        sample_stride=d.sample_stride, target_fps=d.target_fps, start=d.start,
        crop_scale=d.random_crop, hflip=d.hflip, camera_pan=d.camera_pan,
    )


class OneClip(Dataset):
    """Tune-A-Video's training set: one clip and its prompt (Wu et al. 2023, one-shot tuning)."""

    def __init__(self, video: torch.Tensor, prompt: str, fps: float, source: str) -> None:
        self.item = {"video": video, "caption": prompt, "fps": fps, "source": source}  # video (C, F, H, W)

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index not in (0, -1):
            raise IndexError(index)
        return self.item


def tune_record(config: TrainConfig) -> dict[str, Any]:
    """What `save_tuned` stores and `t2v edit` reads back: base model, clip, prompt, sampling, settings."""
    return {
        "base_model": str(Path(config.model.pretrained).resolve()),
        "video": str(Path(config.data.dataset).resolve()),
        "prompt": config.data.prompt,
        "sampling": asdict(frame_sampling(config)),
        "steps": config.max_steps,
        "lr": config.optim.lr,
        "seed": config.seed,
        "lora_rank": config.model.lora_rank,
    }


def build_dataset(config: TrainConfig) -> Dataset:
    """The stage's training data set (items {video (C, F, H, W) in [-1, 1], caption, fps, ...})."""
    d = config.data
    sampling = frame_sampling(config)
    if config.stage == "tune":
        from t2v.pipelines.tune_a_video import source_clip

        if not Path(d.dataset).is_file():
            raise T2VError(f"the tune stage trains on one video file; {d.dataset} is not a file")
        video, fps = source_clip(tune_record(config))  # (C, F, H, W), the same clip t2v edit inverts
        return OneClip(video, d.prompt, fps, d.dataset)
    if d.dataset == "shapes":
        if d.height != d.width:
            raise T2VError(f"ShapesWorld is square; got data.height {d.height} and data.width {d.width}")
        return ShapesWorldDataset(d.shapes_length, seed=d.seed, size=d.height, num_frames=d.num_frames,
                                  images=config.stage == "image")
    return open_dataset(d.dataset, sampling, video_root=d.video_root, seed=d.seed)


def skip_summary(dataset: Dataset) -> tuple[int, str]:
    """(clips skipped so far, one-line summary) of a file-backed data set; (0, "") for others."""
    summary = getattr(dataset, "skip_summary", None)
    if summary is None:
        return 0, ""
    return len(dataset.skipped), summary()
