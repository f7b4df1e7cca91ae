"""End to end in a real headless browser: Debian's chromium driven by Playwright's Python package.

`t2v serve` runs as a subprocess on a free port; the page is opened, a limit message and a refused
upload are checked on the page, a long job is cancelled with the button, then a prompt is generated with the default model and the test
waits until the <video> element plays; the played file's frame count is read back server-side.
The screenshot is kept at artifacts/serve-e2e.png (git-ignored).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from stall import tree_cpu_ticks, wait_until

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACT = ROOT / "artifacts" / "serve-e2e.png"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FRAMES = 8  # asked for on the page (the model's default is 16)

try:
    from playwright import sync_api
except ImportError:
    sync_api = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What the page shows of a job and its video: any change counts as progress for `_wait_on_page`
# (before the page has loaded, the elements are missing: `?.` reads them as undefined).
PAGE_PROGRESS = ("() => { const v = document.getElementById('result-video');"
                 " return [document.readyState, document.getElementById('job-state')?.textContent,"
                 " document.getElementById('job-steps')?.textContent, String(document.getElementById('job-progress')?.value),"
                 " v ? v.readyState + ':' + v.currentTime : ''].join('|'); }")


def _shown(selector: str) -> str:
    """A JS condition: an element matching the CSS `selector` exists and is not hidden."""
    return f"() => {{ const e = document.querySelector({json.dumps(selector)}); return !!e && !e.hidden; }}"


def _wait_on_page(page, server, condition: str, stall: float = 120.0) -> None:
    """Wait until the JS `condition` holds; fail only when neither the page (its job, its video) nor
    the server (CPU, log) shows any change for `stall` seconds (a hang), however long a slow machine
    takes. Playwright's own waits are not used: each has a fixed deadline (30 s by default)."""
    wait_until(lambda: page.evaluate(condition), lambda: (page.evaluate(PAGE_PROGRESS), server.progress()), stall,
               f"page condition {condition[:60]}")


@dataclass
class Server:
    url: str
    results: Path
    progress: Callable[[], tuple]  # (CPU ticks of the server's process tree, size of its log)


@pytest.fixture
def server(tmp_path):
    """`python -m t2v serve` on a free loopback port: its base URL, results folder and progress."""
    port, results = _free_port(), tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "t2v", "serve", "--port", str(port), "--results", str(results)],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"t2v serve exited with {proc.returncode}: {(tmp_path / 'server.log').read_text()}")
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2) as r:
                return bool(json.load(r)["ok"])
        except OSError:
            return False

    def progress() -> tuple:
        return tree_cpu_ticks(proc.pid), (tmp_path / "server.log").stat().st_size

    try:
        # A hang guard, not a start-up time limit: gives up only when the server neither uses CPU
        # nor writes its log for 120 s.
        wait_until(healthy, progress, 120, "t2v serve starting", poll=0.3)
        yield Server(url, results, progress)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (.ci/run installs Debian's chromium)")
@pytest.mark.skipif(sync_api is None, reason="the playwright package is absent (pip install playwright; the test extra has it)")
def test_generate_in_a_headless_browser(server, tmp_path):
    from t2v.data.video_io import read_video

    url, results = server.url, server.results
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context.set_default_timeout(0)  # no deadlines: every wait below is stall-guarded (`_wait_on_page`)
        try:
            page = context.new_page()
            page.goto(url, wait_until="commit")
            _wait_on_page(page, server, _shown("body[data-ready='1']"))
            assert page.input_value("#num_frames") == "16"  # the default model's setting

            # 1. A limit: the server's message, on the page.
            page.fill("#prompt", "a red circle moving right")
            page.fill("#num_frames", "999")
            page.click("#generate")
            _wait_on_page(page, server, _shown("#generate-error"))
            assert "frames 999 is over this server's limit of 32" in page.inner_text("#generate-error")
            assert "--max-frames" in page.inner_text("#generate-error")

            # 2. A file that is not a video is refused with a message.
            fake = tmp_path / "notes.mp4"
            fake.write_text("not a video\n" * 50)
            page.set_input_files("#clip", str(fake))
            _wait_on_page(page, server, _shown("#upload-error"))
            assert "not a video" in page.inner_text("#upload-error")
            assert page.is_disabled("#tune")

            # 3. The cancel button stops a long job between two steps.
            page.fill("#num_frames", "2")
            page.fill("#steps", "100")
            page.click("#generate")
            _wait_on_page(page, server, "() => document.getElementById('job-progress').value >= 2")
            page.click("#cancel")
            _wait_on_page(page, server, "() => document.getElementById('job-state').textContent.startsWith('cancelled')")
            done = int(page.inner_text("#job-state").split()[2])  # "cancelled after N of 100 steps"
            assert 2 <= done < 100 and page.inner_text("#job-state").endswith("of 100 steps")
            assert page.is_disabled("#cancel")

            # 4. Generate, watch progress, wait until the video plays.
            page.fill("#steps", "15")
            page.fill("#num_frames", str(FRAMES))
            page.click("#generate")
            _wait_on_page(page, server, "() => document.getElementById('generate-error').hidden")
            _wait_on_page(page, server, "() => { const v = document.getElementById('result-video');"
                                " return v && v.dataset.file && v.readyState >= 2 && (v.currentTime > 0 || v.ended); }")
            assert page.inner_text("#job-state") == "done"
            assert page.inner_text("#job-steps") == "15 / 15 steps"
            rid = page.get_attribute("#result-video", "data-result")
            name = page.get_attribute("#result-video", "data-file")
            src = page.evaluate("document.getElementById('result-video').currentSrc")
            assert src == f"{url}/files/{rid}/{name}"
            _wait_on_page(page, server, "() => [...document.querySelectorAll('#results li')]"  # listed with earlier results
                                        f".some(li => li.textContent.includes({json.dumps(rid)}))")
            assert page.get_attribute("#download", "href") == f"/files/{rid}/{name}?download=1"
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACT), full_page=True)
            print(f"screenshot: {ARTIFACT}")
        finally:
            context.close()

    frames, fps = read_video(results / rid / name)
    assert frames.shape == (FRAMES, 64, 64, 3) and fps == pytest.approx(8.0)
    settings = json.loads((results / rid / "video.json").read_text())
    assert settings["num_frames"] == FRAMES and settings["prompt"] == "a red circle moving right"
    assert ARTIFACT.stat().st_size > 10_000
