"""The worker process of one job: ``python -m cookbook_core.jobs.worker JOB_ID``.

Started by :func:`cookbook_core.jobs.store.pump` in its own process group, with stdout and
stderr going to the run directory's ``log.txt``.  It records its pid, runs the job
kind's runner with a :class:`JobContext`, beats a heartbeat (and mirrors progress into
``status.json``) from a background thread, and writes the final state:
``succeeded``, ``failed`` (the reason is the exception; the traceback goes to the
log) or ``cancelled``.  SIGTERM (what ``jobs.cancel`` sends) sets a flag that
runners poll (training checkpoints at the next step boundary and returns); the
runner's own checks raise :class:`~cookbook_core.jobs.store.JobCancelled` otherwise.
Inside :meth:`JobContext.interruptible` (phases with nothing to save, such as importing
torch and loading a model, which poll nothing for many seconds) the signal raises
:class:`~cookbook_core.jobs.store.JobCancelled` at once instead, so a cancel takes effect
within about a second whenever it comes.  On
exit it pumps the queue so the next queued job starts without any daemon.

The runners themselves live with their kinds (each a ``run_job`` function, declared in
:data:`cookbook_core.jobs.store.BUILTIN_KINDS`).  It does not decide what runs when
(``jobs.store``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cookbook_core import storage
from cookbook_core.jobs import store as jobs

PROGRESS_EVERY_S = 1.0


class JobContext:
    """What a runner gets: the job's config, run directory, and progress/cancel hooks."""

    def __init__(self, job: jobs.Job) -> None:
        self.job_id = job.id
        self.kind = job.kind
        self.config: dict[str, Any] = job.config
        self.run_dir: Path = job.run_dir
        self.resume: bool = job.resume
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._progress: dict[str, Any] = {}
        self._last_write = 0.0
        self._interruptible = 0

    def cancelled(self) -> bool:
        """True once a cancel was requested (SIGTERM or the store's flag)."""
        return self._cancel.is_set()

    def request_cancel(self) -> None:
        self._cancel.set()

    def _on_signal(self, *_: Any) -> None:
        """SIGTERM/SIGINT (run in the main thread): flag the cancel; raise
        :class:`JobCancelled` when the main thread is in an :meth:`interruptible` phase."""
        self._cancel.set()
        if self._interruptible:
            self._interruptible = 0  # raise once; unwinding may pass other such blocks
            raise jobs.JobCancelled()

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A phase with nothing to save (imports, model loading, tokenizing): a cancel
        that arrives inside it raises :class:`JobCancelled` at once (one already requested
        raises on entry).  Use it only in the worker's main thread."""
        self.check_cancelled()
        self._interruptible += 1
        try:
            yield
        finally:
            self._interruptible = max(0, self._interruptible - 1)
        self.check_cancelled()

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` when a cancel was requested."""
        if self.cancelled():
            raise jobs.JobCancelled()

    def progress(self, done: float, total: float | None = None, **info: Any) -> None:
        """Report progress (written to the store at most once a second)."""
        with self._lock:
            self._progress = {"done": done, "total": total, **info, "at": time.time()}
        if time.time() - self._last_write >= PROGRESS_EVERY_S or (total and done >= total):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            snapshot = dict(self._progress) if self._progress else None
        self._last_write = time.time()
        if jobs.heartbeat(self.job_id, snapshot):
            self._cancel.set()
        jobs.write_status(jobs.get(self.job_id))


def _heartbeat_loop(ctx: JobContext, stop: threading.Event) -> None:
    while not stop.wait(jobs.HEARTBEAT_S):
        try:
            ctx.flush()
        except Exception:  # noqa: BLE001 - a busy database must not kill the job
            traceback.print_exc()


def run(job_id: str) -> int:
    """Run one job to its end; the exit code is 0 unless the job failed."""
    job = jobs.claim_for_worker(job_id, os.getpid())
    if job is None:
        print(f"job {job_id} is no longer running; nothing to do", flush=True)
        jobs.pump()
        return 0
    ctx = JobContext(job)
    signal.signal(signal.SIGTERM, ctx._on_signal)
    signal.signal(signal.SIGINT, ctx._on_signal)
    if _EARLY_STOP.is_set():  # a cancel that arrived while the worker was starting
        ctx.request_cancel()
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat_loop, args=(ctx, stop), daemon=True)
    beat.start()
    print(
        f"[{time.strftime('%H:%M:%S')}] job {job.id} ({job.kind}) started, pid {os.getpid()}"
        f"{', resuming' if job.resume else ''}",
        flush=True,
    )
    code = 0
    try:
        # the registry's runner (the row's copy may predate a module's move)
        runner = jobs.KINDS[job.kind].runner if job.kind in jobs.KINDS else job.runner
        resumable = job.kind in jobs.KINDS and jobs.KINDS[job.kind].resumable
        result = jobs._import(runner)(ctx)
        if isinstance(result, dict):
            storage.write_json(job.run_dir / "result.json", result, default=str)
        ctx.flush()
        if (isinstance(result, dict) and result.get("status") == "stopped") or ctx.cancelled():
            jobs.finish(
                job.id,
                "cancelled",
                reason="cancelled (checkpoint written)" if resumable else "cancelled",
            )
        else:
            jobs.finish(job.id, "succeeded")
    except jobs.JobCancelled:
        jobs.finish(job.id, "cancelled", reason="cancelled")
    except BaseException as exc:  # noqa: BLE001 - every failure is reported with its reason
        traceback.print_exc()
        jobs.finish(job.id, "failed", reason=_reason(exc))
        code = 1
    finally:
        stop.set()
    print(f"[{time.strftime('%H:%M:%S')}] job {job.id} is {jobs.get(job.id).state}", flush=True)
    jobs.pump()
    return code


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "out of memory (MemoryError); earlier checkpoints are kept"
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:500]


_EARLY_STOP = threading.Event()


def main(argv: list[str] | None = None) -> int:
    # Until the job's context exists, a SIGTERM only records the request (the default
    # action would kill the worker before it could mark the job cancelled).
    signal.signal(signal.SIGTERM, lambda *_: _EARLY_STOP.set())
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m cookbook_core.jobs.worker JOB_ID", file=sys.stderr)
        return 2
    return run(argv[0])


if __name__ == "__main__":
    sys.exit(main())
