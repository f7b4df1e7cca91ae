"""Open a data set from what a user types: `shapes`, a folder, a manifest CSV/JSONL or a WebVid CSV."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from t2v.data.caption_folder import CaptionFolderDataset
from t2v.data.sampling import FrameSampling
from t2v.data.shapes import ShapesWorldDataset
from t2v.data.webvid import WebVidDataset, is_webvid_csv
from t2v.errors import T2VError


def open_dataset(
    spec: str | Path,
    sampling: FrameSampling,
    *,
    video_root: str | Path | None = None,
    seed: int = 0,
    shapes_length: int = 1000,
    held_out: bool = False,
) -> Dataset:
    """The data set `spec` names.

    - `shapes`: ShapesWorld at `sampling`'s size (square: height) and frame count; with `held_out`,
      only the 8 held-out combinations.
    - a folder: `CaptionFolderDataset` (sidecar `.txt` captions).
    - a `.csv` with `videoid` and `name` columns: `WebVidDataset` with videos under `video_root`
      (default: the CSV's folder).
    - any other `.csv` or a `.jsonl`: a manifest of path + caption, paths relative to `video_root`
      (default: the manifest's folder).
    """
    if str(spec) == "shapes":
        if sampling.height != sampling.width:
            raise T2VError(f"ShapesWorld is square; got {sampling.height}x{sampling.width}")
        return ShapesWorldDataset(shapes_length, seed=seed, size=sampling.height, num_frames=sampling.num_frames, only_held_out=held_out)
    path = Path(spec)
    if not path.exists():
        raise T2VError(f"data set not found: {path} (give `shapes`, a folder of captioned videos, a manifest .csv/.jsonl or a WebVid .csv)")
    if path.is_dir():
        return CaptionFolderDataset(path, sampling, seed=seed)
    root = Path(video_root) if video_root is not None else path.parent
    suffix = path.suffix.lower()
    if suffix == ".csv" and is_webvid_csv(path):
        return WebVidDataset(path, root, sampling, seed=seed)
    if suffix in (".csv", ".jsonl", ".ndjson"):
        return CaptionFolderDataset(root, sampling, manifest=path, seed=seed)
    raise T2VError(f"cannot tell what data set {path} is: give `shapes`, a folder, a .csv/.jsonl manifest or a WebVid .csv")
