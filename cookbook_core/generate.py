"""The generation engine: datasets from one template or a weighted mixture.

What it guarantees:

* **Exact counts.** Weights become per-template counts by largest-remainder
  rounding (:func:`plan_counts`); the dataset holds exactly those counts.
* **Determinism.** Sample ``k`` of template ``t`` is a pure function of
  (template, params, seed, k) (see :meth:`Template.sample`).  The output is cut
  into fixed blocks that do not depend on the number of workers, and each block
  interleaves the templates in a fixed order, so the bytes written are identical
  for 1 or many worker processes.
* **Bounded memory.** Blocks are produced by worker processes and written in
  order as they arrive, with a bounded number in flight; nothing grows with N.
* **Atomic output.** Everything is written into a hidden sibling folder that is
  renamed to the final name only when the dataset and its ``manifest.json`` are
  complete.  A failed run leaves nothing under the final name.
* **Faults.** A template that raises is retried (same random stream, advanced) up
  to :data:`RETRIES` times; every exception is counted per template with the first
  traceback kept.  Above ``max_fault_rate`` the run stops with :class:`GenerationError`.

Formats: JSONL (``prompt``, ``completion``, ``messages`` in chat form, ``meta``),
Parquet (``meta`` as a JSON string column) and a Hugging Face ``datasets`` folder
(written via Parquet).  What it does not do: read datasets back (``dataset_io``)
or train on them.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _enc_str
from pathlib import Path
from typing import Any

from cookbook_core import discovery, storage, tokens
from cookbook_core.errors import BadInput, CookbookError
from cookbook_core.templates import Template, TemplateError

FORMATS = ("jsonl", "parquet", "hf")
DATA_FILES = {"jsonl": "data.jsonl", "parquet": "data.parquet", "hf": "hf"}
BLOCK_SIZE = 2048
RETRIES = 3
MIN_ATTEMPTS_FOR_RATE = 200

_META_ENC = json.JSONEncoder(separators=(",", ":"))

Progress = Callable[[int, int], None]


class GenerationError(CookbookError):
    """The run was stopped: too many template faults."""


class GenerationConfigError(BadInput):
    """A config that cannot run: bad n, seed, format, weights or output folder."""


@dataclass
class Source:
    """One template in a mixture: its name, relative weight and parameter overrides."""

    template: str
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerateConfig:
    """Everything that determines a dataset's content (plus how to produce it)."""

    sources: list[Source]
    n: int
    seed: int = 0
    format: str = "jsonl"
    token_space: str = tokens.DEFAULT_SPEC
    token_space_size: int | None = None
    workers: int = 1
    max_fault_rate: float = 0.01
    block_size: int = BLOCK_SIZE
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in the manifest as is


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


def block_members(counts: Sequence[int], n_blocks: int, b: int) -> list[tuple[int, int]]:
    """The (source, per-template index) pairs of block ``b``, in output order.

    Template ``t`` contributes its indices ``[floor(b*c_t/B), floor((b+1)*c_t/B))``;
    within the block the templates are interleaved evenly (each item keyed by its
    relative position in its template's run, ties by source order).
    """
    runs = []
    for t, c in enumerate(counts):
        lo, hi = (b * c) // n_blocks, ((b + 1) * c) // n_blocks
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


