"""Background jobs: a SQLite job store, a queue with per-queue slot limits, worker processes.

Each job is one row in ``<home>/jobs.db`` (WAL mode) and one run directory
``<home>/runs/<job id>/`` holding ``job.json`` (kind + config snapshot taken at
submission), ``status.json`` (state, progress, heartbeat; rewritten atomically),
``log.txt`` (the worker's stdout/stderr) and whatever the job writes (metrics,
checkpoints, artifacts, ``result.json``).

Life of a job: :func:`submit` checks the config (``BadInput`` before any work) and
inserts it ``queued``; :func:`pump` starts queued jobs, oldest first, while their
queue has free slots, each as ``python -m cookbook_core.jobs.worker JOB_ID`` in its own
process group.  The worker marks the job ``succeeded``, ``failed`` (with the
reason) or ``cancelled``.  :func:`reconcile` (run by :func:`pump` and
:func:`list_jobs`) marks ``running`` jobs whose process is gone (or whose pid now
belongs to another process: the start time in ``/proc/<pid>/stat`` is compared) as
``lost``.  :func:`cancel` sends SIGTERM to the job's process group (a training
worker checkpoints and exits); :func:`resume` re-queues a lost, cancelled or
failed job of a resumable kind.

Kinds are a registry (:data:`KINDS`): name -> runner and validator (``module:function``
paths, imported only when a job is submitted or run), queue, resumable.  Every kind the
project ships is declared in :data:`BUILTIN_KINDS` the same way (a module with
``validate_job`` and ``run_job``); others may add theirs with :func:`register_kind`.  A
kind whose module fails to import raises :class:`KindImportError` with that error.
Queues: ``device`` (training/evaluation; default 1 slot) and ``cpu`` (default 2);
override with ``COOKBOOK_MAX_JOBS_DEVICE`` / ``COOKBOOK_MAX_JOBS_CPU``.

A corrupt or truncated ``jobs.db`` (SQLite reports ``SQLITE_CORRUPT``/``SQLITE_NOTADB``), or
one that holds no jobs while run folders with a ``status.json`` exist (deleted or emptied),
raises :class:`JobStoreCorrupt` from every operation instead of reporting "no jobs"; a
corrupt file is first copied to ``jobs.db.corrupt-<hash>``.  :func:`repair` rebuilds the
store from the run folders (``job.json`` + ``status.json``).

What this module does not do: run the work itself (``worker``), or render anything.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cookbook_core import paths, storage, threads
from cookbook_core.errors import BadInput, CookbookError

STATES = ("queued", "running", "succeeded", "failed", "cancelled", "lost")
ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled", "lost")
DEFAULT_QUEUE_LIMITS = {"device": 1, "cpu": 2}
LAUNCH_GRACE_S = 60.0  # a claimed job whose worker never reported its pid is lost after this
HEARTBEAT_S = 5.0


class JobError(CookbookError):
    """A job operation that failed."""


class UnknownJob(BadInput):
    """No job with that id."""


class JobStateError(BadInput):
    """The operation does not apply to the job's current state."""


class JobStoreCorrupt(BadInput):
    """The job database cannot be trusted: corrupt, truncated, or emptied while run
    folders exist (``cookbook jobs repair`` rebuilds it from them)."""


class JobCancelled(BaseException):
    """Raised inside a worker to abandon work after a cancel request."""


# ----------------------------------------------------------------------------------
# Kinds


@dataclass(frozen=True)
class JobKind:
    """What a kind of job runs: ``runner`` and ``validate`` are ``module:function`` paths.

    ``runner(ctx: JobContext) -> dict`` returns the result (a dict with ``status``
    ``stopped`` means it honoured a cancel request).  ``validate(config) -> dict``
    raises ``BadInput`` for a config that cannot run and returns the config to store
    (e.g. with paths made absolute).
    """

    name: str
    runner: str
    validate: str | None = None
    queue: str = "device"
    resumable: bool = False


KINDS: dict[str, JobKind] = {}


def register_kind(
    name: str,
    runner: str,
    *,
    validate: str | None = None,
    queue: str = "device",
    resumable: bool = False,
) -> JobKind:
    """Add (or replace) a job kind; ``runner``/``validate`` are ``module:function`` paths,
    imported only when a job of the kind is submitted or run."""
    kind = JobKind(name, runner, validate, queue, resumable)
    KINDS[name] = kind
    return kind


