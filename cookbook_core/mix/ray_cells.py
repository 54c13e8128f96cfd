"""Cells on Ray: every missing cell of a sweep or an experiment becomes one Ray task.

:func:`run_all` is the Ray counterpart of :func:`cookbook_core.mix.cells.run_all`: the
driver (this process) connects to a Ray cluster (``address``: ``None`` starts a
private local one unless ``RAY_ADDRESS`` names one, ``"auto"`` finds a running
cluster on this machine, ``HOST:PORT`` a cluster's head), skips the cells that are
complete, and submits each remaining cell once (cells that share a key share a task)
as a task that calls :func:`cookbook_core.mix.cells.run` on a worker.  So the cell
keys, the folders and the stage-by-stage reuse and resume are the local executor's:
a cell finished on Ray is never recomputed locally and the reverse, and a cell whose
task died (a killed worker, a lost node) continues from its last finished stage and
training checkpoint on the next run, on either executor.

* **Shared filesystem.** The worker writes into ``<home>/cells/...`` exactly as a
  local run does, so every node must see the driver's workspace (``COOKBOOK_HOME``) at
  the same absolute path (NFS, a cluster filesystem, or one machine), run the same
  project install (``pip install -e .`` at the same path, with the ``ray`` extra), and
  see the evaluation data, template folders and natural-language files the cells
  name.  The driver passes its ``COOKBOOK_*``, ``HF_*`` and ``TRANSFORMERS_*``
  variables (``COOKBOOK_HOME`` made absolute) and its working directory to the tasks.
  Object storage (an fsspec URL) is not supported.
* **Resources** (:func:`resources`): a cell asks for ``num_cpus`` (default 1; Ray's
  ``OMP_NUM_THREADS`` and torch use as many threads), ``num_gpus`` (default 1 when the
  cluster has GPUs, else 0) and ``memory`` estimated from the model's weight bytes, the
  method (LoRA or full: Adam state), the batch size and max length (activations) and
  the evaluation's generation length; each can be overridden (:class:`RayOptions`).
  A request larger than every node is refused before anything is submitted.
* **State.** Each cell's folder gets ``ray.json`` (``submitted``, ``running`` with the
  node, pid and stage progress, then ``completed``, ``stopped``, ``failed`` or
  ``lost``) and the task's output in ``ray-log.txt``; :func:`list_cells` reads them
  back for the Jobs page.  The driver follows ``ray.json`` for progress.
* **Stopping.** ``should_stop`` (or Ctrl-C) touches ``ray-stop`` in the running cells
  (training writes a checkpoint and the task returns ``stopped``) and cancels the
  tasks that have not started (``ray.cancel``); :func:`request_stop` does the same for
  one cell from another process (the Jobs page).

What it does not do: start or size a Ray cluster (use ``ray start`` or a cluster
launcher), copy files between nodes, or run anything but cells (``generate`` has its
own Ray path).  ``ray`` is an optional dependency (``requirements-ray.txt``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cookbook_core import configs, paths, raylink, storage
from cookbook_core.errors import BadInput, CookbookError
from cookbook_core.mix import cells
from cookbook_core.train.config import TrainConfig

STATE_FILE = "ray.json"
LOG_FILE = "ray-log.txt"
STOP_FILE = "ray-stop"
POLL_S = 1.0
STALE_S = 120.0  # a "running" cell whose state has not moved for this long is shown as lost
GIB = 1024**3
OVERHEAD_BYTES = 1 * GIB  # Python, torch and the tokenizer in a worker
DEFAULT_WEIGHT_BYTES = 2 * GIB  # a model whose weights cannot be found locally

Progress = Callable[[str, str, int, int], None]  # (cell, stage, done, total)


class CellsFailed(CookbookError):
    """Some cells did not finish on Ray (the others are kept; a rerun resumes them)."""

    def __init__(self, message: str, statuses: dict[str, str]) -> None:
        super().__init__(message)
        self.statuses = statuses


@dataclass
class RayOptions:
    """How cells run on Ray.  ``None`` for a resource: derived from the cell."""

    address: str | None = None  # None: RAY_ADDRESS or a new local cluster; "auto"; HOST:PORT
    cpus: float | None = None  # per cell (default 1)
    gpus: float | None = None  # per cell (default: 1 when the cluster has GPUs)
    memory_gb: float | None = None  # per cell (default: estimated, see resources())
    retries: int = 1  # automatic re-runs of a cell whose worker died (each one resumes)

    def check(self) -> None:
        for name in ("cpus", "gpus", "memory_gb"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise BadInput(f"--{name.replace('_gb', '')}-per-cell must be >= 0, got {value}")
        if self.retries < 0:
            raise BadInput(f"--ray-retries must be >= 0, got {self.retries}")


import_ray = raylink.import_ray  # the ray module, or BadInput saying how to install it
connected = raylink.connected  # ray connected for a block (see cookbook_core.raylink)


# ----------------------------------------------------------------------------------
# Resource requests


def _model_facts(model: str) -> tuple[int, dict[str, Any]]:
    """(weight bytes, config.json) of a model found locally; defaults when not found."""
    from cookbook_core.train import models

    folder: Path | None = None
    with contextlib.suppress(BadInput):
        res = models.resolve(model)
        if Path(res.source).is_dir():
            folder = Path(res.source)
    if folder is None:
        return DEFAULT_WEIGHT_BYTES, {}
    weights = sum(f.stat().st_size for f in folder.glob("*.safetensors")) or sum(
        f.stat().st_size for f in folder.glob("*.bin")
    )
    if not weights and (gguf := _embedded_gguf_bytes(model)):
        weights = gguf * 4  # a quantized file, dequantized to fp32 when loaded
    cfg: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        cfg = json.loads((folder / "config.json").read_text())
    return weights or DEFAULT_WEIGHT_BYTES, cfg


def _embedded_gguf_bytes(model: str) -> int:
    from cookbook_core.train import models

    if model.lower() not in models.EMBEDDED_ALIASES:
        return 0
    with contextlib.suppress(Exception):
        return paths.embedded_model_gguf().stat().st_size
    return 0


def memory_bytes(spec: cells.CellSpec, settings: cells.EvalSettings) -> int:
    """Estimated peak memory of one cell: weights (x4 for full fine-tuning: gradients and
    Adam's two moments), activations of one training batch without gradient
    checkpointing (~68 bytes per token, layer and hidden unit in fp32, plus the logits),
    and the evaluation's KV cache; plus a fixed overhead.  An upper-end estimate."""
    weights, cfg = _model_facts(spec.model)
    hidden = int(cfg.get("hidden_size") or 2048)
    layers = int(cfg.get("num_hidden_layers") or 24)
    vocab = int(cfg.get("vocab_size") or 50_000)
    eval_tokens = 2048 + (settings.max_new_tokens or 256)
    kv = 2 * layers * hidden * 4 * eval_tokens * 8  # 8 sequences of fp32 keys and values
    need = weights + kv
    if not spec.is_base:
        opts = {**{k: configs.default(TrainConfig, k) for k in cells.TRAIN_OPTIONS}, **spec.train}
        tokens = int(opts["batch_size"]) * int(opts["max_length"])
        act = tokens * (layers * hidden * 68 + vocab * 4)
        state = 3 * weights if opts["method"] == "full" else weights // 20
        need = max(need, weights + state + act)
    return int(need + OVERHEAD_BYTES)


def resources(
    spec: cells.CellSpec, settings: cells.EvalSettings, opts: RayOptions, cluster_gpus: float
) -> dict[str, float]:
    """The ``num_cpus``/``num_gpus``/``memory`` a cell's task asks Ray for."""
    gpus = opts.gpus if opts.gpus is not None else (1.0 if cluster_gpus > 0 else 0.0)
    cpus = opts.cpus if opts.cpus is not None else 1.0
    memory = opts.memory_gb * GIB if opts.memory_gb is not None else memory_bytes(spec, settings)
    return {"num_cpus": float(cpus), "num_gpus": float(gpus), "memory": float(int(memory))}


def _check_fits(
    request: Mapping[str, float], nodes: Sequence[Mapping[str, Any]], name: str
) -> None:
    keys = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    for node in alive:
        if all(request[k] <= float(node.get(r, 0)) for k, r in keys.items() if request[k] > 0):
            return
    have = "; ".join(
        f"CPU {n.get('CPU', 0):g}, GPU {n.get('GPU', 0):g}, memory {n.get('memory', 0) / GIB:.1f} GiB"
        for n in alive
    )
    raise BadInput(
        f"cell {name!r} asks for CPU {request['num_cpus']:g}, GPU {request['num_gpus']:g}, "
        f"memory {request['memory'] / GIB:.1f} GiB, more than any node has ({have or 'no nodes'}): "
        "lower --cpus-per-cell/--gpus-per-cell/--memory-per-cell"
    )


# ----------------------------------------------------------------------------------
# State files (shared with the Jobs page)


def read_state(cdir: Path | str) -> dict[str, Any] | None:
    """A cell folder's ``ray.json`` (``None`` when it never ran on Ray)."""
    f = Path(cdir) / STATE_FILE
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _write_state(cdir: Path, **fields: Any) -> None:
    state = read_state(cdir) or {}
    state.update(fields, updated=time.time())
    storage.write_json(cdir / STATE_FILE, state, default=str)


def shown_state(state: Mapping[str, Any], now: float | None = None) -> str:
    """The state to show: ``running`` whose file has not moved for :data:`STALE_S` is
    ``lost`` (its worker died without anyone noticing)."""
    s = str(state.get("state", "?"))
    now = time.time() if now is None else now
    if s == "running" and now - float(state.get("updated") or 0) > STALE_S:
        return "lost"
    return s


def list_cells() -> list[dict[str, Any]]:
    """Every cell that ran (or runs) on Ray: its ``ray.json`` plus ``cell``, ``cell_dir``
    and ``shown`` (:func:`shown_state`), most recently updated first."""
    root = cells.cells_root()
    out = []
    if root.is_dir():
        for d in root.iterdir():
            state = read_state(d)
            if state is None:
                continue
            out.append({**state, "cell_dir": str(d), "shown": shown_state(state)})
    return sorted(out, key=lambda s: -float(s.get("updated") or 0))


def request_stop(cdir: Path | str) -> None:
    """Ask the cell's task to stop (training checkpoints first; a task that has not
    started stops at its first check)."""
    (Path(cdir) / STOP_FILE).touch()


def table(states: Sequence[Mapping[str, Any]], now: float | None = None) -> list[dict[str, Any]]:
    """Rows for the Jobs page: one per :func:`list_cells` entry."""
    now = time.time() if now is None else now
    rows = []
    for s in states:
        res = s.get("resources") or {}
        total = s.get("total")
        done = s.get("done")
        shown = s.get("shown") or shown_state(s, now)
        rows.append(
            {
                "cell": s.get("cell", Path(str(s.get("cell_dir", ""))).name),
                "state": shown,
                "stage": s.get("stage") if shown == "running" else None,
                "progress": round(100 * float(done) / float(total), 1)
                if shown == "running" and total and done is not None
                else (100.0 if shown == "completed" else None),
                "node": s.get("node"),
                "pid": s.get("pid"),
                "cpus": res.get("num_cpus"),
                "gpus": res.get("num_gpus"),
                "memory GiB": round(float(res["memory"]) / GIB, 1) if res.get("memory") else None,
                "updated s ago": round(now - float(s.get("updated") or now)),
                "error": s.get("error"),
                "folder": s.get("cell_dir"),
            }
        )
    return rows


# ----------------------------------------------------------------------------------
# The task (runs on a Ray worker)


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors too) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with open(path, "ab", buffering=0) as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_cell_task(
    spec_dict: dict[str, Any], settings_dict: dict[str, Any], env: dict[str, str], cwd: str
) -> dict[str, Any]:
    """One cell on a Ray worker: :func:`cells.run` with the driver's workspace, writing
    ``ray.json`` as it goes.  Returns ``{status, cell_dir, key, node, pid, seconds}``."""
    os.environ.update(env)
    if Path(cwd).is_dir():
        os.chdir(cwd)
    threads_n = int(env.get("OMP_NUM_THREADS") or 0)
    if threads_n:
        import torch

        torch.set_num_threads(threads_n)
    spec = cells.spec_from_dict(spec_dict)
    settings = cells.EvalSettings(**settings_dict)
    cdir = cells.cell_dir(spec)
    cdir.mkdir(parents=True, exist_ok=True)
    stop_file = cdir / STOP_FILE  # the driver removed a stale one when it submitted the cell
    node = socket.gethostname()
    started = time.time()
    if stop_file.exists():  # stopped (the Jobs page) before it started: nothing to save
        stop_file.unlink(missing_ok=True)
        _write_state(cdir, state="stopped", node=node, pid=os.getpid(), seconds=0.0)
        return {
            "status": "stopped",
            "cell_dir": str(cdir),
            "key": spec.key(),
            "node": node,
            "pid": os.getpid(),
            "seconds": 0.0,
        }
    _write_state(cdir, state="running", node=node, pid=os.getpid(), started=started, error=None)
    last = [0.0]
    lock = threading.Lock()

    def progress(stage: str, done: int, total: int, **info: Any) -> None:
        now = time.time()
        if now - last[0] < POLL_S and done < total:
            return
        last[0] = now
        with lock:
            _write_state(cdir, state="running", stage=stage, done=done, total=total)

    with _output_to(cdir / LOG_FILE):
        print(f"[{time.strftime('%H:%M:%S')}] cell {spec.name} on {node} pid {os.getpid()}")
        try:
            res = cells.run(spec, settings, progress=progress, should_stop=stop_file.exists)
        except BaseException as exc:
            _write_state(cdir, state="failed", error=f"{type(exc).__name__}: {exc}"[:500])
            raise
    stop_file.unlink(missing_ok=True)
    seconds = round(time.time() - started, 2)
    _write_state(cdir, state=res["status"], seconds=seconds)
    return {
        "status": res["status"],
        "cell_dir": res["cell_dir"],
        "key": spec.key(),
        "node": node,
        "pid": os.getpid(),
        "seconds": seconds,
    }


