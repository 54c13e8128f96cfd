"""The generation engine: datasets from one template or a weighted mixture.

What it guarantees:

* **Exact counts.** Weights become per-template counts by largest-remainder
  rounding (:func:`plan_counts`); the dataset holds exactly those counts.
* **Determinism.** Sample ``k`` of template ``t`` is a pure function of
  (template, params, seed, k): it is drawn from the template's random stream
  ``k // STREAM`` (see :mod:`cookbook_core.templates`; one seeded generator per
  :data:`~cookbook_core.templates.STREAM` indices, not per sample).  The output is
  cut into fixed blocks that do not depend on the number of workers; each block
  holds whole streams of each template (:func:`template_range`) and interleaves the
  templates in a fixed order, so the bytes written are identical for 1 or many
  worker processes.
* **Bounded memory and disk.** Blocks are produced by worker processes, each written
  to its own small block file, and spliced into the data file in order by the parent
  (``copy_file_range``: the bytes never pass through the parent's memory) with a
  bounded number in flight; a spliced block file is deleted at once.
* **Atomic output.** Everything is written into a hidden sibling folder that is
  renamed to the final name only when the dataset and its ``manifest.json`` are
  complete (and fsynced; write-back starts while generation runs).  A failed run
  leaves nothing under the final name.
* **Faults.** A template that raises is retried (same random stream, advanced) up
  to :data:`RETRIES` times; every exception is counted per template with the first
  traceback kept.  Above ``max_fault_rate`` the run stops with :class:`GenerationError`.
* **Untrusted templates** (a folder that is not trusted, see ``discovery``) are never
  imported here: each is described in the sandbox and drawn by a persistent sandboxed
  child per worker process (:mod:`cookbook_core.sandbox.generation`), whose answers are
  validated before this module turns them into rows.  The bytes written are the same
  as for the same file in a trusted folder.
* **Bounds.** ``n`` is at most :data:`MAX_SAMPLES`; before anything is written the
  bytes per sample are estimated from the first stream of each template and the run
  is refused (:class:`NotEnoughSpace`) when the output folder's filesystem has less
  free space than the estimate needs.

Row layouts (:data:`LAYOUTS`): ``compact`` (the default) writes ``prompt``,
``completion`` and ``meta``, and a ``meta.parent``/``meta.child`` string of
:data:`MIN_SPAN_CHARS` or more characters that occurs in the prompt (a document), or a
list of strings that all occur in it (passages, choices) and that long together, is
stored once, as spans of the prompt under ``meta["in_prompt"]``
(``{"parent": {"document": [10, 712]}}``, ``{"child": {"choices": [[9, 20], ...]}}``);
``full`` also writes ``messages`` (the
chat form) and every meta string in full, as a user reading the raw file without
this library may want.  :func:`cookbook_core.dataset_io.iter_rows` returns whole rows
(``messages`` and the full meta) for both.  ``template``, ``index`` and
``in_prompt`` are meta keys the engine owns.

Formats: JSONL, Parquet (``meta`` as a JSON string column) and a Hugging Face
``datasets`` folder (written via Parquet).  Worker processes are forked when the
calling process has a single thread (they then share the parent's loaded templates,
token spaces and numpy) and spawned otherwise.  What it does not do: read datasets
back (``dataset_io``) or train on them.
"""

from __future__ import annotations

import errno
import gc
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import c_make_encoder
from json.encoder import encode_basestring_ascii as _enc_str
from pathlib import Path
from types import GeneratorType
from typing import Any

from cookbook_core import artifacts, discovery, storage, template_helpers, tokens
from cookbook_core.errors import BadInput, CookbookError
from cookbook_core.generate_config import (  # the config is declared there (light to import)
    BLOCK_SIZE,
    FORMATS,
    LAYOUTS,
    GenerateConfig,
    GenerationConfigError,
    Source,
)
from cookbook_core.sandbox import generation as sandboxed
from cookbook_core.templates import RETRIES, STREAM, Example, FaultLog, Template, TemplateError

