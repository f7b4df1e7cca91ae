"""The CLI's surface: help lists every command; a T2VError becomes one line and exit status 2."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from t2v import cli
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


# ---- start-up: the collector around the heavy imports (t2v.cli.startup_imports, entry_point) -------
@pytest.fixture
def thawed(monkeypatch):
    """Restore the collector after a test that freezes it (this process is pytest, not the command)."""
    monkeypatch.setattr(cli, "_process_is_command", False)
    yield
    gc.unfreeze()
    gc.enable()


def test_in_process_commands_leave_the_collector_alone():
    before = gc.get_freeze_count()
    r = runner.invoke(app, ["generate", ""])  # runs generate's imports, then the empty-prompt error
    assert r.exit_code != 0 and "empty" in str(r.exception).lower()
    assert gc.isenabled() and gc.get_freeze_count() == before


def test_startup_imports_collect_nothing_then_freeze(thawed):
    cli._process_is_command = True
    before = gc.get_freeze_count()
    made = []
    with cli.startup_imports():
        assert not gc.isenabled()
        made.extend([i] for i in range(1000))  # 1000 tracked lists, alive after the block
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + 1000
    with pytest.raises(RuntimeError):  # an import error inside still re-enables the collector
        with cli.startup_imports():
            raise RuntimeError("no module")
    assert gc.isenabled()


def test_main_in_process_leaves_the_collector_alone(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["t2v", "generate", ""])
    before = gc.get_freeze_count()
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    assert not cli._process_is_command and gc.isenabled() and gc.get_freeze_count() == before


def test_the_executable_freezes_the_heap_on_the_way_out(thawed, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["t2v", "--help"])
    gc.unfreeze()
    with pytest.raises(SystemExit) as exit_info:
        cli.entry_point()
    assert exit_info.value.code == 0
    assert cli._process_is_command and gc.get_freeze_count() > 10_000
