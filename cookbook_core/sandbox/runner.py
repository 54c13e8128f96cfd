"""Running untrusted template code (user-edited, saved, found through
``COOKBOOK_TEMPLATES`` or written by a model): static checks, then the OS sandbox.

What it does, in order:

1. **Static validation** (:func:`validate_source`), before anything runs: the code
   must parse, declare at least one ``@template(...)`` function taking ``(rng,
   vocab, *, ...)`` with defaults on every keyword parameter, and import only
   :data:`ALLOWED_IMPORTS`.  Calls of ``exec``/``eval``/``open``/``__import__``/
   ``getattr`` and friends, any ``_private`` or ``__dunder__`` attribute or name,
   and attributes that lead to interpreter internals are rejected, each problem
   with a line and column.  Source too deeply nested to parse is one problem, not
   a crash.  These checks are an early, readable warning, **not** the boundary.
2. **Execution inside the OS boundary** (:func:`run_source`, :func:`preview_file`):
   a bubblewrap sandbox with its own user, mount, PID, network and IPC
   namespaces, a fresh ``/proc``, read-only binds of only the interpreter and the
   template API, a private ``/tmp``, uid 65534 (also on the host when the caller
   is root), ``no_new_privs`` and seccomp filters refusing process creation,
   ``execve``, sockets, ``mknod`` and ``ptrace`` (see ``boundary.py``); plus
   resource limits set here (CPU seconds, address space, file size, open files,
   processes) and a wall clock after which the process group is killed, and a cap
   on the bytes read back.  The request (source, token list, arguments) goes in on
   stdin; the answer comes back on stdout and is validated by ``protocol.py``.
   The rule checker's verdicts come from a second run that is handed the samples
   the parent holds and never calls the generator; :func:`check_source` runs only
   that second kind of run, on answers the caller supplies (drafting asks it about
   corrupted answers and real rows' gold answers).  An in-interpreter audit hook
   stays in as a friendlier first line (switchable off for tests).

If the boundary cannot be built, :class:`~cookbook_core.sandbox.boundary.BoundaryUnavailable`
is raised: nothing runs unsandboxed.  What this does not protect against is in
``docs/SECURITY.md`` (kernel exploits, a checker that lies about its own rule,
CPU and memory use up to the limits).

Also here: :func:`save_template` writes edited templates into a template folder
(names validated, atomic write, the previous version kept under ``.history/``).
"""

from __future__ import annotations

import ast
import json
import os
import re
import resource
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cookbook_core import paths, tokens
from cookbook_core.errors import BadInput, CookbookError
from cookbook_core.sandbox import boundary, protocol
from cookbook_core.sandbox.boundary import BoundaryUnavailable
from cookbook_core.templates import Param

ALLOWED_IMPORTS = frozenset(
    {
        "random",
        "math",
        "string",
        "itertools",
        "collections",
        "collections.abc",
        "re",
        "typing",
        "__future__",
        "functools",
        "cookbook_core.templates",
        "cookbook_core.template_helpers",
    }
)
FORBIDDEN_CALLS = frozenset(
    {
        "exec",
        "eval",
        "compile",
        "open",
        "__import__",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "input",
        "breakpoint",
        "help",
        "memoryview",
        "exit",
        "quit",
    }
)
FORBIDDEN_ATTRS = frozenset(
    {
        "sys",
        "os",
        "modules",
        "builtins",
        "subprocess",
        "importlib",
        "socket",
        "ctypes",
        "system",
        "popen",
        "environ",
        "f_globals",
        "f_locals",
        "f_back",
        "f_builtins",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "ag_frame",
        "tb_frame",
        "func_globals",
        "mro",
        "format_map",
    }
)


@dataclass(frozen=True)
class Problem:
    """One reason a template source is rejected."""

    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.col}: {self.message}"


@dataclass
class Limits:
    """Resource limits of one sandboxed run."""

    cpu_seconds: int = 5
    wall_seconds: float = 10.0
    memory_mb: int = 1024
    file_size_kb: int = 64
    open_files: int = 64
    processes: int = 64
    output_kb: int = 4096


@dataclass
class SandboxResult:
    """What a sandboxed preview returns: samples, or an error with type, message, line."""

    ok: bool
    samples: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)
    error_type: str | None = None
    message: str | None = None
    line: int | None = None
    elapsed_s: float = 0.0

    @property
    def error(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.error_type}: {self.message}{where}"