DATA_FILES = {"jsonl": "data.jsonl", "parquet": "data.parquet", "hf": "hf"}
MIN_ATTEMPTS_FOR_RATE = 200
MIN_SPAN_CHARS = 64
"""Shortest meta string that the compact layout stores as a span of the prompt."""
SYNC_BYTES = 32 << 20
"""Start write-back of the data file every this many bytes (the final fsync then
waits for the rest only)."""
MAX_SAMPLES = 100_000_000
"""The most samples one dataset may hold (``-n``)."""
SPACE_MARGIN = 16 << 20
"""Free space kept beyond the estimate (the manifest, filesystem slack)."""
_SPACE_FACTOR = {"jsonl": 1.0, "parquet": 1.0, "hf": 2.0}
"""Peak disk use per estimated JSONL byte: Parquet compresses (the JSONL size is an
upper bound); a ``datasets`` folder holds a staging Parquet file and its Arrow copy."""

_META_ENC = json.JSONEncoder(separators=(",", ":"))
_SPAN_SECTIONS = ("parent", "child")
_RESERVED = "in_prompt"

Progress = Callable[[int, int], None]
BlockResult = tuple[int, Any, list[int], list[int], list[str | None]]

__all__ = [
    "BLOCK_SIZE",
    "FORMATS",
    "LAYOUTS",
    "RETRIES",
    "GenerateConfig",
    "MAX_SAMPLES",
    "GenerationConfigError",
    "GenerationError",
    "NotEnoughSpace",
    "Source",
    "block_members",
    "block_plan",
    "config_from_dict",
    "config_to_dict",
    "generate",
    "manifest_summary",
    "plan_counts",
    "resolve_sources",
    "run_job",
    "template_range",
    "validate_job",
]


class GenerationError(CookbookError):
    """The run was stopped: too many template faults."""


class NotEnoughSpace(GenerationConfigError):
    """The output folder's filesystem has less free space than the dataset needs."""