class _BlockMaker:
    """Holds loaded templates and token spaces; turns a block number into output."""

    def __init__(self, resolved: list[_Resolved], counts: list[int], cfg: dict[str, Any]) -> None:
        self.templates: list[Template] = [
            discovery.load_file(Path(r.file))[r.name] for r in resolved
        ]
        self.params = [r.params for r in resolved]
        spaces: dict[str, tuple[str, ...]] = {}
        for r in resolved:
            if r.space_spec not in spaces:
                spaces[r.space_spec] = tokens.load(
                    r.space_spec, cfg["token_space_size"], cfg["seed"]
                ).tokens
        self.vocabs = [spaces[r.space_spec] for r in resolved]
        self.counts = counts
        self.n_blocks = block_plan(counts, cfg["block_size"])
        self.seed = cfg["seed"]
        self.format = cfg["format"]

    def make(self, b: int) -> tuple[int, Any, list[int], list[int], list[str | None]]:
        n_src = len(self.templates)
        faults = [0] * n_src
        attempts = [0] * n_src
        first_tb: list[str | None] = [None] * n_src
        members = block_members(self.counts, self.n_blocks, b)
        rows: list[tuple[str, str, dict[str, Any]]] = []
        append = rows.append
        templates, params, vocabs, seed = self.templates, self.params, self.vocabs, self.seed
        for t, k in members:
            tpl = templates[t]
            rng = tpl.rng_for(seed, k)
            for attempt in range(RETRIES):
                attempts[t] += 1
                try:
                    ex = tpl.fn(rng, vocabs[t], **params[t])
                    if not (isinstance(ex.prompt, str) and isinstance(ex.completion, str)):
                        raise TypeError("prompt and completion must be str")
                    if not isinstance(ex.meta, dict):
                        raise TypeError("meta must be a dict")
                    meta = {"template": tpl.name, "index": k}
                    meta.update(ex.meta)
                    append((ex.prompt, ex.completion, meta))
                    break
                except Exception:  # noqa: BLE001 - counted and reported, never hidden
                    faults[t] += 1
                    if first_tb[t] is None:
                        first_tb[t] = traceback.format_exc(limit=8)
                    if attempt == RETRIES - 1:
                        return b, None, faults, attempts, first_tb
        return b, _encode(rows, self.format), faults, attempts, first_tb


def _encode(rows: list[tuple[str, str, dict[str, Any]]], fmt: str) -> Any:
    if fmt == "jsonl":
        parts = []
        for prompt, completion, meta in rows:
            p = _enc_str(prompt)
            c = _enc_str(completion)
            m = _META_ENC.encode(meta)
            parts.append(
                f'{{"prompt":{p},"completion":{c},"messages":[{{"role":"user","content":{p}}},'
                f'{{"role":"assistant","content":{c}}}],"meta":{m}}}\n'
            )
        return "".join(parts).encode("ascii")
    return (
        [r[0] for r in rows],
        [r[1] for r in rows],
        [_META_ENC.encode(r[2]) for r in rows],
    )


_worker: _BlockMaker | None = None


def _init_worker(resolved: list[_Resolved], counts: list[int], cfg: dict[str, Any]) -> None:
    global _worker
    _worker = _BlockMaker(resolved, counts, cfg)


def _work(b: int) -> tuple[int, Any, list[int], list[int], list[str | None]]:
    assert _worker is not None
    return _worker.make(b)


# ----------------------------------------------------------------------------------
# Writers


class _Writer:
    def __init__(self, tmp: Path, fmt: str) -> None:
        self.fmt = fmt
        self.bytes = 0
        if fmt == "jsonl":
            self.fh = open(tmp / DATA_FILES["jsonl"], "wb", buffering=1 << 20)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            self.pa = pa
            msg = pa.struct([("role", pa.string()), ("content", pa.string())])
            self.schema = pa.schema(
                [
                    ("prompt", pa.string()),
                    ("completion", pa.string()),
                    ("messages", pa.list_(msg)),
                    ("meta", pa.string()),
                ]
            )
            target = tmp / ("data.parquet" if fmt == "parquet" else "staging.parquet")
            self.path = target
            self.pq = pq.ParquetWriter(target, self.schema, compression="zstd")

    def write(self, payload: Any) -> None:
        if self.fmt == "jsonl":
            self.fh.write(payload)
            self.bytes += len(payload)
            return
        prompts, completions, metas = payload
        messages = [
            [{"role": "user", "content": p}, {"role": "assistant", "content": c}]
            for p, c in zip(prompts, completions, strict=True)
        ]
        table = self.pa.table([prompts, completions, messages, metas], schema=self.schema)
        self.pq.write_table(table)

    def close(self, tmp: Path) -> None:
        if self.fmt == "jsonl":
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
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


# ----------------------------------------------------------------------------------
# The run


def resolve_sources(cfg: GenerateConfig) -> list[tuple[Template, dict[str, Any]]]:
    """Load each source's template and check its parameters (raises TemplateError)."""
    if not cfg.sources:
        raise TemplateError("no template given")
    seen: set[str] = set()
    out = []
    for s in cfg.sources:
        if s.template in seen:
            raise TemplateError(f"template {s.template!r} is listed twice")
        seen.add(s.template)
        tpl = discovery.get(s.template)
        out.append((tpl, tpl.resolve_params(s.params)))
    return out


