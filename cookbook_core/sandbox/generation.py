"""Dataset generation from untrusted templates: the parent side of sandboxed workers.

A template in an untrusted folder (the user's ``<COOKBOOK_HOME>/templates``,
``COOKBOOK_TEMPLATES`` folders, drafts) is never imported in-process.  For
generation it is, instead:

1. **described** (:func:`describe`): its file is read once, statically validated
   (:func:`~cookbook_core.sandbox.runner.validate_source`), and a sandboxed run with
   no samples reports its parameters, family and token space
   (:class:`SandboxedTemplate`: what the engine and the CLI need to resolve
   parameters without the code).  The text read here is what runs and what the
   manifest's ``source_sha256`` hashes.  An untrusted template may only name a
   built-in token space (:data:`BUILTIN_TOKEN_SPACES`), so it cannot make the parent
   read a file of its choosing and hand its words back to it.
2. **drawn** (:class:`SandboxedSource`): a persistent child inside the OS boundary
   (``child.py --generate``: bubblewrap, uid 65534, seccomp, limits; see
   ``boundary.py``) receives the source, the template name, the resolved parameters,
   the token list and the seed once, then answers requests for sample ranges
   ``[lo, hi)`` (at most :data:`CHUNK` samples each, starting on a stream boundary)
   with ``[prompt, completion, meta]`` triples and its fault counts.  Every answer is
   untrusted: it is checked by :func:`~cookbook_core.sandbox.protocol.decode` and
   :func:`~cookbook_core.sandbox.protocol.generate_result` (strict UTF-8, no lone
   surrogates, bounded nesting, sizes and counts, exactly the samples asked for)
   before the engine turns the samples into rows.  :meth:`SandboxedSource.samples`
   has the signature of :meth:`~cookbook_core.templates.Template.samples`, so the
   engine's blocks, workers, block files and splicing are the same code for both, and
   the bytes written are identical to a trusted run of the same file (the child draws
   with the same streams; JSON carries strings, numbers and dicts exactly; a tuple in
   ``meta`` arrives as a list, and non-finite numbers or lone surrogates, which the
   in-process engine would write, are refused here).

Each generation worker process owns its own children (started on first use, never
shared across a fork).  A child that crashes, overruns its wall clock per request
(:data:`LIMITS`), answers malformed data or reports an error stops the run with one
:class:`SandboxFailure`; a template that raises is retried and counted like a
trusted one (the fault rate rules of ``generate`` apply), with its traceback shown
without control characters.  What this does not do: write datasets (``generate``
does, in the parent), or run anything outside the boundary
(:class:`~cookbook_core.sandbox.boundary.BoundaryUnavailable` when it cannot be
built).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cookbook_core import artifacts, discovery
from cookbook_core.artifacts import ArtifactRef
from cookbook_core.errors import CookbookError
from cookbook_core.sandbox import boundary, protocol, runner
from cookbook_core.templates import (
    RETRIES,
    STREAM,
    Example,
    FaultLog,
    Param,
    Template,
    TemplateError,
)

CHUNK = 2 * STREAM
"""Samples per request to a child (a multiple of the stream length)."""
LIMITS = runner.Limits(
    cpu_seconds=24 * 3600,
    wall_seconds=60.0,
    memory_mb=2048,
    output_kb=128 * 1024,
)
"""Limits of one generation child: ``wall_seconds`` and ``output_kb`` apply to each
answer; CPU seconds and memory to the child's whole life."""
SETUP_SECONDS = 30.0
"""Wall clock for a child to start, load the template and say it is ready."""
BUILTIN_TOKEN_SPACES = ("tokenizer", "words", "words:web2", "words:gcide")
"""The token spaces an untrusted template may declare (no paths)."""

STATIC_CHECKS = True
"""Validate the source statically before describing it (tests switch it off to show
that the OS boundary alone holds)."""
IN_PROCESS_GUARDS = True
"""Install the child's audit hook (an early warning, not the boundary; tests switch
it off)."""

