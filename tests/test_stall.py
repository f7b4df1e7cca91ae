"""The hang guard's worker signal: polls served by another thread never count as work; a worker
thread that computes does, and a blocked one does not."""

from __future__ import annotations

import queue
import threading
import time

from stall import WorkBetweenPolls


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
        time.sleep(0.02)


def test_polls_and_a_blocked_worker_are_not_progress():
    requests, replies, server = _server()
    blocked = threading.Event()
    worker = threading.Thread(target=blocked.wait, daemon=True)  # a hung job: waits, uses no CPU
    worker.start()
    work = WorkBetweenPolls()
    _poll(work, requests, replies, 20)
    blocked.set()
    requests.put(None)
    assert work.busy_intervals == 0


def test_a_computing_worker_is_progress():
    requests, replies, server = _server()
    stop = threading.Event()

    def compute():
        while not stop.is_set():
            sum(range(10_000))

    worker = threading.Thread(target=compute, daemon=True)
    worker.start()
    work = WorkBetweenPolls()
    _poll(work, requests, replies, 20)
    stop.set()
    requests.put(None)
    assert work.busy_intervals >= 10  # most of the 20 intervals between polls saw the worker compute
