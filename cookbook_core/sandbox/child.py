"""The program that runs inside the sandbox's child process (see ``sandbox.py``).

Reads one JSON request on stdin, installs an audit hook that refuses dangerous
operations, loads the user's template file, previews samples with the rule's verdict
and writes one JSON result to the original stdout.  Run as ``python -I -B`` with a
scrubbed environment and resource limits set by the parent; never imported by the
library itself.
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


def main() -> None:
    request = json.loads(sys.stdin.read())
    sys.path.insert(0, request["project_root"])
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)

    # Everything the template may need is imported before the hook goes in.
    import importlib.util

    from cookbook_core import template_helpers, templates  # noqa: F401

    template_helpers.USE_NUMPY = False  # same samples; saves numpy's import time
    from cookbook_core.templates import Template

    with open(request["vocab_file"]) as fh:
        vocab = tuple(json.load(fh))
    sys.stdout = sys.stderr = _CappedSink()
    filename = request["file"]
    _install_hook(
        [sys.prefix, sys.base_prefix, sys.exec_prefix, request["project_root"], request["work"]]
    )
    result: dict = {"ok": False}
    try:
        spec = importlib.util.spec_from_file_location("user_template", filename)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found = [t for t in vars(module).values() if isinstance(t, Template)]
        if not found:
            raise LookupError("the file defines no @template")
        tpl = found[0]
        if request.get("name"):
            named = [t for t in found if t.name == request["name"]]
            if not named:
                raise LookupError(f"no template named {request['name']!r} in the file")
            tpl = named[0]
        samples = tpl.preview_records(vocab, request["n"], request["seed"], request.get("params"))
        json.dumps([s["meta"] for s in samples])  # must be plain JSON data
        described = [
            {
                "name": t.name,
                "family": t.family,
                "tasks": list(t.tasks),
                "doc": t.doc,
                "has_checker": t.has_checker,
                "params": [
                    {
                        "name": p.name,
                        "type": p.type.__name__,
                        "default": p.default,
                        "allowed": p.describe(),
                        "help": p.help,
                    }
                    for p in t.params.values()
                ],
            }
            for t in found
        ]
        result = {"ok": True, "samples": samples, "templates": described}
    except BaseException as exc:  # noqa: BLE001 - everything becomes a structured error
        result = {
            "ok": False,
            "error_type": type(exc).__name__,
            "message": str(exc)[:2000] or type(exc).__name__,
            "line": _user_line(exc, filename),
        }
    out.write(json.dumps(result))
    out.flush()


if __name__ == "__main__":
    main()
