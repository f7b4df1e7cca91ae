"""CLIP scores of videos: CLIPSIM (text-video alignment) and CLIP frame consistency.

- CLIPSIM (Wu et al., GODIVA 2021; the MSR-VTT column of Make-A-Video and Video LDM): the mean over
  a video's frames of the cosine between the CLIP embedding of the frame and of its caption,
  averaged over videos. Reported as a raw cosine (e.g. 0.2929); Tune-A-Video's "textual
  alignment" is the same number times 100.
- Frame consistency (Tune-A-Video, Wu et al. 2023, Table 1): the mean cosine between the CLIP image
  embeddings of all pairs of distinct frames of a video, averaged over videos (x100 in the paper).

CLIP comes from a local transformers folder (`CLIPModel.from_pretrained`); images are preprocessed
in torch as CLIP's processor does (short side to 224, bicubic with antialiasing in PIL's two
rounded passes, center crop 224, CLIP mean/std; sizes and statistics are read from the
folder's `preprocessor_config.json` when present). Text: the folder's tokenizer, else t2v's offline
CLIP tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from t2v.errors import T2VError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipImageConfig:
    """CLIP's image preprocessing: resize the short side to `size`, center crop `crop`, normalise."""

    size: int = 224
    crop: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    @classmethod
    def from_folder(cls, folder: str | Path, default_size: int = 224) -> "ClipImageConfig":
        """Read `preprocessor_config.json` (transformers' CLIPImageProcessor fields) when it exists."""
        f = Path(folder) / "preprocessor_config.json"
        if not f.is_file():
            return cls(default_size, (default_size, default_size))
        cfg = json.loads(f.read_text())
        size = cfg.get("size", default_size)
        size = size.get("shortest_edge", size.get("height", default_size)) if isinstance(size, dict) else int(size)
        crop = cfg.get("crop_size", size)
        crop = (crop["height"], crop["width"]) if isinstance(crop, dict) else (int(crop), int(crop))
        return cls(int(size), crop, tuple(cfg.get("image_mean", CLIP_MEAN)), tuple(cfg.get("image_std", CLIP_STD)))


