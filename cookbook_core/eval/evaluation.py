"""Running an evaluation: tasks x model (+ adapter) -> summary.json and per-example records.

:func:`evaluate` loads each task's rows (``tasks.load``), builds prompts in the
chosen format, runs a backend (``inference``), scores every example, and writes into
the run folder:

* ``summary.json``: per task, each metric's value with a seeded bootstrap 95%
  interval (1000 resamples), the example count, truncated generations, the prompt
  format, few-shot count, data source, seconds and examples/s; plus the model,
  adapter, backend, config and total time.  It is rewritten after every task, with
  ``status`` ``running`` / ``completed`` / ``stopped``.
* ``records/<task>.jsonl``: one line per example: ``id``, ``prompt`` (the exact text
  given to the model), ``gold``, and either ``generation``/``finish``/``n_tokens``
  or per-choice ``continuations``/``loglikelihoods``/``is_greedy``; then ``scores``.
  Cloze tasks (LAMBADA) also record ``greedy_continuation``: the model's own greedy
  text after the context (up to ``CLOZE_GREEDY_TOKENS`` tokens, cut at a newline),
  since their log-likelihood only says whether that answer is the gold word.

Prompt formats: ``plain`` (lm-evaluation-harness's text, no chat template: the
default for log-likelihood tasks, needed for parity) and ``chat`` (the model's chat
template through ``training.format_prompt``, exactly as fine-tuning formats
prompts: the default for generation tasks).  ``auto`` picks each task's default.

Foreground runs write under ``<home>/evals/<run id>/``; the ``eval`` job kind
(:func:`validate_job` and :func:`run_job`, declared in :mod:`cookbook_core.jobs.store`)
writes into the job's run folder; Cookbook-Mix cells (sweeps and experiments) write
theirs under ``<home>/cells/<cell>/evals/<settings>/<k>/``.
:func:`list_runs` finds all three and says, per run, which model made it
(``origin``: the base model, a training job, a mix cell with its mixture weights, a
SELF-GUIDE run); :func:`read_records` reads a run's examples back for the inspector and
the studio.  This module does not define tasks or talk to a model directly.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cookbook_core import paths, storage
from cookbook_core.errors import BadInput, CookbookError
from cookbook_core.eval import scoring, tasks
from cookbook_core.eval.config import (  # noqa: F401 - re-exported: the config lives there
    BOOTSTRAP_RESAMPLES,
    PROMPT_FORMATS,
    EvalConfig,
    EvalConfigError,
)
from cookbook_core.jobs import store as jobs

CLOZE_GREEDY_TOKENS = 6  # greedy tokens recorded after a cloze context (a word and a bit)


class AdapterMismatch(BadInput):
    """An adapter trained on a different base model than the one evaluated."""


class EvalStopped(CookbookError):
    """Raised inside :func:`evaluate` when ``should_stop`` returns True."""


config_from_dict = EvalConfig.from_dict  # the JSON form back (unknown keys: EvalConfigError)


# ----------------------------------------------------------------------------------
# Checking a request (cheap; before a model is loaded)


def _source(cfg: EvalConfig, task: tasks.Task) -> str | None:
    for key in (task.name, *task.aliases):
        if key in cfg.data_files:
            return cfg.data_files[key]
    return cfg.data_dir


def validate(cfg: EvalConfig) -> EvalConfig:
    """Raise ``BadInput`` for a request that cannot run; return it with absolute paths."""
    from cookbook_core.eval import inference
    from cookbook_core.train import models

    task_list = tasks.resolve(cfg.tasks)
    cfg.check()  # types, ranges and choices, as declared in eval.config
    for key in cfg.data_files:
        tasks.get(key)
    models.resolve(cfg.model)
    chosen = inference.choose_backend(
        cfg.backend, cfg.model, cfg.base_url, adapter=bool(cfg.adapter)
    )
    if chosen == "served":
        if not cfg.base_url:
            from cookbook_core.serve import server

            server.require_running(cfg.server, cfg.model)
    if cfg.adapter:
        resolve_adapter(cfg.adapter, cfg.model)
    out = EvalConfig(**cfg.to_dict())
    out.tasks = [t.name for t in task_list]
    if out.data_dir and out.data_dir != "hub":
        out.data_dir = str(Path(out.data_dir).expanduser().resolve())
    out.data_files = {k: str(Path(v).expanduser().resolve()) for k, v in cfg.data_files.items()}
    if Path(out.model).expanduser().exists():
        out.model = str(Path(out.model).expanduser().resolve())
    if out.adapter:
        out.adapter = str(resolve_adapter(out.adapter, out.model))
    for t in task_list:  # reads and checks the rows: bad files fail here
        tasks.load(t, _source(out, t), limit=out.limit, fields=out.fields or None)
    return out


def resolve_adapter(adapter: str, model: str) -> Path:
    """The LoRA adapter folder for a run id / run folder / adapter folder.

    Raises :class:`AdapterMismatch` when the adapter's training run (or the adapter's
    own ``base_model_name_or_path``) names a different base model than ``model``.
    """
    from cookbook_core.train import models

    cand = Path(adapter).expanduser()
    if not cand.exists():
        cand = jobs.runs_root() / adapter
    if not cand.exists():
        raise BadInput(
            f"adapter {adapter!r}: not a training run id (looked in {jobs.runs_root()}) "
            "nor an existing folder"
        )
    run_dir: Path | None = None
    if (cand / "adapter_config.json").is_file():
        folder = cand
        if cand.name == "adapter":
            run_dir = cand.parent
    elif (cand / "adapter" / "adapter_config.json").is_file():
        folder, run_dir = cand / "adapter", cand
    elif (cand / "model" / "config.json").is_file() or (cand / "merged" / "config.json").is_file():
        sub = "merged" if (cand / "merged").is_dir() else "model"
        raise BadInput(
            f"run {adapter!r} holds full model weights, not a LoRA adapter: evaluate it "
            f"with --model {cand / sub}"
        )
    else:
        raise BadInput(
            f"adapter {adapter!r}: {cand} has no adapter_config.json (is the run finished?)"
        )
    want = models.resolve(model)
    trained_on: str | None = None
    if run_dir is not None and (run_dir / "config.json").is_file():
        trained_on = json.loads((run_dir / "config.json").read_text()).get("model")
    if trained_on is not None:
        try:
            have = models.resolve(trained_on)
        except BadInput:
            have = None
        if have is None or (have.kind, have.source) != (want.kind, want.source):
            raise AdapterMismatch(
                f"adapter {adapter!r} was trained on base model {trained_on!r}, but the model "
                f"being evaluated is {model!r} ({want.display}): pass --model {trained_on}"
            )
        return folder.resolve()
    base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if base and not _same_base(str(base), want):
        raise AdapterMismatch(
            f"adapter {adapter!r} was trained on base model {base!r}, but the model being "
            f"evaluated is {model!r} ({want.display})"
        )
    return folder.resolve()


def _same_base(base: str, want: Any) -> bool:
    from cookbook_core.train import models

    names = {want.name, want.source}
    if want.kind == "embedded":
        names |= {str(models.embedded_cache_dir()), "HuggingFaceTB/SmolLM2-135M-Instruct"}
        if Path(base).name == models.EMBEDDED_CACHE_NAME:
            return True
    if base in names:
        return True
    try:
        return Path(base).resolve() == Path(want.source).resolve()
    except OSError:
        return False


# ----------------------------------------------------------------------------------
# Running


def evals_root() -> Path:
    """``<home>/evals``: foreground evaluation runs."""
    return paths.home() / "evals"


def new_run_id(task_names: Sequence[str]) -> str:
    label = task_names[0] if len(task_names) == 1 else f"{task_names[0]}+{len(task_names) - 1}"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-eval-{label}-{secrets.token_hex(2)}"


ProgressFn = Callable[..., None]


def evaluate(
    cfg: EvalConfig,
    out_dir: Path | str | None = None,
    *,
    backend: Any = None,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run every task of ``cfg``; write ``summary.json`` and records; return the summary.

    ``backend``: an already-loaded :class:`inference.Backend` (its model must be the
    one ``cfg`` names; tests share one); loaded from ``cfg`` otherwise.
    ``progress(done, total, task=...)`` is called as examples finish; when
    ``should_stop()`` turns True the run ends after the current batch with status
    ``stopped`` (finished tasks are kept).
    """
    from cookbook_core.eval import inference
    from cookbook_core.train import models, training

    cfg = validate(cfg)
    task_list = [tasks.get(n) for n in cfg.tasks]
    loaded = {
        t.name: tasks.load(t, _source(cfg, t), limit=cfg.limit, fields=cfg.fields or None)
        for t in task_list
    }
    out = Path(out_dir) if out_dir else evals_root() / new_run_id(cfg.tasks)
    (out / "records").mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_s = 0.0
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    if backend is None:
        backend = inference.load_backend(
            cfg.model,
            adapter=cfg.adapter,
            backend=cfg.backend,
            batch_tokens=cfg.batch_tokens,
            base_url=cfg.base_url,
            server_name=cfg.server,
        )
        load_s = time.time() - started
    tok = backend.tokenizer
    summary: dict[str, Any] = {
        "run_id": out.name,
        "status": "running",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": cfg.model,
        "model_display": models.resolve(cfg.model).display,
        "adapter": cfg.adapter,
        "backend": backend.name,
        "backend_info": inference.describe(backend),
        "config": cfg.to_dict(),
        "load_seconds": round(load_s, 2),
        "tasks": {},
    }
    total = sum(len(v.rows) for v in loaded.values())
    done_before = 0

    def chat(text: str) -> str:
        return training.format_prompt(tok, text)

    _write_json(out / "summary.json", summary)
    try:
        for task in task_list:
            if should_stop and should_stop():
                raise EvalStopped()
            rows = loaded[task.name].rows
            fmt = task.default_format if cfg.prompt_format == "auto" else cfg.prompt_format

            def step(done: int, _n: int, _task: str = task.name, _base: int = done_before) -> None:
                if progress:
                    progress(_base + done, total, task=_task)
                if should_stop and should_stop():
                    raise EvalStopped()

            t0 = time.time()
            if task.method == "loglikelihood":
                records = _run_loglik(
                    task, rows, cfg, backend, chat if fmt == "chat" else None, step
                )
            else:
                records = _run_generate(
                    task, rows, cfg, backend, chat if fmt == "chat" else None, step
                )
            seconds = time.time() - t0
            done_before += len(rows)
            _write_jsonl(out / "records" / f"{task.name}.jsonl", records)
            summary["tasks"][task.name] = _task_summary(
                task, records, cfg, fmt, loaded[task.name].source, seconds
            )
            _write_json(out / "summary.json", summary)
        summary["status"] = "completed"
    except EvalStopped:
        summary["status"] = "stopped"
    summary["seconds"] = round(time.time() - started, 2)
    _write_json(out / "summary.json", summary)
    summary["run_dir"] = str(out)
    return summary