class SandboxRejected(BadInput):
    """Static validation failed; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("template rejected:\n" + "\n".join(f"  {p}" for p in problems))


# ----------------------------------------------------------------------------------
# Static validation


def validate_source(source: str, filename: str = "<template>") -> list[Problem]:
    """Every reason ``source`` may not run in the sandbox (empty list: it may)."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        return [Problem(exc.lineno or 0, exc.offset or 0, f"syntax error: {exc.msg}")]
    except (MemoryError, RecursionError):
        return [Problem(1, 1, "the source is nested too deeply to parse")]
    except ValueError as exc:  # e.g. null bytes
        return [Problem(1, 1, f"cannot parse: {exc}")]
    problems: list[Problem] = []

    def add(node: ast.AST, msg: str) -> None:
        problems.append(
            Problem(getattr(node, "lineno", 0), getattr(node, "col_offset", 0) + 1, msg)
        )

    templates_found = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in ALLOWED_IMPORTS:
                    add(node, f"import of {alias.name!r} is not allowed ({_allowed_text()})")
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level or mod not in ALLOWED_IMPORTS:
                add(node, f"import from {mod or '.'!r} is not allowed ({_allowed_text()})")
            for alias in node.names:
                if alias.name.startswith("_") and mod != "__future__":
                    add(node, f"importing private name {alias.name!r} is not allowed")
        elif isinstance(node, ast.Name):
            if node.id in FORBIDDEN_CALLS:
                add(node, f"{node.id!r} is not allowed in templates")
            elif node.id.startswith("__") and node.id not in ("__name__", "__doc__"):
                add(node, f"dunder name {node.id!r} is not allowed")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                add(node, f"private or dunder attribute {node.attr!r} is not allowed")
            elif node.attr in FORBIDDEN_ATTRS:
                add(node, f"attribute {node.attr!r} is not allowed")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.search(r"\{[^{}]*\.\s*_", node.value) or "__" in node.value and "{" in node.value:
                add(node, "format strings that reach private attributes are not allowed")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            add(node, f"{type(node).__name__.lower()} statements are not allowed")
        elif isinstance(node, ast.FunctionDef):
            if any(_is_template_decorator(d) for d in node.decorator_list):
                templates_found += 1
                problems += _signature_problems(node)
    if templates_found == 0:
        problems.append(Problem(1, 1, "no function decorated with @template(...) found"))
    return sorted(set(problems), key=lambda p: (p.line, p.col, p.message))


def _allowed_text() -> str:
    return "allowed: " + ", ".join(sorted(ALLOWED_IMPORTS - {"__future__"}))


def _is_template_decorator(deco: ast.AST) -> bool:
    return isinstance(deco, ast.Call) and (
        (isinstance(deco.func, ast.Name) and deco.func.id == "template")
        or (isinstance(deco.func, ast.Attribute) and deco.func.attr == "template")
    )


def _signature_problems(fn: ast.FunctionDef) -> list[Problem]:
    out = []
    a = fn.args
    positional = a.posonlyargs + a.args
    if len(positional) != 2:
        out.append(
            Problem(
                fn.lineno,
                fn.col_offset + 1,
                f"template function {fn.name!r} must take (rng, vocab) positionally",
            )
        )
    if a.vararg or a.kwarg:
        out.append(Problem(fn.lineno, fn.col_offset + 1, "*args/**kwargs are not allowed"))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        if default is None:
            out.append(
                Problem(
                    arg.lineno, arg.col_offset + 1, f"parameter {arg.arg!r} needs a default value"
                )
            )
        if arg.annotation is None:
            out.append(
                Problem(
                    arg.lineno, arg.col_offset + 1, f"parameter {arg.arg!r} needs a type annotation"
                )
            )
    return out


# ----------------------------------------------------------------------------------
# Execution


@dataclass
class _Raw:
    """What one child run left: its bytes, or why it was stopped, and how it ended."""

    data: bytes
    stopped: str | None
    returncode: int
    cpu_s: float


