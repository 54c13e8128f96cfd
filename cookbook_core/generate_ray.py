"""Large generations on Ray: the engine's fixed blocks made by Ray tasks.

:func:`cookbook_core.generate.generate` with ``ray=RayGenerate(...)`` hands its blocks
to :func:`blocks` instead of its local process pool.  The blocks are the same fixed
blocks (their number and content do not depend on who makes them; sample ``k`` of a
template is a pure function of template, params, seed and ``k``), cut into contiguous
runs, one Ray task per run.  A task builds the engine's block maker from the resolved
sources (template files are loaded by path; untrusted ones are drawn by the task's own
sandboxed child) and makes its blocks: a JSONL block is written as a shard file
``<b>.part`` into the run's hidden temporary folder, a Parquet (or ``datasets``) block
is returned as its three columns.  The driver takes the results in block order and
the engine then splices the shards (or writes the row groups) into one data file,
writes one ``manifest.json`` and publishes the folder atomically, exactly as a local
run does, so the data file is byte-identical to the local engine's for the same
config (``tests/test_ray.py``).

Shared filesystem: the output folder's parent, the template files and the token-space
files must be at the same absolute paths on every node (see docs/SCALING.md).  At most
``window`` runs are in flight, so unspliced shards on disk stay bounded.  What it does
not do: split one block across tasks, or retry a task that died (the run fails and
leaves nothing under the final name, as any failed generation).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookbook_core import raylink
from cookbook_core.errors import BadInput

BlockResult = tuple[Any, ...]  # the engine's (b, payload | shard length, faults, attempts, tb)


@dataclass
class RayGenerate:
    """Where and how generation blocks run on Ray."""

    address: str | None = None  # as cookbook_core.raylink.connected
    cpus_per_task: float = 1.0
    tasks_per_cpu: int = 4  # runs of blocks per cluster CPU (smaller runs: better balance)

    def check(self) -> None:
        if self.cpus_per_task <= 0 or self.tasks_per_cpu < 1:
            raise BadInput("Ray generation needs cpus_per_task > 0 and tasks_per_cpu >= 1")


def runs_of(n_blocks: int, n_runs: int) -> list[range]:
    """Blocks ``0..n_blocks-1`` cut into at most ``n_runs`` contiguous, near-equal runs."""
    n_runs = max(1, min(n_runs, n_blocks))
    bounds = [round(i * n_blocks / n_runs) for i in range(n_runs + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def make_run(
    resolved: list[Any],
    counts: list[int],
    cfg: dict[str, Any],
    run: range,
    spill: str | None,
    env: dict[str, str],
) -> list[BlockResult]:
    """One Ray task: blocks ``run`` made with the engine's block maker.  A JSONL payload
    goes to ``<spill>/<b>.part`` and its length is returned in its place; a block whose
    sample failed every retry ends the run (the driver raises)."""
    os.environ.update(env)
    from cookbook_core import generate as engine

    maker = engine._BlockMaker(resolved, counts, cfg)
    out: list[BlockResult] = []
    try:
        for b in run:
            res = maker.make(b)
            payload = res[1]
            if spill is not None and isinstance(payload, bytes):
                fd = os.open(
                    os.path.join(spill, f"{b}.part"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
                )
                try:
                    engine._write_all(fd, payload)
                    os.fsync(fd)  # another node may read it: make it durable first
                finally:
                    os.close(fd)
                res = (b, len(payload), *res[2:])
            out.append(res)
            if payload is None:
                break
    finally:
        maker.close()
    return out


def blocks(
    resolved: list[Any],
    counts: list[int],
    cfg: dict[str, Any],
    n_blocks: int,
    spill: Path | None,
    options: RayGenerate,
) -> Iterator[BlockResult]:
    """Every block's result in block order, made by Ray tasks (see the module docstring)."""
    options.check()
    with raylink.connected(options.address) as ray:
        cpus = max(1.0, float(ray.cluster_resources().get("CPU", 1)))
        slots = max(1, int(cpus // options.cpus_per_task))
        runs = runs_of(n_blocks, slots * options.tasks_per_cpu)
        task = ray.remote(make_run).options(
            num_cpus=options.cpus_per_task, max_retries=0, name="generate blocks"
        )
        env = raylink.task_env(options.cpus_per_task)
        resolved_ref = ray.put(resolved)
        window = 2 * slots
        pending: list[Any] = []
        nxt = 0
        try:
            while nxt < len(runs) or pending:
                while nxt < len(runs) and len(pending) < window:
                    spill_s = str(spill) if spill is not None else None
                    pending.append(task.remote(resolved_ref, counts, cfg, runs[nxt], spill_s, env))
                    nxt += 1
                results = ray.get(pending.pop(0))
                yield from results
                if results and results[-1][1] is None:
                    return  # the engine raises for the exhausted sample
        finally:
            for ref in pending:
                ray.cancel(ref)
