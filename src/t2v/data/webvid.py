"""WebVid-10M (Bain et al. 2021) from its metadata CSV and a folder of downloaded videos.

The CSV columns are `videoid,name,page_idx,page_dir,duration,contentUrl`; the caption is `name`.
A video is looked up under the root as `{page_dir}/{videoid}.mp4`, then `{videoid}.mp4`.
"""

from __future__ import annotations

import csv
from pathlib import Path

from t2v.data.clip_dataset import ClipDataset, ClipEntry, Skip, warn_early_skips
from t2v.data.sampling import FrameSampling
from t2v.errors import T2VError

WEBVID_COLUMNS = ("videoid", "name", "page_idx", "page_dir", "duration", "contentUrl")


def read_webvid_csv(csv_path: str | Path) -> list[dict[str, str]]:
    """Rows of a WebVid metadata CSV as dicts; needs at least the `videoid` and `name` columns."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise T2VError(f"WebVid CSV not found: {csv_path}")
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (csv.Error, UnicodeDecodeError) as e:
        raise T2VError(f"cannot parse WebVid CSV {csv_path}: {e}") from None
    missing = [c for c in ("videoid", "name") if c not in columns]
    if missing:
        raise T2VError(f"{csv_path} is not a WebVid CSV: no {', '.join(missing)} column (expected {','.join(WEBVID_COLUMNS)})")
    return rows


def is_webvid_csv(path: str | Path) -> bool:
    """True when the CSV's header has WebVid's `videoid` and `name` columns."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return "videoid" in header and "name" in header


def find_webvid_video(video_root: Path, row: dict[str, str]) -> Path | None:
    """`{page_dir}/{videoid}.mp4` or `{videoid}.mp4` under `video_root`, whichever exists first."""
    vid = (row.get("videoid") or "").strip()
    if not vid:
        return None
    page_dir = (row.get("page_dir") or "").strip()
    candidates = ([video_root / page_dir / f"{vid}.mp4"] if page_dir else []) + [video_root / f"{vid}.mp4"]
    return next((p for p in candidates if p.is_file()), None)


class WebVidDataset(ClipDataset):
    """WebVid rows whose video exists under `video_root`; items `{video (C, F, H, W), caption, source, fps}`.

    Rows without a video file are skipped and counted when the data set is built (one summary
    warning line), so a partial download is fine.
    """

    def __init__(self, csv_path: str | Path, video_root: str | Path, sampling: FrameSampling, *, seed: int = 0) -> None:
        csv_path, video_root = Path(csv_path), Path(video_root)
        rows = read_webvid_csv(csv_path)
        if not video_root.is_dir():
            raise T2VError(f"WebVid video folder not found: {video_root}")
        entries: list[ClipEntry] = []
        skips: list[Skip] = []
        for row in rows:
            vid = (row.get("videoid") or "").strip()
            caption = " ".join((row.get("name") or "").split())
            path = find_webvid_video(video_root, row)
            if path is None:
                skips.append(Skip(f"webvid:{vid}", "missing", f"no {vid}.mp4 under {video_root}"))
            elif not caption:
                skips.append(Skip(str(path), "no caption", f"empty name for video {vid}"))
            else:
                entries.append(ClipEntry(path, caption, str(path)))
        description = f"WebVid CSV {csv_path} with videos under {video_root}"
        warn_early_skips(description, skips, len(rows))
        super().__init__(entries, sampling, description=description, seed=seed, skipped_early=skips)
