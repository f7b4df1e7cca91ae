"""The CLI's surface: help lists every command; a T2VError becomes one line and exit status 2."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from t2v.cli import app

runner = CliRunner()


def test_help_lists_every_command():
    out = runner.invoke(app, ["--help"]).output
    for cmd in ["generate", "train", "tune", "edit", "inflate", "eval", "data"]:
        assert cmd in out


def test_user_error_is_one_line_and_exit_2():
    # `python -m t2v` goes through main(), which turns T2VError into one stderr line.
    r = subprocess.run([sys.executable, "-m", "t2v", "edit"], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr
