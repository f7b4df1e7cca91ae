"""The job queue of `t2v serve`: one worker thread per model, so one job at a time per model.

Progress and cancel reach inside the library's loops (sampling, DDIM inversion, the training loop)
without changing them: torch's global forward pre-hook sees every call of a `VideoUNet`, i.e. every
denoising step, inversion step and training step. The hook counts the calls of the worker's thread
and raises `Cancelled` at the next call once cancel was asked, so a cancel stops between two steps.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from t2v.errors import T2VError

log = logging.getLogger("t2v.serve")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


class Cancelled(Exception):
    """Raised inside a job's U-Net call after its cancel button was pressed."""


@dataclass
class Job:
    """One request: `run(job)` does the work and returns the result's description."""

    id: str
    kind: str  # "generate" or "edit"
    model: str  # the model key
    settings: dict[str, Any]
    run: Callable[["Job"], dict[str, Any]]
    state: str = QUEUED
    stage: str = "waiting in the queue"
    step: int = 0  # U-Net calls so far (denoising, inversion or training steps)
    total: int = 0  # U-Net calls the job will make
    error: Optional[str] = None
    result: Optional[dict[str, Any]] = None
    created: float = field(default_factory=time.time)
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def public(self, position: Optional[int] = None) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "model": self.model, "state": self.state, "stage": self.stage,
                "step": min(self.step, self.total) if self.total else self.step, "total": self.total,
                "error": self.error, "result": self.result, "position": position, "settings": self.settings}


@contextlib.contextmanager
def unet_calls(job: Job) -> Iterator[None]:
    """While inside: every `VideoUNet` forward on this thread adds 1 to `job.step`, and raises
    `Cancelled` instead once `job.cancel_event` is set (torch's global module forward pre-hook)."""
    import torch

    from t2v.models import VideoUNet

    me = threading.get_ident()

    def hook(module: Any, args: Any) -> None:
        if isinstance(module, VideoUNet):
            if threading.get_ident() != me:
                return
            if job.cancel_event.is_set():
                raise Cancelled()
            job.step += 1

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class ModelWorker:
    """A queue and the thread that runs its jobs one after the other."""

    def __init__(self, key: str, max_queue: int) -> None:
        self.key = key
        self.max_queue = max_queue
        self.waiting: "queue.Queue[Job]" = queue.Queue()
        self.current: Optional[Job] = None
        self.queued: list[Job] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name=f"t2v-serve-{key}", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        with self.lock:
            if len(self.queued) >= self.max_queue:
                raise T2VError(f"{len(self.queued)} jobs are already waiting for this model, this server's limit; "
                               "wait for one to finish (or restart t2v serve with a higher --max-queue)")
            self.queued.append(job)
        self.waiting.put(job)

    def position(self, job: Job) -> Optional[int]:
        with self.lock:
            return self.queued.index(job) + 1 if job in self.queued else None

    def _loop(self) -> None:
        while True:
            job = self.waiting.get()
            with self.lock:
                if job in self.queued:
                    self.queued.remove(job)
                if job.state != QUEUED:  # cancelled while waiting
                    continue
                self.current = job
                job.state, job.stage = RUNNING, "starting"
            try:
                with unet_calls(job):
                    job.result = job.run(job)
                job.state, job.stage = DONE, "done"
            except Cancelled:
                job.state, job.stage = CANCELLED, f"cancelled after {job.step} of {job.total} steps"
            except T2VError as exc:
                job.state, job.stage, job.error = FAILED, "failed", str(exc)
            except Exception as exc:  # a bug: keep serving, tell the page, log the traceback
                log.exception("job %s failed", job.id)
                first = str(exc).splitlines()[0] if str(exc) else ""
                job.state, job.stage, job.error = FAILED, "failed", f"internal error: {type(exc).__name__}: {first}"
            finally:
                self.current = None


class JobQueue:
    """Jobs by id, a `ModelWorker` per model key."""

    def __init__(self, max_queue: int, keep: int = 200) -> None:
        self.max_queue = max_queue
        self.keep = keep
        self.jobs: dict[str, Job] = {}
        self.workers: dict[str, ModelWorker] = {}
        self.lock = threading.Lock()

    def submit(self, job: Job) -> Job:
        with self.lock:
            worker = self.workers.get(job.model)
            if worker is None:
                worker = self.workers[job.model] = ModelWorker(job.model, self.max_queue)
            worker.submit(job)
            self.jobs[job.id] = job
            finished = [j for j in self.jobs.values() if j.state in (DONE, FAILED, CANCELLED)]
            for old in sorted(finished, key=lambda j: j.created)[: max(0, len(finished) - self.keep)]:
                del self.jobs[old.id]
        return job

    def recent(self, n: int = 50) -> list[Job]:
        """The newest `n` jobs (any state), newest first."""
        with self.lock:
            jobs = list(self.jobs.values())
        return sorted(jobs, key=lambda j: j.created, reverse=True)[:n]

    def get(self, job_id: str) -> Optional[Job]:
        return self.jobs.get(job_id)

    def public(self, job: Job) -> dict[str, Any]:
        worker = self.workers.get(job.model)
        return job.public(worker.position(job) if worker is not None and job.state == QUEUED else None)

    def cancel(self, job: Job) -> None:
        """A waiting job is dropped now; a running one stops at its next U-Net call."""
        job.cancel_event.set()
        worker = self.workers.get(job.model)
        if worker is not None:
            with worker.lock:
                if job.state == QUEUED:
                    job.state, job.stage = CANCELLED, "cancelled before it started"
                    if job in worker.queued:
                        worker.queued.remove(job)

