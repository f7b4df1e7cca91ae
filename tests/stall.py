"""Hang guards for tests that wait on another process: they fail on a stall, never on total time.

Tests do not assert wall-clock times (timings live in benchmarks/). A test that waits for a server,
a training run or a job still needs to stop if the thing it waits for hangs; these helpers give up
only when nothing observable has changed for `stall` seconds, however long a slow machine takes
while work is still being done.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable


def wait_until(done: Callable[[], Any], progress: Callable[[], Any], stall: float, what: str,
               poll: float = 0.2) -> Any:
    """Poll until `done()` is truthy and return it; raise AssertionError when `progress()` (any
    comparable snapshot of the work) stays equal for `stall` seconds. `what` names the wait."""
    seen, since = progress(), time.monotonic()
    while True:
        result = done()
        if result:
            return result
        now = progress()
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since > stall:
            raise AssertionError(f"{what}: no progress for {stall:g} s (hung?); last state {now!r}")
        time.sleep(poll)


def tree_cpu_ticks(pid: int) -> int:
    """CPU time (clock ticks) used so far by process `pid` and its descendants; 0 without /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile, or no /proc here
    return total


def other_threads_cpu() -> float:
    """CPU seconds used so far by this process's threads other than the calling one: the in-process
    twin of `tree_cpu_ticks`, for waits on a worker thread (a slow thread that is working keeps
    changing it; the polling thread's own time is left out, so polling alone cannot look like progress)."""
    return time.process_time() - time.thread_time()


class WorkBetweenPolls:
    """Progress of work on this process's other threads (a job queue's worker) that a poller can use
    when its own polls are served by another thread of the same process (a TestClient's portal):
    `busy_intervals` counts the intervals between polls in which the other threads used more than
    `busy` CPU seconds. CPU spent while a poll is served (inside `polling()`) is left out, so polling
    alone never looks like progress, and a worker that is blocked (hung) adds nothing; a worker that
    computes, however slowly, keeps adding intervals. Only CPU time is read (no clock): on a slow or
    loaded machine the intervals stretch and a working thread's CPU per interval grows with them.
    `cpu` is the reading (other threads' CPU seconds), replaceable so that the rule can be checked
    on readings set by hand."""

    def __init__(self, busy: float = 0.005, cpu: Callable[[], float] = other_threads_cpu) -> None:
        self.busy, self.busy_intervals = busy, 0
        self._read_cpu = cpu
        self._cpu: float | None = None  # until the first poll ends: no interval between polls yet

    @contextmanager
    def polling(self):
        cpu = self._read_cpu()
        if self._cpu is not None and cpu - self._cpu > self.busy:
            self.busy_intervals += 1
        try:
            yield
        finally:
            self._cpu = self._read_cpu()


def run_with_stall_guard(cmd: list[str], stall: float = 300.0, **popen: Any) -> subprocess.CompletedProcess:
    """`subprocess.run(cmd, capture_output=True, text=True, **popen)` that is killed only when the
    process tree neither uses CPU nor writes output for `stall` seconds."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, **popen)
        try:
            wait_until(lambda: proc.poll() is not None,
                       lambda: (tree_cpu_ticks(proc.pid), os.fstat(out.fileno()).st_size, os.fstat(err.fileno()).st_size),
                       stall, f"{' '.join(map(str, cmd[:4]))} ...", poll=0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())