def _check_config(cfg: GenerateConfig) -> None:
    if cfg.format not in FORMATS:
        raise GenerationConfigError(
            f"unknown format {cfg.format!r}: use one of {', '.join(FORMATS)}"
        )
    if cfg.n < 1:
        raise GenerationConfigError(f"-n must be at least 1, got {cfg.n}")
    if cfg.seed < 0:
        raise GenerationConfigError(f"seed must be >= 0, got {cfg.seed}")
    if cfg.workers < 1:
        raise GenerationConfigError(f"workers must be at least 1, got {cfg.workers}")
    if not 0 <= cfg.max_fault_rate <= 1:
        raise GenerationConfigError("max_fault_rate must be in [0, 1]")
    for s in cfg.sources:
        if not (s.weight > 0 and math.isfinite(s.weight)):
            raise GenerationConfigError(f"weight of {s.template!r} must be > 0, got {s.weight}")


def generate(
    cfg: GenerateConfig,
    out: Path | str,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the dataset described by ``cfg`` into folder ``out``; return its manifest."""
    from cookbook_core import __version__

    out = Path(out).resolve()
    _check_config(cfg)
    if out.exists() and not overwrite:
        raise GenerationConfigError(f"{out} already exists (pass overwrite=True / --overwrite)")
    loaded = resolve_sources(cfg)
    weights = [s.weight for s in cfg.sources]
    counts = plan_counts(weights, cfg.n)
    resolved = [
        _Resolved(
            tpl.name,
            str(Path(tpl.source_file or "").resolve()),
            params,
            tpl.token_space or cfg.token_space,
        )
        for tpl, params in loaded
    ]
    spaces = {
        r.space_spec: tokens.load(r.space_spec, cfg.token_space_size, cfg.seed).describe()
        for r in resolved
    }
    n_blocks = block_plan(counts, cfg.block_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    started = time.time()
    n_src = len(resolved)
    faults = [0] * n_src
    attempts = [0] * n_src
    first_tb: list[str | None] = [None] * n_src
    cfg_small = {
        "token_space_size": cfg.token_space_size,
        "seed": cfg.seed,
        "block_size": cfg.block_size,
        "format": cfg.format,
    }
    try:
        writer = _Writer(tmp, cfg.format)
        done = 0
        for b, payload, f, a, tb in _blocks(resolved, counts, cfg_small, n_blocks, cfg.workers):
            for t in range(n_src):
                faults[t] += f[t]
                attempts[t] += a[t]
                if first_tb[t] is None and tb[t] is not None:
                    first_tb[t] = tb[t]
            _raise_on_faults(
                resolved, faults, attempts, first_tb, cfg.max_fault_rate, payload is None
            )
            writer.write(payload)
            done += _block_len(counts, n_blocks, b)
            if progress:
                progress(done, cfg.n)
        writer.close(tmp)
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
            "data": DATA_FILES[cfg.format],
            "bytes": writer.bytes,
            "elapsed_s": round(elapsed, 3),
            "samples_per_s": round(cfg.n / elapsed, 1) if elapsed > 0 else None,
            "workers": cfg.workers,
            "block_size": cfg.block_size,
            "max_fault_rate": cfg.max_fault_rate,
            "templates": [
                {
                    "name": r.name,
                    "file": r.file,
                    "source_sha256": discovery.source_sha256(tpl),
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
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _block_len(counts: Sequence[int], n_blocks: int, b: int) -> int:
    return sum(((b + 1) * c) // n_blocks - (b * c) // n_blocks for c in counts)


def _blocks(
    resolved: list[_Resolved],
    counts: list[int],
    cfg: dict[str, Any],
    n_blocks: int,
    workers: int,
) -> Iterator[tuple[int, Any, list[int], list[int], list[str | None]]]:
    if workers == 1 or n_blocks <= 1:
        maker = _BlockMaker(resolved, counts, cfg)
        for b in range(n_blocks):
            yield maker.make(b)
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(resolved, counts, cfg)) as pool:
        pending: deque[Any] = deque()
        next_b = 0
        window = 3 * workers
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


def config_from_dict(d: Mapping[str, Any]) -> GenerateConfig:
    """Rebuild a config from its ``asdict`` form (as saved in job folders)."""
    d = dict(d)
    d["sources"] = [Source(**s) for s in d["sources"]]
    return GenerateConfig(**d)


def config_to_dict(cfg: GenerateConfig) -> dict[str, Any]:
    return asdict(cfg)


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
