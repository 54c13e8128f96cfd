"""The program that runs inside the sandbox (see ``boundary.py`` and ``runner.py``).

Started by bubblewrap as ``python -I -S -B /sandbox/child.py``.  It reads one JSON
request on stdin (the template source, the token list, the mode and its
arguments), then, before any template code exists in the process:

1. loads the second seccomp filter it was given (no ``execve`` from now on) and
   checks the boundary is really there (``no_new_privs``, two seccomp filters,
   uid 65534, no capabilities); if not, it exits with code 3 and runs nothing;
2. imports the template API from ``/sandbox/lib`` and moves stdout/stderr to
   ``/dev/null`` (only a private duplicate carries the result);
3. optionally installs an audit hook (PEP 578) as an early, friendlier warning;
   it is not the boundary and tests switch it off to prove that.

Modes: ``preview`` (the first ``n`` samples and a description of the file's
templates, without verdicts) and ``check`` (the rule checker's verdict on samples
the parent supplies).  One JSON object is written back.  Started with
``--generate`` it serves dataset generation instead (``generation.py`` is the
parent side): requests and answers are length-prefixed frames (8 bytes, big-endian,
then JSON); the first request sets the template up (as above) and is answered
``{"ok": true, "ready": true}``, each later one asks for samples ``[lo, hi)`` and is
answered with them as ``[prompt, completion, meta]`` triples plus fault counts,
until stdin closes.  Everything it says is treated by the parent as untrusted data;
this program is never imported by the library itself.  ``--probe`` only reports
whether the boundary is in place.
"""

import io
import json
import os
import sys
import traceback

_BLOCKED_PREFIXES = (
    "socket.",
    "ctypes.",
    "subprocess.",
    "os.exec",
    "os.spawn",
    "os.posix_spawn",
    "os.fork",
    "os.kill",
    "os.killpg",
    "os.system",
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.truncate",
    "os.link",
    "os.symlink",
    "os.utime",
    "os.chdir",
    "os.setxattr",
    "os.removexattr",
    "shutil.",
    "pty.",
    "signal.",
    "sys.addaudithook",
    "sys.setprofile",
    "sys.settrace",
    "sys.setrecursionlimit",
    "code.__new__",
    "function.__new__",
    "mmap.",
    "resource.setrlimit",
    "urllib.",
    "http.",
    "ftplib.",
    "smtplib.",
    "webbrowser.",
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_TEMPLATE_FILE = "/tmp/user_template.py"
_BOUNDARY_EXIT = 3


class _CappedSink(io.TextIOBase):
    """Swallows what the template prints, keeping at most ``cap`` characters."""

    def __init__(self, cap: int = 65536) -> None:
        self.cap = cap
        self.kept: list[str] = []
        self.size = 0

    def write(self, s: str) -> int:
        if self.size < self.cap:
            self.kept.append(s[: self.cap - self.size])
        self.size += len(s)
        return len(s)


def _status() -> dict:
    with open("/proc/self/status") as fh:
        return dict(line.split(":\t", 1) for line in fh.read().splitlines() if ":\t" in line)


def _load_exec_filter(program: bytes) -> None:
    """Install a compiled seccomp BPF program (prepared by the parent with libseccomp)."""
    import ctypes

    if not program or len(program) % 8:
        raise RuntimeError("empty or malformed seccomp program")

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_seccomp, seccomp_mode_filter = 22, 2
    if libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def _boundary_problems(filters_expected: int) -> list[str]:
    st = _status()
    problems = []
    if st.get("NoNewPrivs", "").strip() != "1":
        problems.append("no_new_privs is not set")
    if st.get("Seccomp", "").strip() != "2":
        problems.append("no seccomp filter")
    if int(st.get("Seccomp_filters", "0").strip() or 0) < filters_expected:
        problems.append(f"fewer than {filters_expected} seccomp filters")
    if st.get("Uid", "").split()[:1] != ["65534"] or os.getuid() != 65534:
        problems.append("not running as uid 65534")
    if int(st.get("CapEff", "0").strip() or "0", 16) != 0:
        problems.append("capabilities are not dropped")
    return problems


def _probe() -> None:
    problems = _boundary_problems(1)
    import socket

    try:
        socket.socket()
        problems.append("socket() was allowed")
    except PermissionError:
        pass
    if problems:
        print("; ".join(problems))
        sys.exit(_BOUNDARY_EXIT)
    print("boundary-ok")


def _install_hook(read_roots: list[str]) -> None:
    roots = tuple(os.path.realpath(r) + os.sep for r in read_roots)

    def hook(event: str, args: tuple) -> None:
        if event.startswith(_BLOCKED_PREFIXES):
            raise PermissionError(f"sandbox: {event} is not allowed in templates")
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            if isinstance(path, int):
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writing:
                raise PermissionError(f"sandbox: writing {path!r} is not allowed")
            real = os.path.realpath(os.fsdecode(path))
            if not (real + os.sep).startswith(roots):
                raise PermissionError(f"sandbox: reading {path!r} is not allowed")

    sys.addaudithook(hook)


def _user_line(exc: BaseException, filename: str) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


def _describe(found: list) -> list[dict]:
    return [
        {
            "name": t.name,
            "family": t.family,
            "tasks": list(t.tasks),
            "doc": t.doc,
            "has_checker": t.has_checker,
            "token_space": t.token_space,
            "artifacts": dict(t.artifacts),
            "params": [
                {
                    "name": p.name,
                    "type": p.type.__name__,
                    "default": p.default,
                    "help": p.help,
                    "low": p.low,
                    "high": p.high,
                    "choices": list(p.choices) if p.choices is not None else None,
                }
                for p in t.params.values()
            ],
        }
        for t in found
    ]


def _parse_artifacts(texts: dict) -> dict:
    """The artifact texts the parent sent, parsed here, inside the boundary (a drafted
    artifact is untrusted data: the parent never parses it)."""
    out = {}
    for name, text in texts.items():
        try:
            out[name] = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"artifact {name!r} is not valid JSON: {exc}") from None
    return out


