"""The results folder of `t2v serve`: every name in it is made here, never taken from a user.

```
RESULTS/
  <id>/                   one finished job; <id> = YYYYmmdd-HHMMSS-<6 hex>
    video.mp4 video.json  a generation and its settings (a JSON beside every video)
    source.mp4 edit-000.mp4 ... comparison.mp4 (+ .json each), tuned/   a tune-and-edit job
  uploads/<id>.<ext>      uploaded clips (ext from what FFmpeg found inside), <id>.json their facts
  bases/<hash>/           2D text-to-image folders made from a model for one-shot tuning
```

A user's file name is kept only as text in the upload's JSON; paths are `<id>` and names matching
`NAME_RE`, checked again after resolving, so `../../etc/passwd.mp4` cannot leave the folder.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Optional

import av

from t2v.errors import T2VError
from t2v.serve.limits import MB, ServeLimits

ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\.(mp4|json)$")
UPLOADS = "uploads"
BASES = "bases"
# FFmpeg demuxer name -> the suffix an upload is stored under (the bytes decide, not the user's name).
_SUFFIX_OF_FORMAT = {"mov": ".mp4", "mp4": ".mp4", "matroska": ".mkv", "webm": ".webm", "gif": ".gif", "avi": ".avi"}


class UploadRefused(T2VError):
    """An upload that is too large or not a video (HTTP 413 / 415)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def new_id() -> str:
    """A fresh name: the time and 24 random bits (`20250101-120000-a1b2c3`)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class ResultStore:
    """Where results and uploads live (`root`), and the only place that turns ids into paths."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        (self.root / UPLOADS).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------------------------------
    def new_result(self) -> tuple[str, Path]:
        """(id, an empty new folder for one job's outputs)."""
        while True:
            rid = new_id()
            folder = self.root / rid
            try:
                folder.mkdir()
                return rid, folder
            except FileExistsError:
                continue

    def file(self, rid: str, name: str) -> Optional[Path]:
        """The path of file `name` of result `rid`, or None when either is not a name this store makes
        or the file does not exist (never a path outside `root`)."""
        if not (isinstance(rid, str) and isinstance(name, str) and ID_RE.match(rid) and NAME_RE.match(name)):
            return None
        path = (self.root / rid / name).resolve()
        if path.parent != self.root / rid or not path.is_file():
            return None
        return path

    def write_settings(self, video: Path, settings: dict[str, Any]) -> Path:
        """The JSON beside a video (`video.mp4` -> `video.json`)."""
        path = video.with_suffix(".json")
        _write_json(path, settings)
        return path

    def results(self, limit: int = 200) -> list[dict[str, Any]]:
        """Finished results, newest first: {id, created, kind, main, videos: [settings of each video]}."""
        out = []
        folders = sorted((p for p in self.root.iterdir() if p.is_dir() and ID_RE.match(p.name)), reverse=True)
        for folder in folders[:limit]:
            videos = []
            for js in sorted(folder.glob("*.json")):
                try:
                    data = json.loads(js.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):
                    continue
                if isinstance(data, dict) and (folder / data.get("file", "")).is_file():
                    videos.append(data)
            if not videos:
                continue
            main = next((v for v in videos if v.get("role") in ("comparison", "video")), videos[0])
            out.append({"id": folder.name, "created": main.get("created"), "kind": main.get("kind"),
                        "main": main["file"], "videos": videos})
        return out

    # ------------------------------------------------------------------------------------------
    def incoming(self) -> tuple[str, Path]:
        """(a fresh upload id, the hidden file its bytes are written to before they are checked)."""
        uid = new_id()
        return uid, self.root / UPLOADS / f".{uid}.part"

    def accept_upload(self, uid: str, part: Path, user_name: str, limits: ServeLimits) -> dict[str, Any]:
        """Check with PyAV that the bytes written to `part` are a video and keep them under a name made
        here. Returns the upload's facts {id, file, name, bytes, frames, width, height, fps, ...}.

        Raises UploadRefused (415) when FFmpeg cannot read a video of at least 2 frames from it, (413)
        when it decodes to more than `limits.max_clip_bytes`; `part` is removed in every case.
        """
        try:
            size = part.stat().st_size
            if size == 0:
                raise UploadRefused("the upload is empty; choose a video file", 415)
            if size > limits.max_upload_bytes:
                raise UploadRefused(upload_too_large(size, limits), 413)
            facts = probe_video(part, limits)
            path = self.root / UPLOADS / f"{uid}{facts.pop('suffix')}"
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
        shown = re.sub(r"[\x00-\x1f\x7f]", "", str(user_name or ""))[:120]
        meta = {"id": uid, "file": path.name, "name": shown, "bytes": size, **facts}
        _write_json(self.root / UPLOADS / f"{uid}.json", meta)
        return meta

    def upload(self, uid: Any) -> tuple[Path, dict[str, Any]]:
        """(path, facts) of upload `uid`; T2VError when there is none."""
        if not isinstance(uid, str) or not ID_RE.match(uid):
            raise T2VError("no such upload; upload the clip first")
        meta_path = self.root / UPLOADS / f"{uid}.json"
        if not meta_path.is_file():
            raise T2VError("no such upload; upload the clip first")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        path = self.root / UPLOADS / meta["file"]
        if path.parent != self.root / UPLOADS or not path.is_file():
            raise T2VError("the uploaded clip is gone; upload it again")
        return path, meta


def upload_too_large(size: int, limits: ServeLimits) -> str:
    return (f"the upload ({size / MB:.1f} MB) is over this server's limit of {limits.max_upload_mb:g} MB; trim or "
            "re-encode the clip (or restart t2v serve with a higher --max-upload-mb)")


def probe_video(path: Path, limits: ServeLimits) -> dict[str, Any]:
    """Decode every frame of `path` with PyAV (keeping none) -> {frames, width, height, fps, format,
    suffix}; UploadRefused (415) when it is not a video of at least 2 frames or is too large decoded."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UploadRefused("the file has no video stream; upload a video (mp4, webm, mov, gif, ...)", 415)
            stream = container.streams.video[0]
            frames, width, height = 0, 0, 0
            for frame in container.decode(stream):
                frames += 1
                width, height = frame.width, frame.height
                if frames * width * height * 3 > limits.max_clip_bytes:
                    raise UploadRefused(
                        f"the clip decodes to more than this server's limit of {limits.max_clip_mb:g} MB of frames "
                        f"({width}x{height} px each); upload a shorter or smaller clip (or raise --max-clip-mb)", 413)
            rate = float(stream.average_rate or stream.guessed_rate or 0) or 8.0
            fmt = container.format.name
    except UploadRefused:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        # FFmpeg's reason only: str(exc) would also show the server-side path of the file.
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise UploadRefused(f"the file is not a video FFmpeg can read ({reason}); upload an mp4, webm, mov or gif", 415) from None
    if frames < 2:
        raise UploadRefused(f"the file holds {frames} frame{'s' if frames != 1 else ''}, not a video clip; upload a video", 415)
    names = fmt.split(",")
    suffix = next((_SUFFIX_OF_FORMAT[n] for n in names if n in _SUFFIX_OF_FORMAT), ".mkv")
    return {"frames": frames, "width": width, "height": height, "fps": round(rate, 3), "format": fmt,
            "suffix": suffix, "megabytes_decoded": round(frames * width * height * 3 / MB, 1)}