# ----------------------------------------------------------------------------------
# The driver


def run_all(
    specs: Sequence[cells.CellSpec],
    settings: cells.EvalSettings,
    *,
    options: RayOptions | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, str]:
    """Run the incomplete cells of ``specs`` as Ray tasks; ``{cell name: status}``.

    A status is ``completed`` or ``stopped`` (as the local executor's); when some cells
    failed or their worker died, :class:`CellsFailed` is raised after the others have
    finished (their statuses ``failed``/``lost``; a rerun resumes them).
    """
    opts = options or RayOptions()
    opts.check()
    todo: dict[str, cells.CellSpec] = {}  # key -> spec
    names: dict[str, list[str]] = {}  # key -> every name asking for it
    for spec in specs:
        if cells.is_complete(spec, settings):
            continue
        todo.setdefault(spec.key(), spec)
        names.setdefault(spec.key(), []).append(spec.name)
    if not todo:
        return {}
    with connected(opts.address) as ray:
        cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
        nodes = ray.nodes()
        requests = {k: resources(s, settings, opts, cluster_gpus) for k, s in todo.items()}
        for key, req in requests.items():
            _check_fits(req, nodes, todo[key].name)
        task = ray.remote(run_cell_task)
        cwd = os.getcwd()
        refs: dict[Any, str] = {}
        for key, spec in todo.items():
            cdir = cells.cell_dir(spec)
            cdir.mkdir(parents=True, exist_ok=True)
            req = requests[key]
            storage.write_json(cdir / "cell.json", spec.to_dict())
            (cdir / STOP_FILE).unlink(missing_ok=True)  # a request meant for an earlier run
            _write_state(
                cdir,
                state="submitted",
                cell=spec.name,
                key=key,
                submitted=time.time(),
                address=opts.address or os.environ.get("RAY_ADDRESS") or "local",
                resources=req,
                error=None,
            )
            ref = task.options(
                num_cpus=req["num_cpus"],
                num_gpus=req["num_gpus"],
                memory=req["memory"],
                max_retries=opts.retries,
                retry_exceptions=False,
                name=f"cell {spec.name}",
            ).remote(spec.to_dict(), asdict(settings), raylink.task_env(req["num_cpus"]), cwd)
            refs[ref] = key
            _write_state(cdir, task_id=ref.task_id().hex())
        statuses = _wait(ray, refs, todo, progress, should_stop)
    out: dict[str, str] = {}
    for key, status in statuses.items():
        for name in names[key]:
            out[name] = status
    bad = {n: s for n, s in out.items() if s in ("failed", "lost")}
    if bad:
        errors = {
            todo[k].name: (read_state(cells.cell_dir(todo[k])) or {}).get("error")
            for k, s in statuses.items()
            if s in ("failed", "lost")
        }
        listed = "; ".join(f"{n} ({bad[n]}: {errors.get(n) or 'see ray-log.txt'})" for n in bad)
        raise CellsFailed(
            f"{len(bad)} of {len(out)} cell(s) did not finish on Ray: {listed}. Finished "
            "stages are kept; rerun (with either executor) to resume them",
            out,
        )
    return out