def records_for_rows(
    task_name: str,
    rows: list[dict[str, Any]],
    backend: Any,
    *,
    prompt_format: str = "auto",
    max_new_tokens: int | None = None,
) -> list[dict[str, Any]]:
    """Per-example records for a few rows, exactly as a run would write them (zero-shot).

    For looking at single examples live (the Alignment page); writes nothing.
    """
    from cookbook_core.train import training

    task = tasks.get(task_name)
    cfg = EvalConfig(tasks=[task.name], prompt_format=prompt_format, max_new_tokens=max_new_tokens)
    fmt = task.default_format if prompt_format == "auto" else prompt_format
    tok = backend.tokenizer
    chat = (lambda text: training.format_prompt(tok, text)) if fmt == "chat" else None
    run = _run_loglik if task.method == "loglikelihood" else _run_generate
    return run(task, rows, cfg, backend, chat, lambda _d, _n: None)


def _run_loglik(
    task: tasks.Task,
    rows: list[dict[str, Any]],
    cfg: EvalConfig,
    backend: Any,
    chat: Callable[[str], str] | None,
    step: Callable[[int, int], None],
) -> list[dict[str, Any]]:
    docs, groups = [], []
    for i, row in enumerate(rows):
        shots = tasks.fewshot_rows(rows, i, cfg.num_fewshot, cfg.seed)
        doc, pairs = task.loglik_requests(row, shots, chat)
        docs.append(doc)
        groups.append(pairs)
    n = len(rows)
    cloze = task.greedy_continuation
    # A cloze task scores one continuation (the gold word): its log-likelihood says
    # whether the model's greedy answer *is* the gold word, not what the answer is.
    # So the greedy continuation itself is generated too (progress: two halves).
    results = backend.loglikelihood(
        groups, progress=(lambda d, _t: step(d // 2, n)) if cloze else step
    )
    greedy: list[Any] = [None] * n
    if cloze:
        greedy = backend.generate(
            [pairs[0][0] for pairs in groups],
            max_new_tokens=CLOZE_GREEDY_TOKENS,
            stop=("\n",),
            progress=lambda d, _t: step(n // 2 + (d + 1) // 2, n),
        )
    records = []
    for row, doc, pairs, res, g in zip(rows, docs, groups, results, greedy, strict=True):
        contexts = [c for c, _ in pairs]
        rec = {
            "id": row.get("id"),
            "prompt": contexts[0] if len(set(contexts)) == 1 else contexts,
            "continuations": [c for _, c in pairs],
            "loglikelihoods": [r.logprob for r in res],
            "is_greedy": [r.is_greedy for r in res],
            "n_tokens": [r.n_tokens for r in res],
            "gold": doc.gold,
            "truncated": any(r.truncated for r in res),
            "scores": task.score_loglik(doc, [(r.logprob, r.is_greedy) for r in res]),
        }
        if g is not None:
            rec["greedy_continuation"] = g.text
        records.append(rec)
    return records


def _run_generate(
    task: tasks.Task,
    rows: list[dict[str, Any]],
    cfg: EvalConfig,
    backend: Any,
    chat: Callable[[str], str] | None,
    step: Callable[[int, int], None],
) -> list[dict[str, Any]]:
    prompts = []
    for i, row in enumerate(rows):
        text = task.prompt(row, tasks.fewshot_rows(rows, i, cfg.num_fewshot, cfg.seed))
        prompts.append(chat(text) if chat else text)
    max_new = cfg.max_new_tokens or task.max_new_tokens
    gens = backend.generate(prompts, max_new_tokens=max_new, stop=task.stop, progress=step)
    records = []
    for row, prompt, g in zip(rows, prompts, gens, strict=True):
        gold: Any = task.gold_record(row)
        records.append(
            {
                "id": row.get("id"),
                "prompt": prompt,
                "generation": g.text,
                "finish": g.finish,
                "n_tokens": g.n_tokens,
                "prompt_truncated": g.prompt_truncated,
                "gold": gold,
                "scores": task.score_generation(row, g.text),
            }
        )
    return records


def _task_summary(
    task: tasks.Task,
    records: list[dict[str, Any]],
    cfg: EvalConfig,
    fmt: str,
    source: str,
    seconds: float,
) -> dict[str, Any]:
    items = [r["scores"] for r in records]
    metrics = {}
    for m in task.metrics:
        value = task.aggregate(m)(items)
        if cfg.bootstrap < 1:
            lo, hi = math.nan, math.nan
        elif task.is_mean(m):
            key = task.metric(m).mean_of or m
            lo, hi = scoring.bootstrap_mean_ci(
                [float(i[key]) for i in items], n=cfg.bootstrap, seed=cfg.seed
            )
        else:
            lo, hi = scoring.bootstrap_ci(items, task.aggregate(m), n=cfg.bootstrap, seed=cfg.seed)
        metrics[m] = {"value": value, "ci95": [_finite(lo), _finite(hi)]}
    n_trunc = sum(
        1
        for r in records
        if r.get("finish") == "length" or r.get("truncated") or r.get("prompt_truncated")
    )
    return {
        "metrics": metrics,
        "n": len(records),
        "n_truncated": n_trunc,
        "method": task.method,
        "prompt_format": fmt,
        "num_fewshot": cfg.num_fewshot,
        "source": source,
        "seconds": round(seconds, 3),
        "examples_per_s": round(len(records) / seconds, 3) if seconds > 0 else None,
        "records": f"records/{task.name}.jsonl",
    }


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _write_json(path: Path, data: dict[str, Any]) -> None:
    storage.write_json(path, data, ensure_ascii=False, default=str)


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    storage.write_jsonl(path, records)


# ----------------------------------------------------------------------------------
# Reading runs back


CELLS_DIR = "cells"  # <home>/cells: Cookbook-Mix cells (mix.cells.cells_root)


def _run_folders() -> list[Path]:
    """Every folder that may hold a run: ``evals/*``, ``runs/*`` and the cells' eval folders."""
    cells = paths.home() / CELLS_DIR
    out: list[Path] = []
    for root, pattern in (
        (evals_root(), "*"),
        (jobs.runs_root(), "*"),
        (cells, "*/evals/*/*"),
    ):
        if root.is_dir():
            out += [f.parent for f in root.glob(f"{pattern}/summary.json")]
    return out


def list_runs() -> list[dict[str, Any]]:
    """Summaries of every evaluation run (foreground, jobs and mix cells), newest first.

    Each carries ``run_dir`` and ``origin`` (:func:`run_origin`).  A cell's run gets the
    ``run_id`` ``cells/<cell folder>/<settings>/<k>`` (its own folder name, ``000``, is
    not unique), which :func:`cookbook_core.align.runs.resolve_run` accepts too.
    """
    out = []
    for d in _run_folders():
        try:
            out.append(describe_run(d))
        except (BadInput, ValueError, OSError):
            continue
    return sorted(out, key=lambda s: s.get("created", ""), reverse=True)


def describe_run(run_dir: Path | str) -> dict[str, Any]:
    """A run's summary with ``run_dir`` and ``origin`` added (and a unique ``run_id`` for
    a cell's run); ``BadInput`` when the folder is not an evaluation run."""
    d = Path(run_dir)
    s = read_summary(d)
    s["run_dir"] = str(d)
    cell = _cell_folder(d)
    if cell is not None:
        s["run_id"] = "/".join((CELLS_DIR, cell.name, d.parent.name, d.name))
    s["origin"] = run_origin(s, d)
    return s


def _cell_folder(path: Path | str) -> Path | None:
    """The cell folder (``<home>/cells/<cell>``) that ``path`` lies in, if any."""
    root = paths.home() / CELLS_DIR
    try:
        rel = Path(path).resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    return root / rel.parts[0] if rel.parts else None


def run_origin(summary: dict[str, Any], run_dir: Path | str | None = None) -> dict[str, Any]:
    """Which model made a run: ``{kind, name, role, weights, cell_dir, trained_on}``.

    ``kind`` is ``base model`` (no adapter), ``mix cell`` (the run or its adapter lies in a
    cell: ``name``, ``role`` and normalized ``weights`` come from the cell's
    ``cell.json``; a sweep's ``base`` cell has no weights), ``training job`` or
    ``SELF-GUIDE`` (:func:`cookbook_core.train.adapters.describe`), or ``adapter`` (a
    folder elsewhere).  Only files are read.
    """
    from cookbook_core.train import adapters

    adapter = summary.get("adapter")
    out: dict[str, Any] = {
        "kind": "base model",
        "name": str(summary.get("model_display") or summary.get("model") or "default"),
        "role": "base",
        "weights": {},
        "cell_dir": None,
        "trained_on": "",
    }
    cell = _cell_folder(run_dir) if run_dir is not None else None
    if cell is None and adapter:
        cell = _cell_folder(adapter)
    if cell is not None and (cell / "cell.json").is_file():
        spec = json.loads((cell / "cell.json").read_text())
        weights = {str(t): float(w) for t, w in (spec.get("weights") or {}).items() if w > 0}
        total = sum(weights.values())
        out.update(
            kind="mix cell",
            name=str(spec.get("name", cell.name)),
            role=str(spec.get("role", "base" if not weights else "mixture")),
            weights={t: w / total for t, w in sorted(weights.items())} if total else {},
            cell_dir=str(cell),
            n=spec.get("n"),
            train=spec.get("train", {}),
        )
        return out
    if adapter:
        ref = adapters.describe(adapter)
        if ref is None:
            p = Path(adapter)
            out.update(kind="adapter", name=p.parent.name if p.name == "adapter" else p.name)
        else:
            out.update(kind=ref.kind, name=ref.run, trained_on=ref.trained_on)
        out["role"] = "tuned"
    return out


def read_summary(run_dir: Path | str) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise BadInput(f"{run_dir} has no summary.json (not an evaluation run)")
    return json.loads(path.read_text())


def read_records(run_dir: Path | str, task: str) -> list[dict[str, Any]]:
    """The per-example records of one task of a run."""
    path = Path(run_dir) / "records" / f"{task}.jsonl"
    if not path.is_file():
        raise BadInput(f"{run_dir} has no records for task {task!r}")
    return storage.read_jsonl(path)


# ----------------------------------------------------------------------------------
# The ``eval`` job kind


def validate_job(config: dict[str, Any]) -> dict[str, Any]:
    """Job validator: the config checked and made absolute (``BadInput`` on error)."""
    return validate(config_from_dict(config)).to_dict()


def run_job(ctx: Any) -> dict[str, Any]:
    """Job runner: evaluate into the job's run folder, reporting progress."""
    cfg = config_from_dict(ctx.config)

    def progress(done: int, total: int, **info: Any) -> None:
        ctx.progress(done, total, unit="examples", **info)

    summary = evaluate(cfg, ctx.run_dir, progress=progress, should_stop=ctx.cancelled)
    return {
        "status": summary["status"],
        "summary": str(Path(ctx.run_dir) / "summary.json"),
        "metrics": {
            t: {m: v["value"] for m, v in s["metrics"].items()} for t, s in summary["tasks"].items()
        },
    }