def _set_limits(limits: Limits) -> None:  # runs in the launcher between fork and exec
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_kb * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    if os.geteuid() != 0:  # after the drop to uid 65534 when the caller is root
        cap = _own_process_count() + limits.processes
        resource.setrlimit(resource.RLIMIT_NPROC, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _own_process_count() -> int:
    """Processes of this user now (RLIMIT_NPROC counts them all, not just ours)."""
    uid = os.geteuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def run_source(
    source: str,
    *,
    name: str | None = None,
    n: int = 8,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    token_space: str = tokens.DEFAULT_SPEC,
    limits: Limits | None = None,
    validate: bool = True,
    in_process_guards: bool = True,
    artifacts: Mapping[str, str] | None = None,
) -> SandboxResult:
    """Validate ``source``, then preview ``n`` samples of its template(s) in the sandbox.

    ``name`` picks one template when the file declares several (default: the first).
    Two sandboxed runs: one makes the samples, a second one (which never calls the
    generator) gives the rule checker's verdict on the samples the parent now holds,
    so a verdict always belongs to a sample the parent has seen.  Both answers are
    validated (:mod:`~cookbook_core.sandbox.protocol`).  ``in_process_guards=False``
    leaves out the in-interpreter audit hook, so tests can show that the OS
    boundary alone holds.  ``artifacts`` maps artifact names to their JSON texts; they
    are parsed only inside the child (see :mod:`cookbook_core.artifacts`).

    Raises :class:`SandboxRejected` when static validation fails and
    :class:`~cookbook_core.sandbox.boundary.BoundaryUnavailable` when the boundary
    cannot be built; anything that goes wrong while running (including a malformed
    answer) comes back as a failed :class:`SandboxResult`.
    """
    if validate:
        problems = validate_source(source)
        if problems:
            raise SandboxRejected(problems)
    if not 0 <= n <= 1000:
        raise BadInput(f"n must be between 0 and 1000, got {n}")
    limits = limits or Limits()
    boundary.ensure_available()
    started = time.perf_counter()
    request = {
        "mode": "preview",
        "source": source,
        "name": name,
        "n": n,
        "seed": seed,
        "params": params or {},
        "vocab": list(tokens.load(token_space).tokens),
        "guards": in_process_guards,
        "artifacts": dict(artifacts or {}),
    }
    # The verdict run's child starts now, so its start-up overlaps the preview run.
    warm = _start_child(limits) if n else None
    result = _ask(request, limits)
    if result.ok and result.samples and any(t["has_checker"] for t in result.templates):
        check = dict(request, mode="check", samples=result.samples, vocab=[])
        verdicts = _ask(check, limits, warm)
        warm = None
        if not verdicts.ok:
            verdicts.samples = []
            result = verdicts
        else:
            for s, v in zip(result.samples, verdicts.samples, strict=True):
                s["follows_rule"] = v["follows_rule"]
    elif result.ok:
        for s in result.samples:
            s["follows_rule"] = None
    if warm is not None:
        _kill_group(warm)
    result.elapsed_s = time.perf_counter() - started
    return result


def check_source(
    source: str,
    samples: list[dict[str, Any]],
    *,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    limits: Limits | None = None,
    validate: bool = True,
    in_process_guards: bool = True,
    artifacts: Mapping[str, str] | None = None,
) -> SandboxResult:
    """The rule checker's verdict on ``samples`` the caller supplies, in the sandbox.

    Each sample is ``{"completion": str, "meta": {"parent": {...}, "child": {...}}}``
    (a ``prompt`` key is optional); the template's generator is never called.  This
    is how a caller asks a template's rule about answers it did not generate (a
    corrupted answer, a real row's gold answer).  The result's ``samples`` hold one
    ``{"follows_rule": bool | None}`` per sample, in order (``None``: no checker).
    Raises like :func:`run_source`; failures while running come back as a failed
    :class:`SandboxResult`.
    """
    if validate:
        problems = validate_source(source)
        if problems:
            raise SandboxRejected(problems)
    limits = limits or Limits()
    boundary.ensure_available()
    started = time.perf_counter()
    request = {
        "mode": "check",
        "source": source,
        "name": name,
        "n": len(samples),
        "seed": 0,
        "params": params or {},
        "vocab": [],
        "guards": in_process_guards,
        "artifacts": dict(artifacts or {}),
        "samples": [
            {"prompt": str(s.get("prompt", "")), "completion": s["completion"], "meta": s["meta"]}
            for s in samples
        ],
    }
    result = _ask(request, limits)
    result.elapsed_s = time.perf_counter() - started
    return result


def preview_file(path: Path | str, **kwargs: Any) -> SandboxResult:
    """:func:`run_source` on a file's contents, with the latest version of every artifact
    its templates declare (stored beside it; a missing one is a clear ``TemplateError``)."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    if "artifacts" not in kwargs:
        kwargs["artifacts"] = file_artifacts(path)
    return run_source(source, **kwargs)


def file_artifacts(path: Path | str) -> dict[str, str]:
    """Name -> JSON text of the latest version of each artifact declared in ``path``
    (read, never parsed, here)."""
    from cookbook_core import artifacts, discovery

    out: dict[str, str] = {}
    for entry in discovery.parse_file(Path(path)):
        found = artifacts.latest_texts(
            path, [n for n in entry.artifacts if n not in out], entry.name
        )
        out.update({n: text for n, (_, text) in found.items()})
    return out


def _ask(
    request: dict[str, Any], limits: Limits, proc: subprocess.Popen[bytes] | None = None
) -> SandboxResult:
    """One sandboxed run (in ``proc`` when already started), its answer validated and
    turned into a :class:`SandboxResult`."""
    _, exec_filter = boundary.seccomp_programs()
    payload = json.dumps(dict(request, exec_filter=exec_filter.hex())).encode()
    raw = _run_child(payload, limits, proc)
    if raw.stopped is not None:
        return SandboxResult(False, error_type="LimitExceeded", message=raw.stopped)
    try:
        answer = protocol.decode(raw.data)
    except protocol.MalformedResult as exc:
        if not raw.data.strip():
            return _ended_without_answer(raw, limits)
        return _malformed(str(exc))
    try:
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            raise protocol.MalformedResult("the result is not an object with a boolean 'ok'")
        if not answer["ok"]:
            etype, message, line = protocol.error_result(answer)
            return SandboxResult(False, error_type=etype, message=message, line=line)
        if request["mode"] == "check":
            verdicts = protocol.check_result(answer, len(request["samples"]))
            return SandboxResult(True, samples=[{"follows_rule": v} for v in verdicts])
        samples, described = protocol.preview_result(answer, request["n"])
        return SandboxResult(True, samples=samples, templates=described)
    except protocol.MalformedResult as exc:
        return _malformed(str(exc))


def _malformed(why: str) -> SandboxResult:
    return SandboxResult(
        False,
        error_type="MalformedResult",
        message=f"the sandboxed template returned a malformed result: {why}",
    )


def _ended_without_answer(raw: _Raw, limits: Limits) -> SandboxResult:
    if raw.cpu_s >= limits.cpu_seconds - 0.1:
        return SandboxResult(
            False,
            error_type="LimitExceeded",
            message=f"CPU time limit of {limits.cpu_seconds} s exceeded (used {raw.cpu_s:.1f} s)",
        )
    return SandboxResult(False, error_type="Crashed", message=_describe_exit(raw.returncode))


def _start_child(limits: Limits, args: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start a sandboxed child (``args`` for ``child.py``: ``--generate`` serves generation);
    it imports the template API and waits for its request."""
    launch = boundary.launch(list(args), lambda: _set_limits(limits))
    try:
        proc = subprocess.Popen(
            launch.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            start_new_session=True,
            pass_fds=launch.pass_fds,
            # The launcher only sets limits, mounts and drops its uid (no locks taken).
            preexec_fn=launch.before_exec,  # noqa: PLW1509
        )
    except subprocess.SubprocessError as exc:
        raise boundary.BoundaryUnavailable(f"the launcher failed ({exc})") from None
    finally:
        for fd in launch.close_after_start:
            os.close(fd)
    return proc


def _run_child(payload: bytes, limits: Limits, proc: subprocess.Popen[bytes] | None = None) -> _Raw:
    """Feed a sandboxed child (started here unless given) ``payload``; collect at most the
    output cap, within the wall-clock limit."""
    if proc is None:
        proc = _start_child(limits)
    assert proc.stdin is not None and proc.stdout is not None
    cap = limits.output_kb * 1024
    deadline = time.monotonic() + limits.wall_seconds
    chunks: list[bytes] = []
    size = 0
    stopped: str | None = None
    to_send = memoryview(payload)
    sel = selectors.DefaultSelector()
    os.set_blocking(proc.stdin.fileno(), False)
    sel.register(proc.stdin, selectors.EVENT_WRITE)
    sel.register(proc.stdout, selectors.EVENT_READ)
    open_streams = 2
    while open_streams:
        left = deadline - time.monotonic()
        if left <= 0:
            stopped = f"timed out after {limits.wall_seconds:g} s (wall clock)"
            break
        for key, _ in sel.select(timeout=min(left, 0.5)):
            if key.fileobj is proc.stdin:
                try:
                    sent = os.write(proc.stdin.fileno(), to_send[:65536])
                except BrokenPipeError:
                    sent = len(to_send)
                except BlockingIOError:
                    continue
                to_send = to_send[sent:]
                if not to_send:
                    sel.unregister(proc.stdin)
                    proc.stdin.close()
                    open_streams -= 1
            else:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    sel.unregister(proc.stdout)
                    open_streams -= 1
                    continue
                chunks.append(chunk)
                size += len(chunk)
                if size > cap:
                    stopped = f"output exceeded {limits.output_kb} KB"
                    open_streams = 0
                    break
    sel.close()
    status = None
    usage = None
    while stopped is None:
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status, usage = st, ru
            break
        if time.monotonic() > deadline:
            stopped = f"timed out after {limits.wall_seconds:g} s (wall clock)"
            break
        time.sleep(0.002)
    if stopped is not None:
        _kill_group(proc)
        return _Raw(b"", stopped, -9, 0.0)
    assert status is not None and usage is not None
    proc.returncode = os.waitstatus_to_exitcode(status)
    if not proc.stdin.closed:
        proc.stdin.close()
    proc.stdout.close()
    # bwrap's own usage is tiny; the child's CPU time is counted in its children
    cpu = usage.ru_utime + usage.ru_stime
    return _Raw(b"".join(chunks), None, proc.returncode, cpu)


def _describe_exit(rc: int) -> str:
    if rc < 0 or rc > 128:
        sig = -rc if rc < 0 else rc - 128
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"the template process was killed by {name}"
    if rc == 3:
        return (
            "the template process exited with code 3 without a result "
            "(the sandbox boundary could not be completed, or the template exited with 3)"
        )
    return f"the template process exited with code {rc} without a result"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait()
    except ChildProcessError:  # already reaped by wait4
        pass
    for stream in (proc.stdin, proc.stdout):
        if stream is not None and not stream.closed:
            stream.close()


# ----------------------------------------------------------------------------------
# Saving


_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def save_template(name: str, source: str, folder: Path | None = None) -> Path:
    """Write ``source`` as ``<folder>/<name>.py`` atomically, keeping the old version.

    ``folder`` defaults to the user's template folder
    (:func:`~cookbook_core.paths.user_templates_dir`), whose templates are untrusted
    and run only in the sandbox; a trusted folder (the shipped one, or one listed in
    ``COOKBOOK_TRUSTED_TEMPLATES``) is refused, so edited code never becomes trusted
    by being saved.  ``name`` must be a lower-case identifier (no path parts).  The
    source must pass static validation.  The previous file, if any, is copied to
    ``<folder>/.history/<name>-<time>.py``.
    """
    if not _NAME.fullmatch(name):
        raise BadInput(
            f"template file name {name!r} must be a lower-case identifier "
            "(letters, digits, underscores; no path separators)"
        )
    problems = validate_source(source)
    if problems:
        raise SandboxRejected(problems)
    folder = (folder or paths.user_templates_dir()).resolve()
    target = (folder / f"{name}.py").resolve()
    if target.parent != folder:
        raise BadInput(f"refusing to write outside {folder}")
    if any(folder == d.resolve() for d in paths.trusted_template_dirs()):
        raise BadInput(
            f"refusing to save into the trusted folder {folder}: templates edited here are "
            "saved to an untrusted folder (duplicate it under a new name instead)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    if target.exists():
        history = folder / ".history"
        history.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}"
        shutil.copy2(target, history / f"{name}-{stamp}.py")
    tmp = folder / f".{name}.py.tmp-{os.getpid()}"
    tmp.write_text(source, encoding="utf-8")
    os.replace(tmp, target)
    return target


def history(name: str, folder: Path | None = None) -> list[Path]:
    """Earlier versions of a saved template, newest first."""
    folder = (folder or paths.user_templates_dir()).resolve()
    return sorted((folder / ".history").glob(f"{name}-*.py"), reverse=True)


def result_dict(result: SandboxResult) -> dict[str, Any]:
    return asdict(result)


def params_of(result: SandboxResult, name: str | None = None) -> list[Param]:
    """The parameters of template ``name`` (default: the first) as a sandboxed run
    described them, rebuilt as :class:`~cookbook_core.templates.Param` (for widgets)."""
    described = [t for t in result.templates if name is None or t["name"] == name]
    if not described:
        raise BadInput(f"the sandboxed file declares no template named {name!r}")
    kinds = {"int": int, "float": float, "str": str, "bool": bool}
    out = []
    for p in described[0]["params"]:
        choices = tuple(p["choices"]) if p["choices"] is not None else None
        param = Param(
            p["name"], kinds[p["type"]], p["default"], p["help"], p["low"], p["high"], choices
        )
        param.coerce(p["default"])  # a described default must itself be allowed
        out.append(param)
    return out


__all__ = [
    "ALLOWED_IMPORTS",
    "BoundaryUnavailable",
    "Limits",
    "Problem",
    "SandboxRejected",
    "SandboxResult",
    "CookbookError",
    "check_source",
    "history",
    "params_of",
    "preview_file",
    "run_source",
    "save_template",
    "validate_source",
]