def _wait(
    ray: Any,
    refs: dict[Any, str],
    todo: Mapping[str, cells.CellSpec],
    progress: Progress | None,
    should_stop: Callable[[], bool] | None,
) -> dict[str, str]:
    from ray.exceptions import RayTaskError, TaskCancelledError

    pending = dict(refs)
    statuses: dict[str, str] = {}
    seen: dict[str, tuple[Any, ...]] = {}
    stopping = False
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in ready:
                key = pending.pop(ref)
                cdir = cells.cell_dir(todo[key])
                try:
                    statuses[key] = ray.get(ref)["status"]
                except TaskCancelledError:
                    statuses[key] = "stopped"
                    _write_state(cdir, state="stopped")
                except RayTaskError as exc:
                    statuses[key] = "failed"
                    cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                    _write_state(cdir, state="failed", error=str(cause).strip()[:500])
                except ray.exceptions.RayError as exc:  # the worker or its node died
                    statuses[key] = "lost"
                    _write_state(cdir, state="lost", error=type(exc).__name__)
            if progress is not None:
                _report(pending, todo, progress, seen)
            if not stopping and should_stop is not None and should_stop():
                stopping = True
                _stop(ray, pending, todo)
    except BaseException:  # Ctrl-C: checkpoint what runs, drop what waits
        _stop(ray, pending, todo)
        raise
    return statuses


def _stop(ray: Any, pending: Mapping[Any, str], todo: Mapping[str, cells.CellSpec]) -> None:
    for ref, key in pending.items():
        cdir = cells.cell_dir(todo[key])
        state = read_state(cdir) or {}
        if state.get("state") == "running":
            request_stop(cdir)  # the task checkpoints and returns "stopped"
        else:
            ray.cancel(ref)


def _report(
    pending: Mapping[Any, str],
    todo: Mapping[str, cells.CellSpec],
    progress: Progress,
    seen: dict[str, tuple[Any, ...]],
) -> None:
    for key in pending.values():
        state = read_state(cells.cell_dir(todo[key])) or {}
        if state.get("state") != "running" or not state.get("total"):
            continue
        now = (state.get("stage"), state.get("done"), state.get("total"))
        if seen.get(key) != now:
            seen[key] = now
            progress(todo[key].name, str(now[0]), int(now[1] or 0), int(now[2]))
