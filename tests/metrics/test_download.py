"""Weights by URL: fetched once into the cache, then read from it (a file:// URL keeps this offline)."""

from __future__ import annotations

from t2v.metrics.download import cached_path, fetch


def test_url_is_cached_and_paths_pass_through(tmp_path, monkeypatch):
    monkeypatch.setenv("T2V_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "weights.bin"
    src.write_bytes(b"\x00\x01" * 1000)
    url = src.as_uri()
    got = fetch(url, progress=False)
    assert got == cached_path(url) and got.parent.parent == tmp_path / "cache" and got.read_bytes() == src.read_bytes()
    src.unlink()  # the second call must not need the source
    assert fetch(url, progress=False).read_bytes() == b"\x00\x01" * 1000
    assert fetch(tmp_path / "local.pt") == tmp_path / "local.pt"