def _read_frame(stream: io.BufferedIOBase) -> bytes | None:
    """One length-prefixed frame, or None at end of input."""
    head = stream.read(8)
    if not head:
        return None
    if len(head) != 8:
        raise EOFError("truncated frame header")
    size = int.from_bytes(head, "big")
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("truncated frame")
    return data


def _write_frame(out: io.BufferedIOBase, text: str) -> None:
    data = text.encode("utf-8")
    out.write(len(data).to_bytes(8, "big") + data)
    out.flush()


def _error(exc: BaseException) -> dict:
    return {
        "ok": False,
        "error_type": type(exc).__name__,
        "message": str(exc)[:2000] or type(exc).__name__,
        "line": _user_line(exc, _TEMPLATE_FILE),
    }


def _serve_generation(tpl: object, request: dict, vocab: tuple, out: io.BufferedIOBase) -> None:
    """Answer sample requests for one template until stdin closes."""
    from cookbook_core.templates import FaultLog

    params = tpl.resolve_params(request.get("params"))
    seed = request["seed"]
    _write_frame(out, json.dumps({"ok": True, "ready": True}))
    stdin = sys.__stdin__.buffer
    while True:
        raw = _read_frame(stdin)
        if raw is None:
            return
        ask = json.loads(raw)
        log = FaultLog()
        samples: list = []
        exhausted = False
        try:
            for ex in tpl.samples(
                vocab, seed, ask["lo"], ask["hi"], params, resolved=True, log=log
            ):
                samples.append([ex.prompt, ex.completion, ex.meta])
        except Exception:  # noqa: BLE001 - a sample failed every retry: counted in log
            exhausted, samples = True, []
        try:
            text = json.dumps(
                {
                    "ok": True,
                    "samples": samples,
                    "faults": log.faults,
                    "attempts": log.attempts,
                    "first": log.first[:20_000] if log.first else None,
                    "exhausted": exhausted,
                }
            )
        except BaseException as exc:  # noqa: BLE001 - e.g. meta that is not JSON data
            _write_frame(out, json.dumps(_error(exc)))
            return
        _write_frame(out, text)


def main() -> None:
    if sys.argv[1:] == ["--probe"]:
        _probe()
        return
    generating = sys.argv[1:] == ["--generate"]
    # The project's own template API is imported before the request is read: a child
    # started ahead of time (the verdict run) then waits warm.  No template code exists
    # yet, and the exec filter is loaded before any does.
    sys.path.insert(0, "/sandbox/lib")
    import importlib.util

    from cookbook_core import template_helpers, templates  # noqa: F401

    raw = _read_frame(sys.stdin.buffer) if generating else sys.stdin.buffer.read()
    request = json.loads(raw or b"{}")
    try:
        _load_exec_filter(bytes.fromhex(request["exec_filter"]))
    except Exception as exc:  # noqa: BLE001 - no boundary, no template code
        print(f"could not load the exec filter: {exc}", file=sys.stderr)
        sys.exit(_BOUNDARY_EXIT)
    problems = _boundary_problems(2)
    if problems:
        print("boundary incomplete: " + "; ".join(problems), file=sys.stderr)
        sys.exit(_BOUNDARY_EXIT)

    if generating:  # binary frames
        out = os.fdopen(os.dup(1), "wb")
    else:
        out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)

    template_helpers.USE_NUMPY = False  # same samples; numpy is not in the sandbox
    from cookbook_core.templates import Template

    vocab = tuple(request["vocab"])
    with open(_TEMPLATE_FILE, "w", encoding="utf-8") as fh:
        fh.write(request["source"])
    sys.stdout = sys.stderr = _CappedSink()
    if request.get("guards", True):
        _install_hook([sys.prefix, sys.base_prefix, "/sandbox", "/tmp"])
    result: dict = {"ok": False}
    try:
        spec = importlib.util.spec_from_file_location("user_template", _TEMPLATE_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found = [t for t in vars(module).values() if isinstance(t, Template)]
        if not found:
            raise LookupError("the file defines no @template")
        supplied = _parse_artifacts(request.get("artifacts") or {})
        for t in found:  # artifacts come only from the request, never from files here
            t.supply_artifacts(supplied)
        tpl = found[0]
        if request.get("name"):
            named = [t for t in found if t.name == request["name"]]
            if not named:
                raise LookupError(f"no template named {request['name']!r} in the file")
            tpl = named[0]
        if generating:
            _serve_generation(tpl, request, vocab, out)
            return
        if request["mode"] == "check":
            params = tpl.resolve_params(request.get("params"))
            verdicts = [
                tpl.check(s["meta"], s["completion"], params) if tpl.has_checker else None
                for s in request["samples"]
            ]
            result = {"ok": True, "verdicts": verdicts}
        else:
            examples = tpl.preview(vocab, request["n"], request["seed"], request.get("params"))
            samples = [
                {"prompt": e.prompt, "completion": e.completion, "meta": e.meta} for e in examples
            ]
            result = {"ok": True, "samples": samples, "templates": _describe(found)}
        text = json.dumps(result)
    except BaseException as exc:  # noqa: BLE001 - everything becomes a structured error
        text = json.dumps(_error(exc))
        if generating:
            _write_frame(out, text)
            return
    out.write(text)
    out.flush()


if __name__ == "__main__":
    main()
