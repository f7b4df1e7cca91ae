"""Weights by path or URL: a URL is downloaded once into a local cache (`~/.cache/t2v`, or
`$T2V_CACHE`), only when the user gives one; nothing is fetched implicitly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from t2v.errors import T2VError


def cache_dir() -> Path:
    """`$T2V_CACHE`, else `~/.cache/t2v`."""
    return Path(os.environ.get("T2V_CACHE", Path.home() / ".cache" / "t2v"))


def is_url(s: str | Path) -> bool:
    return urllib.parse.urlparse(str(s)).scheme in ("http", "https", "file")


def cached_path(url: str, subdir: str = "weights") -> Path:
    """Where `url` is kept in the cache: `<cache>/<subdir>/<sha1(url)[:10]>-<file name>`."""
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    digest = hashlib.sha1(url.encode()).hexdigest()[:10]
    return cache_dir() / subdir / f"{digest}-{name}"


def fetch(url_or_path: str | Path, subdir: str = "weights", progress: bool = True) -> Path:
    """A local file for a path (returned as is) or a URL (downloaded into the cache unless there)."""
    if not is_url(url_or_path):
        return Path(url_or_path).expanduser()
    url = str(url_or_path)
    target = cached_path(url, subdir)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = None
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
                tmp_name = tmp.name
                bar = None
                if progress:
                    from tqdm import tqdm

                    bar = tqdm(total=total, unit="B", unit_scale=True, desc=target.name.split("-", 1)[-1])
                while chunk := response.read(1 << 20):
                    tmp.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                if bar is not None:
                    bar.close()
        shutil.move(tmp.name, target)  # complete files only: a broken download leaves no cache entry
    except OSError as e:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise T2VError(f"cannot download {url}: {e}; download it by hand and pass the file instead") from None
    return target
