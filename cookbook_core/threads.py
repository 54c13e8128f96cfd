"""CPU threads for model work when several jobs share the machine.

Two processes that each run torch with one OpenMP thread per core, and OpenMP's
default spin-waiting between parallel regions, slow each other down several times
over (measured on this project's 2-core machine: 32 generated tokens took 36.6 s
with 2 threads beside another job, 7.2 s with 2 threads and
``OMP_WAIT_POLICY=PASSIVE``).  So every process that runs a model here sleeps
instead of spinning (``OMP_WAIT_POLICY=PASSIVE``, unless the user set it), and a
job launched while others run gets an equal share of the cores
(:func:`share`).  The settings must be in the environment before torch starts
OpenMP: :func:`worker_env` is applied by the job launcher, :func:`configure_process`
at the top of the command line and the studio.  This module imports nothing heavy.
"""

from __future__ import annotations

import os

WAIT_POLICY = "PASSIVE"


def cpu_count() -> int:
    """Cores this process may use (its affinity mask when the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def share(concurrent: int, cores: int | None = None) -> int:
    """Threads for one of ``concurrent`` model processes sharing ``cores`` (at least 1)."""
    cores = cores if cores is not None else cpu_count()
    return max(1, cores // max(1, concurrent))


def worker_env(env: dict[str, str], concurrent: int) -> dict[str, str]:
    """``env`` with the thread settings for a worker started beside ``concurrent - 1`` others.

    Explicit user settings (``OMP_NUM_THREADS``, ``OMP_WAIT_POLICY``) are kept.
    """
    out = dict(env)
    out.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
    if "OMP_NUM_THREADS" not in env:
        out["OMP_NUM_THREADS"] = str(share(concurrent))
    return out


def configure_process() -> None:
    """Sleep-waiting OpenMP for this process (call before torch is imported)."""
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