_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class SandboxFailure(CookbookError):
    """The sandboxed template process failed as a whole (crash, limit, error, malformed
    answer): the run stops; nothing is published."""


class TemplateFault(Exception):
    """A sandboxed sample failed every retry (counted in the fault log, like a trusted
    template's last exception)."""


def printable(text: str) -> str:
    """``text`` with control and bidirectional-override characters replaced (text from a
    child is shown to the user, never interpreted by the terminal)."""
    return _UNPRINTABLE.sub("?", text)


@dataclass(frozen=True)
class SandboxedTemplate:
    """An untrusted template as a sandboxed run described it, with the exact source.

    Offers what callers use of a :class:`~cookbook_core.templates.Template` without
    its code: ``name``, ``family``, ``tasks``, ``doc``, ``params``, ``token_space``,
    ``has_checker``, ``source_file`` and :meth:`resolve_params`.
    """

    name: str
    family: str
    tasks: tuple[str, ...]
    doc: str
    params: dict[str, Param]
    token_space: str | None
    has_checker: bool
    source_file: str
    source: str
    sha256: str
    guards: bool = True
    artifacts: dict[str, str] = field(default_factory=dict)  # declared: name -> description
    # the versions this run uses: name -> (reference, JSON text read, not parsed, here)
    artifact_texts: dict[str, tuple[ArtifactRef, str]] = field(default_factory=dict)

    def resolve_params(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``given``, coerced and range-checked (as a template does)."""
        given = dict(given or {})
        for key in given:
            if key not in self.params:
                known = ", ".join(self.params) or "none"
                raise TemplateError(
                    f"template {self.name!r} has no parameter {key!r}"
                    f"{discovery.suggest(key, list(self.params))} (parameters: {known})"
                )
        return {
            n: p.coerce(given[n], self.name) if n in given else p.default
            for n, p in self.params.items()
        }


_described: dict[tuple[str, str, str, bool, bool], SandboxedTemplate] = {}


def describe(path: Path | str, name: str) -> SandboxedTemplate:
    """Read ``path``, check it statically, and describe its template ``name`` in the
    sandbox (cached per file content).  Raises ``SandboxRejected`` (static problems),
    ``TemplateError`` (it does not load, or declares no such template, or names a token
    space with a path) or ``BoundaryUnavailable``."""
    path = Path(path).resolve()
    try:
        data = path.read_bytes()
        source = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read template file {path}: {exc}") from None
    sha = hashlib.sha256(data).hexdigest()
    key = (str(path), name, sha, STATIC_CHECKS, IN_PROCESS_GUARDS)
    if key not in _described:
        _described[key] = _describe(path, name, source, sha)
    found = _described[key]
    texts = artifacts.latest_texts(path, tuple(found.artifacts), name)  # now, not cached
    return replace(found, artifact_texts=texts)


def _describe(path: Path, name: str, source: str, sha: str) -> SandboxedTemplate:
    if STATIC_CHECKS:
        problems = runner.validate_source(source, str(path))
        if problems:
            raise runner.SandboxRejected(problems)
    res = runner.run_source(
        source, name=name, n=0, validate=False, in_process_guards=IN_PROCESS_GUARDS
    )
    if not res.ok:
        raise TemplateError(
            f"template {name!r} ({path}) failed to load in the sandbox: {printable(res.error)}"
        )
    found = [t for t in res.templates if t["name"] == name]
    if not found:
        raise TemplateError(f"{path} declares {name!r} but defines no such template")
    t = found[0]
    space = t["token_space"]
    if space is not None and space not in BUILTIN_TOKEN_SPACES:
        raise TemplateError(
            f"template {name!r} ({path}) is untrusted and may only name a built-in token "
            f"space ({', '.join(BUILTIN_TOKEN_SPACES)}), not {printable(space)!r}; pass "
            "--token-space yourself, or trust its folder"
        )
    params = {p.name: p for p in runner.params_of(res, name)}
    described = SandboxedTemplate(
        name=name,
        family=t["family"],
        tasks=tuple(t["tasks"]),
        doc=printable(t["doc"]),
        params=params,
        token_space=space,
        has_checker=t["has_checker"],
        source_file=str(path),
        source=source,
        sha256=sha,
        guards=IN_PROCESS_GUARDS,
        artifacts=dict(t["artifacts"]),
    )
    return described


def template_for(name: str) -> Template | SandboxedTemplate:
    """The template called ``name``: imported when its folder is trusted, described in
    the sandbox otherwise (never imported here).  Unknown names get a did-you-mean."""
    entry = discovery.find(name)
    if entry.ok and not entry.trusted:
        return describe(entry.file, name)
    return discovery.get(name)


# ----------------------------------------------------------------------------------
# The child


class SandboxedSource:
    """One untrusted template drawn in a persistent sandboxed child.

    :meth:`samples` behaves like :meth:`~cookbook_core.templates.Template.samples`
    (same samples, faults counted into ``log``; :class:`TemplateFault` when a sample
    failed every retry) for ranges that start on a stream boundary.  The child is
    started on first use in the calling process and restarted when the token list,
    seed or parameters change; :meth:`close` stops it.
    """

    def __init__(
        self,
        name: str,
        source: str,
        *,
        guards: bool = True,
        limits: runner.Limits | None = None,
        artifacts: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.guards = guards
        self.artifacts = dict(artifacts or {})  # name -> JSON text, parsed in the child
        self.limits = limits or LIMITS
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = 0
        self._key: tuple[Any, ...] | None = None

    def samples(
        self,
        vocab: Sequence[str],
        seed: int,
        start: int,
        stop: int,
        params: Mapping[str, Any] | None = None,
        *,
        resolved: bool = False,
        log: FaultLog | None = None,
    ) -> Iterator[Example]:
        """Samples ``start`` to ``stop - 1`` (``params`` already resolved by the caller).

        The request for the next chunk is sent as soon as an answer has arrived, so the
        child draws it while this process checks the answer and the caller encodes it.
        """
        if start % STREAM:
            raise ValueError(f"sandboxed samples start on a stream boundary, not at {start}")
        log = log if log is not None else FaultLog()
        ranges = [(lo, min(stop, lo + CHUNK)) for lo in range(start, stop, CHUNK)]
        if not ranges:
            return
        self._ensure(vocab, seed, dict(params or {}))
        self._send({"lo": ranges[0][0], "hi": ranges[0][1]}, self.limits.wall_seconds)
        in_flight = True
        try:
            for i, (lo, hi) in enumerate(ranges):
                raw = self._receive(self.limits.wall_seconds)
                in_flight = False
                if i + 1 < len(ranges):
                    nxt = ranges[i + 1]
                    self._send({"lo": nxt[0], "hi": nxt[1]}, self.limits.wall_seconds)
                    in_flight = True
                try:
                    got = protocol.generate_result(self._answer(raw), hi - lo, RETRIES)
                except protocol.MalformedResult as exc:
                    self._fail(f"malformed result: {exc}")
                log.attempts += got.attempts
                log.faults += got.faults
                if log.first is None and got.first:
                    log.first = printable(got.first)
                if got.exhausted:
                    raise TemplateFault(
                        f"template {self.name!r}: a sample in [{lo}, {hi}) failed {RETRIES} times"
                    )
                for prompt, completion, meta in got.samples:
                    yield Example(prompt, completion, meta)
        finally:
            if in_flight:  # an answer nobody will read: the channel is out of step
                self.close()

    def close(self) -> None:
        """Stop the child (if this process started one)."""
        proc, self._proc, self._key = self._proc, None, None
        if proc is None:
            return
        if self._owner == os.getpid():
            runner._kill_group(proc)
        else:  # inherited through fork: the parent's child, not ours to stop
            for stream in (proc.stdin, proc.stdout):
                if stream is not None and not stream.closed:
                    stream.close()

    # -- internals ---------------------------------------------------------------
    def _ensure(self, vocab: Sequence[str], seed: int, params: dict[str, Any]) -> None:
        key = (id(vocab), len(vocab), seed, tuple(sorted(params.items())))
        if self._proc is not None and self._owner == os.getpid() and self._key == key:
            return
        self.close()
        _, exec_filter = boundary.seccomp_programs()
        try:
            self._proc = runner._start_child(self.limits, ["--generate"])
        except boundary.BoundaryUnavailable as exc:
            raise SandboxFailure(str(exc)) from None
        self._owner = os.getpid()
        setup = {
            "mode": "generate",
            "exec_filter": exec_filter.hex(),
            "source": self.source,
            "name": self.name,
            "params": params,
            "seed": seed,
            "vocab": list(vocab),
            "guards": self.guards,
            "artifacts": self.artifacts,
        }
        self._send(setup, SETUP_SECONDS)
        answer = self._answer(self._receive(SETUP_SECONDS))
        try:
            protocol.ready_result(answer)
        except protocol.MalformedResult as exc:
            self._fail(f"malformed result: {exc}")
        self._key = key

    def _fail(self, why: str) -> Any:
        self.close()
        raise SandboxFailure(
            f"template {self.name!r} failed in the sandbox: {why}; nothing was written"
        )

    def _send(self, request: dict[str, Any], seconds: float) -> None:
        """Write one request frame (within ``seconds``)."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        deadline = time.monotonic() + seconds
        payload = json.dumps(request).encode()
        wfd = proc.stdin.fileno()
        os.set_blocking(wfd, False)
        view = memoryview(len(payload).to_bytes(8, "big") + payload)
        while view:
            self._wait(wfd, deadline, seconds, write=True)
            try:
                view = view[os.write(wfd, view[: 1 << 20]) :]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                self._ended()

    def _receive(self, seconds: float) -> bytes:
        """Read one answer frame (within ``seconds``, at most the output cap)."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        deadline = time.monotonic() + seconds
        rfd = proc.stdout.fileno()
        size = int.from_bytes(self._read(rfd, 8, deadline, seconds), "big")
        cap = self.limits.output_kb * 1024
        if size > cap:
            self._fail(f"an answer of {size} bytes, more than the {cap} allowed")
        return self._read(rfd, size, deadline, seconds)

    def _answer(self, raw: bytes) -> Any:
        """Decode an answer frame; an error answer raises :class:`SandboxFailure`."""
        try:
            answer = protocol.decode(raw)
        except protocol.MalformedResult as exc:
            self._fail(f"malformed result: {exc}")
        if isinstance(answer, dict) and answer.get("ok") is False:
            try:
                etype, message, line = protocol.error_result(answer)
            except protocol.MalformedResult as exc:
                self._fail(f"malformed result: {exc}")
            where = f" (line {line})" if line else ""
            self._fail(f"{printable(etype)}: {printable(message)}{where}")
        return answer

    def _wait(self, fd: int, deadline: float, seconds: float, *, write: bool) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            self._fail(f"no answer within {seconds:g} s (wall clock); its process was stopped")
        r, w, _ = select.select([] if write else [fd], [fd] if write else [], [], left)
        if not (r or w) and time.monotonic() >= deadline:
            self._fail(f"no answer within {seconds:g} s (wall clock); its process was stopped")

    def _read(self, fd: int, size: int, deadline: float, seconds: float) -> bytes:
        buf = bytearray()
        while len(buf) < size:
            self._wait(fd, deadline, seconds, write=False)
            chunk = os.read(fd, min(size - len(buf), 1 << 22))
            if not chunk:
                self._ended()
            buf += chunk
        return bytes(buf)

    def _ended(self) -> Any:
        """The child closed its end: say how it ended."""
        proc = self._proc
        assert proc is not None
        try:
            rc = proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            rc = None
        if rc is None:
            return self._fail("its process closed the result channel without an answer")
        return self._fail(runner._describe_exit(rc).replace("the template process", "its process"))


__all__ = [
    "BUILTIN_TOKEN_SPACES",
    "CHUNK",
    "LIMITS",
    "SandboxFailure",
    "SandboxedSource",
    "SandboxedTemplate",
    "TemplateFault",
    "describe",
    "printable",
    "template_for",
]
