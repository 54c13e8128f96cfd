"""Running user-edited (or LLM-written) template code safely: static checks, then a
limited child process.

What it does, in order:

1. **Static validation** (:func:`validate_source`), before anything runs: the code
   must parse, declare at least one ``@template(...)`` function taking ``(rng,
   vocab, *, ...)`` with defaults on every keyword parameter, and import only
   :data:`ALLOWED_IMPORTS`.  Calls of ``exec``/``eval``/``open``/``__import__``/
   ``getattr`` and friends, any ``_private`` or ``__dunder__`` attribute or name,
   and attributes that lead to interpreter internals (``sys``, ``os``,
   ``modules``, ``f_globals``...) are rejected.  Every problem has a line and column.
2. **Execution in a child process** (:func:`preview_file`): ``python -I``
   (isolated: no user site, no ``PYTHON*`` variables, no script dir on the path), a
   fresh temporary working directory, an environment with nothing but a minimal
   ``PATH``/``LANG``/``HOME``, resource limits (CPU seconds, address space, file
   size, open files, processes), a wall-clock timeout after which the whole process
   group is killed, a cap on the bytes read back, and, where ``unshare`` is
   permitted, new network and PID namespaces (no network at all; no other process
   visible or signalable).  Inside the child, before the template code is loaded,
   an audit hook (PEP 578) refuses process creation, signals, network use,
   ``ctypes``, writes anywhere, and reads outside the Python installation, the
   project, the sandbox folder and the token file.  Results come back as JSON: the
   samples with the rule's verdict, or an error with type, message and line.

What it does **not** protect against: it is not a security boundary against a
determined attacker with a Python interpreter exploit (a crash in C code, a bug in
the audit-hook coverage of some module the allowed imports reach).  Where
``unshare`` is refused (some containers), there is no network namespace: network
access is then blocked only by the import allowlist and the audit hook.  When the
studio runs as root, ``RLIMIT_NPROC`` is not enforced by the kernel; process
creation is then blocked only by the allowlist and the audit hook.  CPU use of a
template is bounded by the limits, but a run may use up to the limits each time.

Also here: :func:`save_template` writes edited templates into a template folder
(names validated, atomic write, the previous version kept under ``.history/``).
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cookbook_core import paths, tokens
from cookbook_core.errors import BadInput, CookbookError

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


_CHILD = Path(__file__).with_name("child.py")


@functools.lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Whether ``unshare --net --pid`` works here (probed once)."""
    exe = shutil.which("unshare")
    if not exe:
        return False
    try:
        res = subprocess.run(
            [exe, "--net", "--pid", "--fork", "--kill-child", "true"],
            capture_output=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def _set_limits(limits: Limits) -> None:  # runs in the child between fork and exec
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_kb * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    if os.geteuid() != 0:  # the kernel ignores RLIMIT_NPROC for root
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


def _vocab_file(spec: str, workdir: Path) -> Path:
    space = tokens.load(spec)
    path = workdir / "vocab.json"
    path.write_text(json.dumps(list(space.tokens)))
    return path


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
) -> SandboxResult:
    """Validate ``source``, then preview ``n`` samples of its template(s) in a child.

    ``name`` picks one template when the file declares several (default: the first).
    Raises :class:`SandboxRejected` when static validation fails; anything that goes
    wrong while running comes back as a failed :class:`SandboxResult`.
    """
    if validate:
        problems = validate_source(source)
        if problems:
            raise SandboxRejected(problems)
    limits = limits or Limits()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cookbook_sandbox_") as tmp:
        work = Path(tmp)
        (work / "user_template.py").write_text(source)
        request = {
            "file": str(work / "user_template.py"),
            "name": name,
            "n": n,
            "seed": seed,
            "params": params or {},
            "vocab_file": str(_vocab_file(token_space, work)),
            "project_root": str(paths.PROJECT_ROOT),
            "work": str(work),
        }
        result = _run_child(request, work, limits)
    result.elapsed_s = time.perf_counter() - started
    return result