def plan_counts(weights: Sequence[float], n: int) -> list[int]:
    """Split ``n`` by ``weights`` with largest-remainder rounding (ties: earlier first)."""
    if n < 0:
        raise ValueError("n must be >= 0")
    if not weights or any(w < 0 or not math.isfinite(w) for w in weights):
        raise ValueError("weights must be finite and >= 0")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("at least one weight must be > 0")
    quotas = [n * w / total for w in weights]
    counts = [math.floor(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def block_plan(counts: Sequence[int], block_size: int) -> int:
    """Number of blocks for a dataset with these per-template counts."""
    n = sum(counts)
    return max(1, math.ceil(n / block_size)) if n else 0


def template_range(count: int, n_blocks: int, b: int) -> tuple[int, int]:
    """The indices ``[lo, hi)`` of a template with ``count`` samples in block ``b``.

    Boundaries are the template's even share ``b * count / n_blocks`` rounded to the
    nearest multiple of :data:`STREAM` (the last one is ``count``), so a block holds
    whole random streams and never replays part of one.
    """

    def bound(j: int) -> int:
        if j >= n_blocks:
            return count
        return min(count, STREAM * ((2 * j * count + n_blocks * STREAM) // (2 * n_blocks * STREAM)))

    return bound(b), bound(b + 1)


def block_members(counts: Sequence[int], n_blocks: int, b: int) -> list[tuple[int, int]]:
    """The (source, per-template index) pairs of block ``b``, in output order.

    Template ``t`` contributes its indices :func:`template_range`; within the block
    the templates are interleaved evenly (each item keyed by its relative position in
    its template's run, ties by source order).
    """
    runs = []
    for t, c in enumerate(counts):
        lo, hi = template_range(c, n_blocks, b)
        if hi > lo:
            runs.append((t, lo, hi))
    if len(runs) == 1:
        t, lo, hi = runs[0]
        return [(t, k) for k in range(lo, hi)]
    keyed = []
    for t, lo, hi in runs:
        m = hi - lo
        keyed += [((j + 0.5) / m, t, lo + j) for j in range(m)]
    keyed.sort()
    return [(t, k) for _, t, k in keyed]


# ----------------------------------------------------------------------------------
# Work done in each process (the parent too, with one worker)


@dataclass
class _Resolved:
    name: str
    file: str
    params: dict[str, Any]
    space_spec: str
    source: str | None = None  # an untrusted template's exact source: drawn in the sandbox
    guards: bool = True
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> JSON text, read once


def _artifact_texts(tpl: AnyTemplate) -> dict[str, tuple[artifacts.ArtifactRef, str]]:
    """The artifact versions a run of ``tpl`` uses, read once in the parent so every
    worker (and the manifest) sees the same bytes."""
    if isinstance(tpl, sandboxed.SandboxedTemplate):
        return tpl.artifact_texts
    return artifacts.latest_texts(tpl.source_file or "", tuple(tpl.artifacts), tpl.name)


AnyTemplate = Template | sandboxed.SandboxedTemplate


def _drawer(r: _Resolved) -> Template | sandboxed.SandboxedSource:
    if r.source is None:
        tpl = discovery.load_file(Path(r.file))[r.name]
        if r.artifacts:  # trusted: parsed here, pinned to the versions the parent read
            tpl.supply_artifacts({n: json.loads(t) for n, t in r.artifacts.items()})
        return tpl
    return sandboxed.SandboxedSource(r.name, r.source, guards=r.guards, artifacts=r.artifacts)


class _BlockMaker:
    """Holds loaded templates and token spaces; turns a block number into output."""

    def __init__(self, resolved: list[_Resolved], counts: list[int], cfg: dict[str, Any]) -> None:
        self.templates = [_drawer(r) for r in resolved]
        self.params = [r.params for r in resolved]
        spaces: dict[str, tuple[str, ...]] = {}
        for r in resolved:
            if r.space_spec not in spaces:
                spaces[r.space_spec] = tokens.load(
                    r.space_spec, cfg["token_space_size"], cfg["seed"]
                ).tokens
        self.vocabs = [spaces[r.space_spec] for r in resolved]
        for vocab in spaces.values():
            template_helpers.prepare(vocab)
        self.counts = counts
        self.n_blocks = block_plan(counts, cfg["block_size"])
        self.seed = cfg["seed"]
        self.format = cfg["format"]
        self.compact = cfg["layout"] == "compact"

    def make(self, b: int) -> BlockResult:
        """Block ``b``: (b, payload or ``None`` when a sample failed every retry,
        faults, attempts and first traceback per source)."""
        n_src = len(self.templates)
        logs = [FaultLog() for _ in range(n_src)]
        runs: list[tuple[int, int, list[Example]]] = []
        for t, tpl in enumerate(self.templates):
            lo, hi = template_range(self.counts[t], self.n_blocks, b)
            if hi <= lo:
                continue
            samples = tpl.samples(
                self.vocabs[t], self.seed, lo, hi, self.params[t], resolved=True, log=logs[t]
            )
            try:
                runs.append((t, lo, list(samples)))
            except sandboxed.SandboxFailure:
                raise  # the sandboxed process failed as a whole: not a template fault
            except Exception:  # noqa: BLE001 - counted in logs[t] and reported by the parent
                return _result(b, None, logs)
        if len(runs) == 1:
            t, lo, exs = runs[0]
            name = self.templates[t].name
            rows = [(name, lo + j, ex) for j, ex in enumerate(exs)]
        else:
            keyed = []
            for t, lo, exs in runs:
                m, name = len(exs), self.templates[t].name
                keyed += [((j + 0.5) / m, t, lo + j, name, ex) for j, ex in enumerate(exs)]
            keyed.sort(key=lambda item: item[:3])
            rows = [(name, k, ex) for _, _, k, name, ex in keyed]
        return _result(b, _encode(rows, self.format, self.compact), logs)

    def bytes_per_sample(self) -> tuple[float, int]:
        """(estimated JSONL bytes per sample of the whole dataset, samples drawn): the
        first stream of each template, encoded as rows; a template whose samples all
        fail here counts as the mean of the others (its faults are the run's to report)."""
        per: list[float | None] = []
        drawn = 0
        for t, tpl in enumerate(self.templates):
            m = min(self.counts[t], STREAM)
            if m == 0:
                per.append(None)
                continue
            try:
                exs = list(
                    tpl.samples(self.vocabs[t], self.seed, 0, m, self.params[t], resolved=True)
                )
                rows = [(tpl.name, k, ex) for k, ex in enumerate(exs)]
                per.append(len(_encode(rows, "jsonl", self.compact)) / m)
                drawn += m
            except sandboxed.SandboxFailure:
                raise
            except Exception:  # noqa: BLE001 - reported by the run itself
                per.append(None)
        known = [p for p in per if p is not None]
        fallback = sum(known) / len(known) if known else 0.0
        total = sum(
            c * (p if p is not None else fallback) for c, p in zip(self.counts, per, strict=True)
        )
        return total / max(1, sum(self.counts)), drawn

    def close(self) -> None:
        """Stop the sandboxed children this process started (trusted templates: nothing)."""
        for tpl in self.templates:
            if isinstance(tpl, sandboxed.SandboxedSource):
                tpl.close()


def _result(b: int, payload: Any, logs: list[FaultLog]) -> BlockResult:
    return b, payload, [g.faults for g in logs], [g.attempts for g in logs], [g.first for g in logs]


def _meta(name: str, k: int, ex: Example, compact: bool) -> dict[str, Any]:
    """The meta written for one row (engine keys first, then the template's)."""
    meta = {"template": name, "index": k}
    meta.update(ex.meta)
    if _RESERVED in ex.meta:
        raise TemplateError(f"template {name!r}: meta key {_RESERVED!r} is reserved")
    if not compact:
        return meta
    prompt = ex.prompt
    spans: dict[str, dict[str, Any]] | None = None
    for section in _SPAN_SECTIONS:
        fields = meta.get(section)
        if type(fields) is not dict:
            continue
        moved: dict[str, Any] | None = None
        for key, value in fields.items():
            kind = type(value)
            if kind is str:
                if len(value) < MIN_SPAN_CHARS:
                    continue
                at = _find(prompt, value)
                if at < 0:
                    continue
                span: Any = [at, at + len(value)]
            elif kind is list and value and all(type(v) is str for v in value):
                if sum(map(len, value)) < MIN_SPAN_CHARS:
                    continue
                span = []
                for v in value:
                    at = _find(prompt, v)
                    if at < 0:
                        break
                    span.append([at, at + len(v)])
                if len(span) != len(value):
                    continue
            else:
                continue
            if moved is None:
                moved = {}
            moved[key] = span
        if moved:
            meta[section] = {k: v for k, v in fields.items() if k not in moved}
            if spans is None:
                spans = {}
            spans[section] = moved
    if spans:
        meta[_RESERVED] = spans
    return meta


def _find(text: str, part: str) -> int:
    """``text.find(part)``, faster for a long ``part`` (no long-needle preprocessing)."""
    head = part[:32]
    at = text.find(head)
    while at >= 0 and not text.startswith(part, at):
        at = text.find(head, at + 1)
    return at


def _not_json(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


if c_make_encoder is not None:  # the C encoder, made once instead of once per row
    _c_encode = c_make_encoder(None, _not_json, _enc_str, None, ":", ",", False, False, True)

    def _encode_meta(meta: dict[str, Any]) -> str:
        return "".join(_c_encode(meta, 0))

else:  # pragma: no cover - CPython always has the C encoder
    _encode_meta = _META_ENC.encode


def _encode(rows: list[tuple[str, int, Example]], fmt: str, compact: bool) -> Any:
    if fmt == "jsonl":
        parts = []
        append = parts.append
        encode = _encode_meta
        for name, k, ex in rows:
            p = _enc_str(ex.prompt)
            c = _enc_str(ex.completion)
            m = encode(_meta(name, k, ex, compact))
            if compact:
                append(f'{{"prompt":{p},"completion":{c},"meta":{m}}}\n')
            else:
                append(
                    f'{{"prompt":{p},"completion":{c},"messages":[{{"role":"user","content":{p}}},'
                    f'{{"role":"assistant","content":{c}}}],"meta":{m}}}\n'
                )
        return "".join(parts).encode("ascii")
    return (
        [ex.prompt for _, _, ex in rows],
        [ex.completion for _, _, ex in rows],
        [_encode_meta(_meta(name, k, ex, compact)) for name, k, ex in rows],
    )


_worker: _BlockMaker | None = None
_spill: str | None = None


def _init_worker(args: tuple[Any, ...] | None, spill: str | None) -> None:
    """Pool initializer: build the block maker (already inherited when forked).  The
    parent's signal handlers are dropped: the pool stops its workers with SIGTERM, and a
    Ctrl-C is the parent's to handle."""
    global _worker, _spill
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args is not None:
        _worker = _BlockMaker(*args)
    _spill = spill


def _work(b: int) -> BlockResult:
    """Make block ``b``; a JSONL payload goes to its own block file, whose length is
    returned in its place (the parent splices it)."""
    assert _worker is not None
    res = _worker.make(b)
    payload = res[1]
    if _spill is None or not isinstance(payload, bytes):
        return res
    fd = os.open(os.path.join(_spill, f"{b}.part"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, payload)
    finally:
        os.close(fd)
    return (b, len(payload), *res[2:])


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# ----------------------------------------------------------------------------------
# Writers


class _Syncer:
    """A thread that starts write-back of the data file while generation goes on."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.wake = threading.Event()
        self.done = False
        self.thread: threading.Thread | None = None

    def poke(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="cookbook-sync", daemon=True)
            self.thread.start()
        self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            if self.done:
                return
            try:
                os.fdatasync(self.fd)
            except OSError:
                return  # the final fsync reports real errors

    def close(self) -> None:
        self.done = True
        self.wake.set()
        if self.thread is not None:
            self.thread.join()


class _Writer:
    def __init__(self, tmp: Path, fmt: str, compact: bool) -> None:
        self.fmt = fmt
        self.bytes = 0
        self.fd = -1
        if fmt == "jsonl":
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            self.fd = os.open(tmp / DATA_FILES["jsonl"], flags, 0o666)
            self.syncer = _Syncer(self.fd)
            self.synced = 0
            self.splice_ok = hasattr(os, "copy_file_range")
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        msg = pa.struct([("role", pa.string()), ("content", pa.string())])
        fields = [("prompt", pa.string()), ("completion", pa.string())]
        if not compact:
            fields.append(("messages", pa.list_(msg)))
        fields.append(("meta", pa.string()))
        self.compact = compact
        self.schema = pa.schema(fields)
        target = tmp / ("data.parquet" if fmt == "parquet" else "staging.parquet")
        self.path = target
        self.pq = pq.ParquetWriter(target, self.schema, compression="zstd")

    def write(self, payload: Any) -> None:
        if self.fmt == "jsonl":
            _write_all(self.fd, payload)
            self._wrote(len(payload))
            return
        prompts, completions, metas = payload
        columns = [prompts, completions]
        if not self.compact:
            columns.append(
                [
                    [{"role": "user", "content": p}, {"role": "assistant", "content": c}]
                    for p, c in zip(prompts, completions, strict=True)
                ]
            )
        columns.append(metas)
        self.pq.write_table(self.pa.table(columns, schema=self.schema))

    def splice(self, path: str, length: int) -> None:
        """Append the ``length`` bytes of block file ``path``, then delete it."""
        src = os.open(path, os.O_RDONLY)
        try:
            done = 0
            while done < length and self.splice_ok:
                try:
                    n = os.copy_file_range(src, self.fd, length - done, done)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    self.splice_ok = False  # e.g. an old kernel: copy through memory
                    break
                if n == 0:
                    raise OSError(f"{path} is shorter than {length} bytes")
                done += n
            while done < length:
                chunk = os.pread(src, min(1 << 22, length - done), done)
                if not chunk:
                    raise OSError(f"{path} is shorter than {length} bytes")
                _write_all(self.fd, chunk)
                done += len(chunk)
        finally:
            os.close(src)
        os.unlink(path)
        self._wrote(length)

    def _wrote(self, n: int) -> None:
        self.bytes += n
        if self.bytes - self.synced >= SYNC_BYTES:
            self.synced = self.bytes
            self.syncer.poke()

    def close(self, tmp: Path) -> None:
        if self.fmt == "jsonl":
            self.syncer.close()
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            return
        self.pq.close()
        if self.fmt == "hf":
            import datasets

            ds = datasets.Dataset.from_parquet(
                str(self.path), cache_dir=str(tmp / "_hf_cache"), keep_in_memory=False
            )
            ds.save_to_disk(str(tmp / DATA_FILES["hf"]))
            del ds
            self.path.unlink()
            shutil.rmtree(tmp / "_hf_cache", ignore_errors=True)
        self.bytes = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())

    def abort(self) -> None:
        if self.fmt == "jsonl" and self.fd >= 0:
            self.syncer.close()
            os.close(self.fd)
            self.fd = -1


# ----------------------------------------------------------------------------------
# The run


def resolve_sources(cfg: GenerateConfig) -> list[tuple[AnyTemplate, dict[str, Any]]]:
    """Each source's template and its checked parameters (raises TemplateError): a
    trusted template imported, an untrusted one described in the sandbox
    (:func:`cookbook_core.sandbox.generation.template_for`)."""
    if not cfg.sources:
        raise TemplateError("no template given")
    seen: set[str] = set()
    out: list[tuple[AnyTemplate, dict[str, Any]]] = []
    for s in cfg.sources:
        if s.template in seen:
            raise TemplateError(f"template {s.template!r} is listed twice")
        seen.add(s.template)
        tpl = sandboxed.template_for(s.template)
        out.append((tpl, tpl.resolve_params(s.params)))
    return out


def _source_sha256(tpl: AnyTemplate) -> str:
    if isinstance(tpl, sandboxed.SandboxedTemplate):
        return tpl.sha256  # of the exact text that ran
    return discovery.source_sha256(tpl)


def _free_bytes(folder: Path) -> int:
    """Free bytes for this user on ``folder``'s filesystem."""
    return shutil.disk_usage(folder).free


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _check_space(out: Path, cfg: GenerateConfig, per_sample: float, drawn: int) -> None:
    """Refuse the run when ``out``'s filesystem has less free space than the estimate."""
    anchor = out.parent
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    in_flight = 4 * cfg.workers * cfg.block_size if cfg.format == "jsonl" else 0
    samples = cfg.n + min(in_flight, cfg.n)
    need = math.ceil(per_sample * samples * _SPACE_FACTOR[cfg.format]) + SPACE_MARGIN
    free = _free_bytes(anchor)
    if need > free:
        raise NotEnoughSpace(
            f"not enough free disk space for {cfg.n:,} samples in {anchor}: about "
            f"{_size(need)} needed ({per_sample:,.0f} bytes per sample, estimated from "
            f"{drawn} samples), {_size(free)} available; free some space, lower -n or "
            "choose another --out"
        )


def _check_config(cfg: GenerateConfig) -> None:
    cfg.check()  # types, ranges and choices, as declared in generate_config
    if cfg.n > MAX_SAMPLES:
        raise GenerationConfigError(
            f"-n must be at most {MAX_SAMPLES:,} (the upper bound of one dataset), got {cfg.n:,}"
        )
    for s in cfg.sources:
        if not (s.weight > 0 and math.isfinite(s.weight)):
            raise GenerationConfigError(f"weight of {s.template!r} must be > 0, got {s.weight}")


def generate(
    cfg: GenerateConfig,
    out: Path | str,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    ray: Any = None,
) -> dict[str, Any]:
    """Write the dataset described by ``cfg`` into folder ``out``; return its manifest.

    ``ray`` (a :class:`cookbook_core.generate_ray.RayGenerate`): the blocks are made by
    Ray tasks instead of local worker processes; the bytes written are the same.
    """
    from cookbook_core import __version__

    out = Path(out).resolve()
    _check_config(cfg)
    if out.exists() and not overwrite:
        raise GenerationConfigError(f"{out} already exists (pass overwrite=True / --overwrite)")
    loaded = resolve_sources(cfg)
    weights = [s.weight for s in cfg.sources]
    counts = plan_counts(weights, cfg.n)
    used = [_artifact_texts(tpl) for tpl, _ in loaded]
    resolved = [
        _Resolved(
            tpl.name,
            str(Path(tpl.source_file or "").resolve()),
            params,
            tpl.token_space or cfg.token_space,
            tpl.source if isinstance(tpl, sandboxed.SandboxedTemplate) else None,
            tpl.guards if isinstance(tpl, sandboxed.SandboxedTemplate) else True,
            {n: text for n, (_, text) in arts.items()},
        )
        for (tpl, params), arts in zip(loaded, used, strict=True)
    ]
    spaces = {
        r.space_spec: tokens.load(r.space_spec, cfg.token_space_size, cfg.seed).describe()
        for r in resolved
    }
    n_blocks = block_plan(counts, cfg.block_size)
    cfg_small = {
        "token_space_size": cfg.token_space_size,
        "seed": cfg.seed,
        "block_size": cfg.block_size,
        "format": cfg.format,
        "layout": cfg.layout,
    }
    maker = _BlockMaker(resolved, counts, cfg_small)
    try:
        _check_space(out, cfg, *maker.bytes_per_sample())
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{time.time_ns()}"
        tmp.mkdir()
    except BaseException:
        maker.close()
        raise
    started = time.time()
    n_src = len(resolved)
    faults = [0] * n_src
    attempts = [0] * n_src
    first_tb: list[str | None] = [None] * n_src
    writer: _Writer | None = None
    blocks: Iterator[BlockResult] | None = None
    try:
        writer = _Writer(tmp, cfg.format, cfg.layout == "compact")
        spill = tmp / ".blocks" if cfg.format == "jsonl" else None
        ctx = _pool_context() if cfg.workers > 1 and n_blocks > 1 and ray is None else None
        done = 0
        if ray is not None:  # Ray tasks make the blocks; this process only writes
            from cookbook_core import generate_ray

            maker.close()
            if spill is not None:
                spill.mkdir()
            blocks = generate_ray.blocks(resolved, counts, cfg_small, n_blocks, spill, ray)
        else:
            blocks = _blocks(maker, resolved, counts, cfg_small, n_blocks, cfg.workers, ctx, spill)
        for b, payload, f, a, tb in blocks:
            for t in range(n_src):
                faults[t] += f[t]
                attempts[t] += a[t]
                if first_tb[t] is None and tb[t] is not None:
                    first_tb[t] = tb[t]
            _raise_on_faults(
                resolved, faults, attempts, first_tb, cfg.max_fault_rate, payload is None
            )
            if isinstance(payload, int):
                assert spill is not None
                writer.splice(str(spill / f"{b}.part"), payload)
            else:
                writer.write(payload)
            done += sum(hi - lo for lo, hi in (template_range(c, n_blocks, b) for c in counts))
            if progress:
                progress(done, cfg.n)
        writer.close(tmp)
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)
        _raise_on_faults(
            resolved, faults, attempts, first_tb, cfg.max_fault_rate, False, final=True
        )
        elapsed = time.time() - started
        manifest = {
            "kind": "cookbook-dataset",
            "version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "n": cfg.n,
            "seed": cfg.seed,
            "format": cfg.format,
            "layout": cfg.layout,
            "data": DATA_FILES[cfg.format],
            "bytes": writer.bytes,
            "elapsed_s": round(elapsed, 3),
            "samples_per_s": round(cfg.n / elapsed, 1) if elapsed > 0 else None,
            "workers": cfg.workers,
            "start_method": ctx.get_start_method() if ctx is not None else None,
            **({"executor": "ray"} if ray is not None else {}),
            "block_size": cfg.block_size,
            "stream": STREAM,
            "max_fault_rate": cfg.max_fault_rate,
            "templates": [
                {
                    "name": r.name,
                    "file": r.file,
                    "source_sha256": _source_sha256(tpl),
                    "sandboxed": r.source is not None,
                    "artifacts": {n: ref.manifest() for n, (ref, _) in used[i].items()},
                    "params": r.params,
                    "weight": s.weight,
                    "share": s.weight / sum(weights),
                    "count": counts[i],
                    "token_space": spaces[r.space_spec],
                    "faults": faults[i],
                    "attempts": attempts[i],
                    "first_fault": first_tb[i],
                }
                for i, (r, s, (tpl, _)) in enumerate(
                    zip(resolved, cfg.sources, loaded, strict=True)
                )
            ],
            "python": sys.version.split()[0],
            "extra": cfg.extra,
        }
        storage.write_json(tmp / "manifest.json", manifest)
        storage.publish_dir(tmp, out)
        return manifest
    except BaseException:
        if isinstance(blocks, GeneratorType):
            blocks.close()  # stops the workers before their block files are removed
        if writer is not None:
            writer.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        maker.close()


def _pool_context() -> Any:
    """Fork when this process has one thread (safe, and workers share what the parent
    loaded); spawn otherwise (a studio or server process with threads)."""
    if "fork" in mp.get_all_start_methods() and threading.active_count() == 1:
        return mp.get_context("fork")
    return mp.get_context("spawn")


def _blocks(
    maker: _BlockMaker,
    resolved: list[_Resolved],
    counts: list[int],
    cfg: dict[str, Any],
    n_blocks: int,
    workers: int,
    ctx: Any,
    spill: Path | None,
) -> Iterator[BlockResult]:
    """Every block's result in order: made here by ``maker`` (``ctx`` is ``None``) or by
    ``workers`` processes started by ``ctx``, JSONL payloads handed over as block files in
    ``spill``.  Sandboxed children belong to the process that started them: the
    parent's are stopped before the workers start their own."""
    global _worker
    if ctx is None:
        for b in range(n_blocks):
            yield maker.make(b)
        return
    maker.close()
    if spill is not None:
        spill.mkdir()
    args: tuple[Any, ...] | None = (resolved, counts, cfg)
    forked = ctx.get_start_method() == "fork"
    if forked:
        _worker, args = maker, None  # inherited by the workers
        gc.freeze()  # the workers' collector then leaves the shared pages alone
    try:
        pool = ctx.Pool(
            workers,
            initializer=_init_worker,
            initargs=(args, str(spill) if spill is not None else None),
        )
    finally:
        _worker = None  # the parent keeps no maker
        if forked:
            gc.unfreeze()
    with pool:
        pending: deque[Any] = deque()
        next_b = 0
        window = 4 * workers
        while next_b < n_blocks or pending:
            while next_b < n_blocks and len(pending) < window:
                pending.append(pool.apply_async(_work, (next_b,)))
                next_b += 1
            yield pending.popleft().get()


def _raise_on_faults(
    resolved: list[_Resolved],
    faults: list[int],
    attempts: list[int],
    first_tb: list[str | None],
    max_rate: float,
    exhausted: bool,
    final: bool = False,
) -> None:
    for i, r in enumerate(resolved):
        if not faults[i]:
            continue
        rate = faults[i] / attempts[i]
        too_many = rate > max_rate and (final or attempts[i] >= MIN_ATTEMPTS_FOR_RATE)
        if exhausted or too_many:
            why = (
                f"a sample failed {RETRIES} times in a row"
                if exhausted
                else f"fault rate {rate:.2%} is above the limit {max_rate:.2%}"
            )
            raise GenerationError(
                f"template {r.name!r} raised on {faults[i]} of {attempts[i]} attempts ({why}); "
                f"nothing was written.\nFirst traceback:\n{first_tb[i]}"
            )


def manifest_summary(manifest: Mapping[str, Any]) -> str:
    """One line per template: name, count, faults."""
    lines = [
        f"{t['name']}: {t['count']} samples ({t['share']:.1%}), faults {t['faults']}"
        for t in manifest["templates"]
    ]
    return "\n".join(lines)


config_from_dict = GenerateConfig.from_dict  # the JSON form back (as job folders store it)


def config_to_dict(cfg: GenerateConfig) -> dict[str, Any]:
    """The JSON form of a config (what job folders store)."""
    return cfg.to_dict()


# ----------------------------------------------------------------------------------
# The ``generate`` job kind (declared in cookbook_core.jobs.store; ``ctx`` is its JobContext)


def validate_job(config: dict[str, Any]) -> dict[str, Any]:
    """Check a ``generate`` job's config (``{'config': GenerateConfig dict, 'out': folder,
    'overwrite': bool}``) before it is queued; the config to store, with ``out`` absolute."""
    if "config" not in config or "out" not in config:
        raise BadInput("a generate job needs {'config': GenerateConfig dict, 'out': folder}")
    cfg = config_from_dict(config["config"])
    _check_config(cfg)
    resolve_sources(cfg)
    out = Path(config["out"]).resolve()
    if out.exists() and not config.get("overwrite"):
        raise BadInput(f"{out} already exists (pass overwrite)")
    return {
        "config": config_to_dict(cfg),
        "out": str(out),
        "overwrite": bool(config.get("overwrite")),
    }


def run_job(ctx: Any) -> dict[str, Any]:
    """Write the dataset of a validated ``generate`` job, reporting progress to ``ctx``."""
    cfg = config_from_dict(ctx.config["config"])

    def progress(done: int, total: int) -> None:
        ctx.check_cancelled()
        ctx.progress(done, total, unit="samples")

    manifest = generate(
        cfg, ctx.config["out"], overwrite=ctx.config.get("overwrite", False), progress=progress
    )
    return {
        "status": "completed",
        "out": ctx.config["out"],
        "n": manifest["n"],
        "samples_per_s": manifest["samples_per_s"],
    }