# The kinds this project ships, all declared the same way: a module with
# ``validate_job(config) -> dict`` and ``run_job(ctx) -> dict``.  Only the module's name is
# written here, so this store imports none of them (they sit in higher layers; see
# docs/ARCHITECTURE.md); a module that fails to import says so when its kind is used.
BUILTIN_KINDS: tuple[tuple[str, str, str, bool], ...] = (
    # name, module, queue, resumable
    ("generate", "cookbook_core.generate", "cpu", False),
    ("train", "cookbook_core.train.training", "device", True),
    ("eval", "cookbook_core.eval.evaluation", "device", False),
    ("cell", "cookbook_core.mix.cells", "device", True),
    ("experiment", "cookbook_core.experiments.core", "device", True),
    ("selfguide", "cookbook_core.selfguide.pipeline", "device", True),
    ("draft", "cookbook_core.drafting.job", "cpu", False),
)
for _name, _module, _queue, _resumable in BUILTIN_KINDS:
    register_kind(
        _name,
        f"{_module}:run_job",
        validate=f"{_module}:validate_job",
        queue=_queue,
        resumable=_resumable,
    )


def get_kind(name: str) -> JobKind:
    """The kind called ``name``; ``BadInput`` (with the closest names) for an unknown one."""
    if name not in KINDS:
        close = difflib.get_close_matches(name, list(KINDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BadInput(f"unknown job kind {name!r}{hint} (known: {', '.join(sorted(KINDS))})")
    return KINDS[name]


class KindImportError(JobError):
    """A job kind's runner or validator could not be imported (the cause is chained)."""


def _import(path: str) -> Callable[..., Any]:
    """The function at ``module:function``; :class:`KindImportError` naming the module and the
    original error when the module fails to import or lacks the function."""
    module, _, attr = path.partition(":")
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # ImportError, or any error raised while importing the module
        raise KindImportError(
            f"cannot import {module} (for {path}): {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise KindImportError(f"{module} has no function {attr!r} (for {path})") from None


# ----------------------------------------------------------------------------------
# Store


def db_path() -> Path:
    return paths.home() / "jobs.db"


def runs_root() -> Path:
    return paths.home() / "runs"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    runner TEXT NOT NULL,
    state TEXT NOT NULL,
    name TEXT,
    config TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    heartbeat REAL,
    pid INTEGER,
    pid_start INTEGER,
    progress TEXT,
    reason TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    resume INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, queue, seq);
"""


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    return (
        name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
        or "malformed" in text
        or "not a database" in text
    )


def _job_run_folders() -> list[Path]:
    """Run folders that belong to jobs (they hold a ``status.json``)."""
    root = runs_root()
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if (d / "status.json").is_file())


def backup_db() -> Path | None:
    """Copy ``jobs.db`` (and its ``-wal``) to ``jobs.db.corrupt-<hash of its bytes>`` once;
    the copy's path (None when there is no non-empty database file)."""
    path = db_path()
    if not path.is_file() or path.stat().st_size == 0:
        return None
    data = path.read_bytes()
    backup = path.with_name(f"{path.name}.corrupt-{hashlib.sha256(data).hexdigest()[:12]}")
    if not backup.exists():
        wal = path.with_name(path.name + "-wal")
        if wal.is_file():
            storage.write_bytes(backup.with_name(backup.name + "-wal"), wal.read_bytes())
        storage.write_bytes(backup, data)
    return backup


def _corrupt(detail: str) -> JobStoreCorrupt:
    backup = backup_db()
    kept = f"; a copy is kept at {backup}" if backup else ""
    n = len(_job_run_folders())
    return JobStoreCorrupt(
        f"the job database {db_path()} is corrupt ({detail}){kept}; its {n} run folder(s) "
        f"in {runs_root()} are untouched: `cookbook jobs repair` rebuilds the database from them"
    )


def _open(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(_SCHEMA)
    return con


@contextlib.contextmanager
def connect() -> Iterator[sqlite3.Connection]:
    """A connection to the job store (autocommit; WAL; waits up to 30 s on locks).

    :class:`JobStoreCorrupt` when the database is corrupt, or holds no jobs while job run
    folders exist (a deleted or truncated database must not read as "no jobs").
    """
    path = db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    size = path.stat().st_size if path.is_file() else None
    try:
        con = _open(path)
    except sqlite3.DatabaseError as exc:
        if _is_corruption(exc):
            raise _corrupt(str(exc)) from None
        raise
    try:
        try:
            empty = con.execute("SELECT NOT EXISTS (SELECT 1 FROM jobs)").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise _corrupt(str(exc)) from None
            raise
        if empty:
            runs = _job_run_folders()
            if runs:
                how = "is empty (0 bytes)" if size == 0 else "was missing" if size is None else ""
                raise JobStoreCorrupt(
                    f"the job database {path} {how or 'holds no jobs'}, but {len(runs)} job "
                    f"run folder(s) exist in {runs_root()} (was it deleted or truncated?): "
                    "`cookbook jobs repair` rebuilds the database from them"
                )
        try:
            yield con
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise _corrupt(str(exc)) from None
            raise
    finally:
        con.close()


def repair() -> tuple[list[str], list[str], Path | None]:
    """Rebuild ``jobs.db`` from the run folders: ``(job ids restored, folders skipped
    with the reason, the copy kept of the old database)``.

    The old database is copied aside first (:func:`backup_db`), then replaced.  Each run
    folder with a readable ``job.json`` becomes a row with the kind, name and config it
    was submitted with and the state, progress and reason of its ``status.json``; a
    ``running`` job whose worker is gone is then marked ``lost`` by :func:`reconcile`.
    """
    backup = backup_db()
    path = db_path()
    restored: list[str] = []
    skipped: list[str] = []
    rows = []
    for d in _job_run_folders():
        try:
            snap = json.loads((d / "job.json").read_text(encoding="utf-8"))
            status = json.loads((d / "status.json").read_text(encoding="utf-8"))
            if not isinstance(snap, dict) or not isinstance(status, dict):
                raise ValueError("not a JSON object")
            job_id, kind = str(snap["id"]), str(snap["kind"])
            config = snap["config"]
            if job_id != d.name or not isinstance(config, dict):
                raise ValueError("job.json does not match its folder")
        except (OSError, ValueError, KeyError) as exc:
            skipped.append(f"{d.name} ({type(exc).__name__}: {exc})")
            continue
        k = KINDS.get(kind)
        state = status.get("state") if status.get("state") in STATES else "lost"
        progress = status.get("progress") if isinstance(status.get("progress"), dict) else {}
        rows.append(
            (
                (d / "job.json").stat().st_mtime,
                job_id,
                kind,
                k.queue if k else "device",
                k.runner if k else f"unknown:{kind}",
                state,
                snap.get("name"),
                json.dumps(config),
                str(d),
                status.get("started"),
                status.get("finished"),
                status.get("heartbeat"),
                status.get("pid") if state == "running" else None,
                json.dumps(progress),
                status.get("reason"),
                int(status.get("attempts") or 0),
            )
        )
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()
    con = _open(path)
    try:
        with _transaction(con):
            for row in sorted(rows, key=lambda r: (r[0], r[1])):
                con.execute(
                    "INSERT INTO jobs (created, id, kind, queue, runner, state, name, config, "
                    "run_dir, started, finished, heartbeat, pid, progress, reason, attempts) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                restored.append(row[1])
    finally:
        con.close()
    return restored, skipped, backup


@contextlib.contextmanager
def _transaction(con: sqlite3.Connection) -> Iterator[None]:
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@dataclass
class Job:
    """One row of the job store."""

    id: str
    kind: str
    state: str
    queue: str
    config: dict[str, Any]
    run_dir: Path
    created: float
    name: str | None = None
    started: float | None = None
    finished: float | None = None
    heartbeat: float | None = None
    pid: int | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    cancel_requested: bool = False
    resume: bool = False
    attempts: int = 0
    runner: str = ""
    seq: int = 0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["run_dir"] = str(self.run_dir)
        return d


def _job(row: sqlite3.Row) -> Job:
    d = dict(row)
    d.pop("pid_start", None)
    d["config"] = json.loads(d["config"])
    d["progress"] = json.loads(d["progress"]) if d["progress"] else {}
    d["run_dir"] = Path(d["run_dir"])
    d["cancel_requested"] = bool(d["cancel_requested"])
    d["resume"] = bool(d["resume"])
    return Job(**d)


def get(job_id: str) -> Job:
    """A job by id (a unique prefix of the id works too)."""
    with connect() as con:
        row = con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            rows = con.execute(
                "SELECT * FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                (job_id.replace("%", "\\%").replace("_", "\\_") + "%",),
            ).fetchall()
            if len(rows) == 1:
                row = rows[0]
    if row is None:
        raise UnknownJob(f"no job {job_id!r} (see `cookbook jobs list`)")
    return _job(row)


def list_jobs(
    *, states: tuple[str, ...] | None = None, kind: str | None = None, refresh: bool = True
) -> list[Job]:
    """Jobs, newest first.  ``refresh`` first reconciles lost workers and starts queued jobs."""
    if refresh:
        pump()
    sql, args = "SELECT * FROM jobs", []
    where = []
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        args += list(states)
    if kind:
        where.append("kind = ?")
        args.append(kind)
    if where:
        sql += " WHERE " + " AND ".join(where)
    with connect() as con:
        return [_job(r) for r in con.execute(sql + " ORDER BY seq DESC", args).fetchall()]


# ----------------------------------------------------------------------------------
# Processes


def proc_start_time(pid: int) -> int | None:
    """Start time of a process (clock ticks since boot, /proc/<pid>/stat field 22); None if
    there is no such live process (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = stat[stat.rfind(")") + 2 :].split()
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def pid_alive(pid: int | None, start: int | None) -> bool:
    """True when ``pid`` is a live process that started at ``start`` (not a reused pid)."""
    if not pid:
        return False
    now = proc_start_time(pid)
    if now is None:
        return False
    return start is None or now == start


_children: list[subprocess.Popen[bytes]] = []
_exit_codes: dict[int, int] = {}  # pid -> exit status of workers this process started


def _reap() -> None:
    """Collect exited workers this process started (so they do not linger as zombies)."""
    for p in list(_children):
        if p.poll() is not None:
            _children.remove(p)
            _exit_codes[p.pid] = p.returncode


def _how_it_ended(pid: int) -> str:
    code = _exit_codes.get(pid)
    if code is None:
        return "killed or crashed"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
        hint = " (out of memory, or kill -9)" if code == -signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit status {code}"


def _launch(job: Job, concurrent: int = 1) -> subprocess.Popen[bytes]:
    """Start the worker of ``job``; ``concurrent``: jobs running with it (threads share)."""
    env = threads.worker_env(dict(os.environ), concurrent)
    env["COOKBOOK_HOME"] = str(paths.home())
    env["PYTHONPATH"] = os.pathsep.join(
        [str(paths.PROJECT_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["PYTHONUNBUFFERED"] = "1"
    job.run_dir.mkdir(parents=True, exist_ok=True)
    with open(job.run_dir / "log.txt", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cookbook_core.jobs.worker", job.id],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=str(job.run_dir),
        )
    _children.append(proc)
    return proc


def queue_limit(queue: str) -> int:
    """Jobs a queue may run at once (``COOKBOOK_MAX_JOBS_<QUEUE>`` overrides the default)."""
    raw = os.environ.get(f"COOKBOOK_MAX_JOBS_{queue.upper()}")
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            pass
    return DEFAULT_QUEUE_LIMITS.get(queue, 1)


def reconcile() -> list[str]:
    """Mark ``running`` jobs whose worker vanished as ``lost`` (``cancelled`` when a cancel
    had been requested); return their ids."""
    _reap()
    lost = []
    now = time.time()
    with connect() as con, _transaction(con):
        rows = con.execute(
            "SELECT id, pid, pid_start, started, heartbeat, cancel_requested FROM jobs "
            "WHERE state = 'running'"
        ).fetchall()
        for r in rows:
            if r["pid"] is None:
                if now - (r["started"] or now) < LAUNCH_GRACE_S:
                    continue
                reason = "the worker never started"
            elif pid_alive(r["pid"], r["pid_start"]):
                continue
            else:
                beat = f"{now - r['heartbeat']:.0f} s" if r["heartbeat"] else "unknown time"
                reason = (
                    f"worker process {r['pid']} vanished without reporting "
                    f"({_how_it_ended(r['pid'])}; last heartbeat {beat} ago)"
                )
            # A worker that died after a cancel request was cancelled, not lost (a SIGTERM
            # that lands before the worker installed its handler ends it this way).
            state = "cancelled" if r["cancel_requested"] else "lost"
            if r["cancel_requested"]:
                reason = f"cancelled: {reason}"
            con.execute(
                "UPDATE jobs SET state = ?, reason = ?, finished = ? WHERE id = ? "
                "AND state = 'running'",
                (state, reason, now, r["id"]),
            )
            lost.append(r["id"])
    for job_id in lost:
        write_status(get(job_id))
    return lost


def pump() -> list[str]:
    """Reconcile, then start queued jobs (oldest first) while their queue has free slots."""
    reconcile()
    claimed: list[Job] = []
    now = time.time()
    with connect() as con, _transaction(con):
        running: dict[str, int] = {}
        for r in con.execute(
            "SELECT queue, COUNT(*) AS n FROM jobs WHERE state = 'running' GROUP BY queue"
        ):
            running[r["queue"]] = r["n"]
        for r in con.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY seq").fetchall():
            if running.get(r["queue"], 0) >= queue_limit(r["queue"]):
                continue
            running[r["queue"]] = running.get(r["queue"], 0) + 1
            con.execute(
                "UPDATE jobs SET state = 'running', started = ?, heartbeat = ?, pid = NULL, "
                "pid_start = NULL, finished = NULL, attempts = attempts + 1 WHERE id = ?",
                (now, now, r["id"]),
            )
            claimed.append(_job(r))
    started = []
    concurrent = sum(running.values())
    for job in claimed:
        try:
            proc = _launch(job, concurrent)
        except OSError as exc:
            finish(job.id, "failed", reason=f"could not start the worker: {exc}")
            continue
        with connect() as con:
            con.execute(
                "UPDATE jobs SET pid = ?, pid_start = COALESCE(pid_start, ?) WHERE id = ? "
                "AND pid IS NULL",
                (proc.pid, proc_start_time(proc.pid), job.id),
            )
        started.append(job.id)
    return started


# ----------------------------------------------------------------------------------
# Submitting and controlling jobs


def new_job_id(kind: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{secrets.token_hex(2)}"


def submit(
    kind: str, config: dict[str, Any], *, name: str | None = None, start: bool = True
) -> Job:
    """Check ``config`` (``BadInput`` on error), queue the job, and start it when a slot is free."""
    k = get_kind(kind)
    if k.validate:
        config = _import(k.validate)(config) or config
    job_id = new_job_id(kind)
    run_dir = runs_root() / job_id
    run_dir.mkdir(parents=True, exist_ok=False)
    snapshot = {"id": job_id, "kind": kind, "name": name, "config": config}
    storage.write_json(run_dir / "job.json", snapshot)
    with connect() as con:
        con.execute(
            "INSERT INTO jobs (id, kind, queue, runner, state, name, config, run_dir, created) "
            "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
            (job_id, kind, k.queue, k.runner, name, json.dumps(config), str(run_dir), time.time()),
        )
    write_status(get(job_id))
    if start:
        pump()
    return get(job_id)


def cancel(job_id: str, *, force: bool = False) -> Job:
    """Cancel a job: a queued one at once; a running one by SIGTERM to its process group
    (the worker checkpoints and marks itself cancelled).  ``force`` sends SIGKILL and marks
    it cancelled right away."""
    job = get(job_id)
    if job.state == "queued":
        finish(job.id, "cancelled", reason="cancelled before it started", only_from=("queued",))
        return get(job.id)
    if job.state != "running":
        raise JobStateError(
            f"job {job.id} is {job.state}; only queued or running jobs can be cancelled"
        )
    with connect() as con:
        con.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job.id,))
        row = con.execute("SELECT pid, pid_start FROM jobs WHERE id = ?", (job.id,)).fetchone()
    pid, start = row["pid"], row["pid_start"]
    if pid_alive(pid, start):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL if force else signal.SIGTERM)
    if force or not pid_alive(pid, start):
        finish(
            job.id,
            "cancelled",
            reason="cancelled (worker killed)" if force else "cancelled",
            only_from=("running",),
        )
        pump()
    return get(job.id)


def resume(job_id: str, *, start: bool = True) -> Job:
    """Queue a lost, cancelled or failed job again; it continues from its last checkpoint."""
    job = get(job_id)
    kind = get_kind(job.kind)
    if job.state not in ("lost", "cancelled", "failed"):
        raise JobStateError(
            f"job {job.id} is {job.state}; only lost, cancelled or failed jobs can be resumed"
        )
    if not kind.resumable:
        raise JobStateError(f"{job.kind} jobs cannot be resumed; submit a new one")
    with connect() as con:
        con.execute(
            "UPDATE jobs SET state = 'queued', resume = 1, reason = NULL, cancel_requested = 0, "
            "pid = NULL, pid_start = NULL, finished = NULL WHERE id = ?",
            (job.id,),
        )
    write_status(get(job.id))
    if start:
        pump()
    return get(job.id)


def wait(job_id: str, timeout: float | None = None, poll: float = 0.5) -> Job:
    """Block until the job has finished (pumping the queue meanwhile); return it."""
    deadline = None if timeout is None else time.time() + timeout
    while True:
        pump()
        job = get(job_id)
        if not job.active:
            return job
        if deadline is not None and time.time() > deadline:
            raise JobError(f"job {job_id} still {job.state} after {timeout} s")
        time.sleep(poll)


# ----------------------------------------------------------------------------------
# Used by the worker


def finish(
    job_id: str,
    state: str,
    *,
    reason: str | None = None,
    only_from: tuple[str, ...] = ("running", "queued"),
) -> bool:
    """Set a final state (if the job is still in one of ``only_from``); True when it changed."""
    assert state in FINISHED
    with connect() as con:
        cur = con.execute(
            f"UPDATE jobs SET state = ?, reason = ?, finished = ? WHERE id = ? "
            f"AND state IN ({','.join('?' * len(only_from))})",
            (state, reason, time.time(), job_id, *only_from),
        )
        changed = cur.rowcount == 1
    write_status(get(job_id))
    return changed


def claim_for_worker(job_id: str, pid: int) -> Job | None:
    """Record the worker's own pid; None when the job is no longer running (cancelled)."""
    with connect() as con:
        cur = con.execute(
            "UPDATE jobs SET pid = ?, pid_start = ?, heartbeat = ? WHERE id = ? "
            "AND state = 'running'",
            (pid, proc_start_time(pid), time.time(), job_id),
        )
        if cur.rowcount != 1:
            return None
    return get(job_id)


def heartbeat(job_id: str, progress: dict[str, Any] | None = None) -> bool:
    """Update the heartbeat (and progress); return whether a cancel was requested."""
    with connect() as con:
        if progress is None:
            con.execute("UPDATE jobs SET heartbeat = ? WHERE id = ?", (time.time(), job_id))
        else:
            con.execute(
                "UPDATE jobs SET heartbeat = ?, progress = ? WHERE id = ?",
                (time.time(), json.dumps(progress), job_id),
            )
        row = con.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return bool(row and row["cancel_requested"])


def write_status(job: Job) -> None:
    """Mirror the job's state into ``<run_dir>/status.json`` (atomic)."""
    if not job.run_dir.is_dir():
        return
    status = {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "reason": job.reason,
        "progress": job.progress,
        "heartbeat": job.heartbeat,
        "pid": job.pid,
        "started": job.started,
        "finished": job.finished,
        "attempts": job.attempts,
    }
    storage.write_json(job.run_dir / "status.json", status)


def read_log(job_id: str, tail: int | None = None) -> str:
    """The worker log of a job (the last ``tail`` lines when given)."""
    path = get(job_id).run_dir / "log.txt"
    if not path.is_file():
        return ""
    text = path.read_text(errors="replace")
    if tail is not None:
        text = "\n".join(text.splitlines()[-tail:]) + "\n"
    return text


def read_result(job: Job) -> dict[str, Any] | None:
    path = job.run_dir / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None