def preprocess_frames(frames: Tensor, cfg: ClipImageConfig = ClipImageConfig()) -> Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, crop_h, crop_w), CLIP-normalised."""
    x = rearrange(frames, "n h w c -> n c h w").float()
    h, w = x.shape[-2:]
    # transformers' shortest-edge rule: the short side becomes `size`, the long one int(size * long / short)
    if h <= w:
        th, tw = cfg.size, int(cfg.size * w / h)
    else:
        th, tw = int(cfg.size * h / w), cfg.size
    # PIL resizes a uint8 image in two passes, width then height, each rounded to uint8 levels
    # (bicubic a=-0.5 with antialiasing, as torch's antialias=True): do the same, so the pixels match
    # CLIPImageProcessor's to one level.
    if tw != w:
        x = F.interpolate(x, size=(h, tw), mode="bicubic", align_corners=False, antialias=True).round().clamp(0, 255)
    if th != h:
        x = F.interpolate(x, size=(th, tw), mode="bicubic", align_corners=False, antialias=True).round().clamp(0, 255)
    ch, cw = cfg.crop
    top, left = (th - ch) // 2, (tw - cw) // 2
    if top < 0 or left < 0:
        raise T2VError(f"CLIP crop {cfg.crop} is larger than the resized frame ({th}, {tw})")
    x = x[..., top : top + ch, left : left + cw] / 255.0
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    return (x - mean) / std


def _has_tokenizer_files(folder: Path) -> bool:
    return any((folder / n).is_file() for n in ("tokenizer.json", "vocab.json", "tokenizer_config.json"))


def load_tokenizer(folder: Path) -> Any:
    """The folder's tokenizer (or its `tokenizer/` subfolder); else t2v's offline CLIP tokenizer."""
    from transformers import AutoTokenizer

    for candidate in (folder, folder / "tokenizer"):
        if _has_tokenizer_files(candidate):
            return AutoTokenizer.from_pretrained(str(candidate))
    try:
        from t2v.models.tokenizer import clip_tokenizer
    except ImportError:
        raise T2VError(f"{folder} has no tokenizer files and t2v's offline CLIP tokenizer is not available") from None
    return clip_tokenizer()


class ClipScorer:
    """A CLIPModel, its tokenizer and image preprocessing; gives unit-norm embeddings."""

    def __init__(self, model: Any, tokenizer: Any, image_config: ClipImageConfig, device: str | torch.device = "cpu", batch_size: int = 32):
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.image_config = image_config
        self.device = device
        self.batch_size = batch_size
        self.max_length = int(model.config.text_config.max_position_embeddings)

    @torch.no_grad()
    def image_embeddings(self, frames: Tensor) -> Tensor:
        """uint8 (N, H, W, 3) -> (N, D) unit vectors (visual projection of the pooled CLS token)."""
        out = []
        for i in range(0, frames.shape[0], self.batch_size):
            pixels = preprocess_frames(frames[i : i + self.batch_size], self.image_config).to(self.device)
            pooled = self.model.vision_model(pixel_values=pixels).pooler_output
            out.append(self.model.visual_projection(pooled))
        return F.normalize(torch.cat(out).float(), dim=-1)

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> Tensor:
        """(T,) strings -> (T, D) unit vectors (text projection of the EOS token)."""
        tok = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt")
        ids = tok["input_ids"].to(self.device)
        mask = tok.get("attention_mask")
        mask = mask.to(self.device) if mask is not None else None
        pooled = self.model.text_model(input_ids=ids, attention_mask=mask).pooler_output
        return F.normalize(self.model.text_projection(pooled).float(), dim=-1)


def load_clip(folder: str | Path, device: str | torch.device = "cpu") -> ClipScorer:
    """A `ClipScorer` from a local transformers CLIP folder (e.g. openai/clip-vit-base-patch32)."""
    from transformers import CLIPModel

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise T2VError(f"{folder} is not a CLIP folder (no config.json): download e.g. openai/clip-vit-base-patch32 and pass its folder")
    try:
        model = CLIPModel.from_pretrained(str(folder))
    except Exception as e:
        raise T2VError(f"cannot load a CLIPModel from {folder}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    image_config = ClipImageConfig.from_folder(folder, default_size=int(model.config.vision_config.image_size))
    return ClipScorer(model, load_tokenizer(folder), image_config, device)


def clipsim(scorer: ClipScorer, frames: Tensor, prompt: str) -> float:
    """Mean over the (F, H, W, 3) frames of cos(CLIP(frame), CLIP(prompt))."""
    img = scorer.image_embeddings(frames)  # (F, D)
    txt = scorer.text_embeddings([prompt])  # (1, D)
    return float((img @ txt.T).mean())


def frame_consistency(scorer: ClipScorer, frames: Tensor) -> float:
    """Mean cosine between CLIP embeddings of all pairs of distinct frames of (F, H, W, 3), F >= 2."""
    f = frames.shape[0]
    if f < 2:
        raise T2VError(f"frame consistency needs at least 2 frames, got {f}")
    img = scorer.image_embeddings(frames).double()  # (F, D)
    sim = img @ img.T  # (F, F)
    off_diagonal = sim.sum() - sim.diagonal().sum()
    return float(off_diagonal / (f * (f - 1)))


@dataclass(frozen=True)
class ClipScoreResult:
    mean: float
    per_video: tuple[float, ...]


def mean_clipsim(scorer: ClipScorer, clips: Iterable[Tensor], prompts: Iterable[str]) -> ClipScoreResult:
    """CLIPSIM averaged over videos; `clips` and `prompts` are paired in order."""
    try:
        scores = tuple(clipsim(scorer, c, p) for c, p in zip(clips, prompts, strict=True))
    except ValueError:
        raise T2VError("CLIPSIM needs one prompt per video: the counts differ") from None
    if not scores:
        raise T2VError("no videos to score")
    return ClipScoreResult(sum(scores) / len(scores), scores)


def mean_frame_consistency(scorer: ClipScorer, clips: Iterable[Tensor]) -> ClipScoreResult:
    """Frame consistency averaged over videos."""
    scores = tuple(frame_consistency(scorer, c) for c in clips)
    if not scores:
        raise T2VError("no videos to score")
    return ClipScoreResult(sum(scores) / len(scores), scores)


def prompts_for_videos(paths: Sequence[Path], prompts_file: str | Path | None = None) -> list[str]:
    """The caption of every video: from `prompts_file` or a sidecar `<video stem>.txt`.

    `prompts_file` is a JSON object {file name, stem or path: prompt} or a text file with one prompt
    a line, in the (sorted) order of the videos.
    """
    if prompts_file is not None:
        f = Path(prompts_file)
        if not f.is_file():
            raise T2VError(f"prompts file {f} not found")
        if f.suffix == ".json":
            table = json.loads(f.read_text())
            if not isinstance(table, dict):
                raise T2VError(f"{f} must hold a JSON object {{video name: prompt}}")
            out = []
            for p in paths:
                for key in (str(p), p.name, p.stem):
                    if key in table:
                        out.append(str(table[key]))
                        break
                else:
                    raise T2VError(f"{f} has no prompt for {p.name} (keys are file names or stems)")
            return out
        lines = [line.strip() for line in f.read_text().splitlines() if line.strip()]
        if len(lines) != len(paths):
            raise T2VError(f"{f} has {len(lines)} prompts for {len(paths)} videos: give one a line, in sorted video order")
        return lines
    out = []
    for p in paths:
        side = p.with_suffix(".txt")
        if not side.is_file():
            raise T2VError(f"no prompt for {p.name}: put {side.name} beside it or pass --prompts FILE")
        out.append(side.read_text().strip())
    return out
