"""A folder of videos with captions: a sidecar `.txt` per video, or a CSV/JSONL manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from t2v.data.clip_dataset import ClipDataset, ClipEntry, Skip, warn_early_skips
from t2v.data.sampling import FrameSampling
from t2v.data.video_io import DEFAULT_FOLDER_FPS, FRAME_SUFFIXES, VIDEO_SUFFIXES
from t2v.errors import T2VError

PATH_KEYS = ("path", "video", "file", "filename")
CAPTION_KEYS = ("caption", "text", "prompt", "name")


def _clean(text: str) -> str:
    return " ".join(str(text).split())


def read_manifest(manifest: Path) -> list[tuple[str, str]]:
    """(path, caption) rows of a CSV (header with a path and a caption column) or JSONL file."""
    if not manifest.is_file():
        raise T2VError(f"manifest not found: {manifest}")
    suffix = manifest.suffix.lower()
    try:
        if suffix == ".csv":
            with open(manifest, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        elif suffix in (".jsonl", ".ndjson"):
            rows = []
            with open(manifest, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        row = json.loads(line)
                        if not isinstance(row, dict):
                            raise T2VError(f"{manifest} line {n}: expected a JSON object with path and caption")
                        rows.append(row)
        else:
            raise T2VError(f"manifest {manifest} must be a .csv or .jsonl file")
    except (json.JSONDecodeError, csv.Error, UnicodeDecodeError) as e:
        raise T2VError(f"cannot parse manifest {manifest}: {e}") from None
    if not rows:
        return []
    keys = set(rows[0])
    path_key = next((k for k in PATH_KEYS if k in keys), None)
    caption_key = next((k for k in CAPTION_KEYS if k in keys), None)
    if path_key is None or caption_key is None:
        raise T2VError(
            f"manifest {manifest} needs a path column ({'/'.join(PATH_KEYS)}) and a caption column "
            f"({'/'.join(CAPTION_KEYS)}); found {sorted(keys)}"
        )
    return [(str(r.get(path_key) or ""), _clean(r.get(caption_key) or "")) for r in rows]


def _is_frame_folder(p: Path) -> bool:
    return p.is_dir() and any(c.suffix.lower() in FRAME_SUFFIXES for c in p.iterdir())


def scan_folder(root: Path) -> list[tuple[Path, Path]]:
    """(video, sidecar caption file) pairs under `root`: video files and folders of frames, each
    with `<name>.txt` beside it (`clip.mp4` -> `clip.txt`, frame folder `clip/` -> `clip.txt`)."""
    pairs = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
            pairs.append((p, p.with_suffix(".txt")))
        elif _is_frame_folder(p):
            pairs.append((p, p.parent / f"{p.name}.txt"))
    return pairs


class CaptionFolderDataset(ClipDataset):
    """Videos with captions under `root`; items `{video (C, F, H, W), caption, source, fps}`.

    Without `manifest`: every video file (mp4/webm/mov/mkv/avi/gif) or folder of png/jpg frames
    under `root` with a sidecar `.txt` caption of the same name. With `manifest` (CSV or JSONL with
    a path and a caption per row): paths are relative to `root`. Frame folders play at `folder_fps`. Entries without a caption or whose
    file is missing are skipped and counted when the data set is built.
    """

    def __init__(
        self,
        root: str | Path,
        sampling: FrameSampling,
        manifest: str | Path | None = None,
        *,
        seed: int = 0,
        folder_fps: float = DEFAULT_FOLDER_FPS,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise T2VError(f"caption folder not found: {root}")
        entries: list[ClipEntry] = []
        skips: list[Skip] = []
        if manifest is not None:
            manifest = Path(manifest)
            if not manifest.exists() and (root / manifest).exists():
                manifest = root / manifest
            description = f"manifest {manifest}"
            for rel, caption in read_manifest(manifest):
                path = root / rel
                if not rel or not path.exists():
                    skips.append(Skip(str(path), "missing", f"file not found: {path}"))
                elif not caption:
                    skips.append(Skip(str(path), "no caption", f"empty caption for {path} in {manifest}"))
                else:
                    entries.append(ClipEntry(path, caption, str(path)))
        else:
            description = f"caption folder {root}"
            for video, sidecar in scan_folder(root):
                caption = _clean(sidecar.read_text(encoding="utf-8", errors="replace")) if sidecar.is_file() else ""
                if caption:
                    entries.append(ClipEntry(video, caption, str(video)))
                else:
                    skips.append(Skip(str(video), "no caption", f"no caption file {sidecar.name} beside {video}"))
            if not entries and not skips:
                raise T2VError(
                    f"no videos in {root}: put mp4/webm/mov/gif files (or folders of frames) there with a .txt caption beside each, or pass a manifest"
                )
        warn_early_skips(description, skips, len(entries) + len(skips))
        super().__init__(entries, sampling, description=description, seed=seed, skipped_early=skips, folder_fps=folder_fps)