def preview_file(path: Path | str, **kwargs: Any) -> SandboxResult:
    """:func:`run_source` on a file's contents."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    return run_source(source, **kwargs)


def _command() -> list[str]:
    cmd = [sys.executable, "-I", "-B", str(_CHILD)]
    if namespaces_available():
        cmd = ["unshare", "--net", "--pid", "--fork", "--kill-child"] + cmd
    return cmd


def _run_child(request: dict[str, Any], work: Path, limits: Limits) -> SandboxResult:
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(work),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(
        _command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=work,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: _set_limits(limits),  # noqa: PLW1509 - no threads touched here
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps(request).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    cap = limits.output_kb * 1024
    deadline = time.monotonic() + limits.wall_seconds
    chunks: list[bytes] = []
    size = 0
    os.set_blocking(proc.stdout.fileno(), False)
    verdict: str | None = None
    status: int | None = None
    usage: resource.struct_rusage | None = None
    while True:
        try:
            chunk = proc.stdout.read(65536)
        except BlockingIOError:
            chunk = None
        if chunk:
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                verdict = f"output exceeded {limits.output_kb} KB"
                break
            continue
        if status is None:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, usage = st, ru
        if chunk == b"" and status is not None:
            break
        if time.monotonic() > deadline:
            verdict = f"timed out after {limits.wall_seconds:g} s (wall clock)"
            break
        time.sleep(0.005)
    if verdict is not None:
        _kill_group(proc)
        return SandboxResult(False, error_type="LimitExceeded", message=verdict)
    if status is None:
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert usage is not None
    raw = b"".join(chunks)
    try:
        payload = json.loads(raw.decode("utf-8"))
        return SandboxResult(**payload)
    except (ValueError, TypeError):
        pass
    cpu = usage.ru_utime + usage.ru_stime
    if cpu >= limits.cpu_seconds - 0.1:
        return SandboxResult(
            False,
            error_type="LimitExceeded",
            message=f"CPU time limit of {limits.cpu_seconds} s exceeded (used {cpu:.1f} s)",
        )
    return SandboxResult(False, error_type="Crashed", message=_describe_exit(proc.returncode))


def _describe_exit(rc: int) -> str:
    if rc < 0 or rc > 128:
        sig = -rc if rc < 0 else rc - 128
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"the template process was killed by {name}"
    return f"the template process exited with code {rc} without a result"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait()
    except ChildProcessError:  # already reaped by wait4
        pass


# ----------------------------------------------------------------------------------
# Saving


_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def save_template(name: str, source: str, folder: Path | None = None) -> Path:
    """Write ``source`` as ``<folder>/<name>.py`` atomically, keeping the old version.

    ``folder`` defaults to the shipped templates folder.  ``name`` must be a
    lower-case identifier (no path parts).  The source must pass static validation.
    The previous file, if any, is copied to ``<folder>/.history/<name>-<time>.py``.
    """
    if not _NAME.fullmatch(name):
        raise BadInput(
            f"template file name {name!r} must be a lower-case identifier "
            "(letters, digits, underscores; no path separators)"
        )
    problems = validate_source(source)
    if problems:
        raise SandboxRejected(problems)
    folder = (folder or paths.SHIPPED_TEMPLATES).resolve()
    target = (folder / f"{name}.py").resolve()
    if target.parent != folder:
        raise BadInput(f"refusing to write outside {folder}")
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
    folder = (folder or paths.SHIPPED_TEMPLATES).resolve()
    return sorted((folder / ".history").glob(f"{name}-*.py"), reverse=True)


def result_dict(result: SandboxResult) -> dict[str, Any]:
    return asdict(result)


__all__ = [
    "ALLOWED_IMPORTS",
    "Limits",
    "Problem",
    "SandboxRejected",
    "SandboxResult",
    "CookbookError",
    "history",
    "preview_file",
    "run_source",
    "save_template",
    "validate_source",
]
