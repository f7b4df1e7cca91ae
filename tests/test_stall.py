"""The hang guard's worker signal: polls served by another thread never count as work; a worker
thread that computes does, and a blocked one does not. Nothing here reads a clock: the counting rule
is checked on CPU readings set by hand, the CPU reading on CPU time each thread burns."""

from __future__ import annotations

import queue
import threading
import time

from stall import WorkBetweenPolls, other_threads_cpu


def _server():
    """A thread that does ~10 ms of work for every request, as a TestClient's portal thread does."""
    requests, replies = queue.Queue(), queue.Queue()

    def serve():
        while requests.get() is not None:
            end = time.thread_time() + 0.01
            while time.thread_time() < end:
                pass
            replies.put("ok")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return requests, replies, t


def _poll(work: WorkBetweenPolls, requests, replies, polls: int) -> None:
    for _ in range(polls):
        with work.polling():
            requests.put("state?")
            replies.get()


def test_polls_and_a_blocked_worker_are_not_progress():
    # Real threads and the real CPU reading: polls served by another thread and a blocked worker add
    # no CPU between polls (polled back to back: no sleeping, no clock).
    requests, replies, server = _server()
    blocked = threading.Event()
    worker = threading.Thread(target=blocked.wait, daemon=True)  # a hung job: waits, uses no CPU
    worker.start()
    work = WorkBetweenPolls()
    _poll(work, requests, replies, 20)
    blocked.set()
    requests.put(None)
    assert work.busy_intervals == 0


def _burn(seconds: float) -> None:
    """Use `seconds` of the calling thread's own CPU time (however long that takes on the wall)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_computing_worker_is_progress_and_poll_work_is_not():
    cpu = [0.0]  # other threads' CPU seconds, set by hand: no timing involved
    work = WorkBetweenPolls(busy=0.002, cpu=lambda: cpu[0])

    def poll(served_cpu: float, between_cpu: float) -> None:
        with work.polling():
            cpu[0] += served_cpu  # the server thread answering this poll: left out
        cpu[0] += between_cpu  # the worker between this poll and the next

    for _ in range(5):
        poll(served_cpu=0.01, between_cpu=0.0)  # polls alone, however costly to serve
    poll(served_cpu=0.0, between_cpu=0.0)
    assert work.busy_intervals == 0
    for _ in range(5):
        poll(served_cpu=0.01, between_cpu=0.001)  # under `busy`: background noise, not work
    poll(served_cpu=0.0, between_cpu=0.0)
    assert work.busy_intervals == 0
    for _ in range(5):
        poll(served_cpu=0.01, between_cpu=0.005)  # over `busy`: a worker computing
    poll(served_cpu=0.0, between_cpu=0.0)
    assert work.busy_intervals == 5


def test_other_threads_cpu_counts_other_threads_only():
    # CPU time, not wall time: each thread burns a fixed amount of its own CPU, so a loaded machine
    # only makes this slower.
    before = other_threads_cpu()
    _burn(0.05)  # the polling thread's own work
    mine = other_threads_cpu() - before
    worker = threading.Thread(target=_burn, args=(0.05,))
    start = other_threads_cpu()
    worker.start()
    worker.join()
    theirs = other_threads_cpu() - start
    assert theirs >= 0.05 - 1e-3
    assert mine < 0.05  # the calling thread's 50 ms are left out
