"""Cells: one mixture, trained and evaluated, stored so that it is never redone.

A *cell* is the unit every Cookbook-Mix sweep and every experiment is made of: a
mixture of templates and ``dataset:PATH`` sources such as a SELF-GUIDE run's pairs
(:mod:`cookbook_core.mix.sources`), or nothing (the base model), a dataset generated from it, a
fine-tune on that dataset, and evaluations of the result on some tasks.  Its folder
``<home>/cells/<name>-<key>/`` is named by a hash of everything that determines the
trained model (weights, dataset size and seed, the templates' source code, the
training options, the content of any natural-language rows mixed in), so a second
sweep that asks for the same cell finds it done.

Stages, each skipped when already finished (which makes a cell resumable after a
crash or a cancel):

1. ``dataset/``: :func:`cookbook_core.generate.generate` (exact counts);
2. ``train/``: :func:`cookbook_core.train.training.train` (``resume=True``: continues from
   the last checkpoint);
3. ``evals/<settings>/<k>/``: :func:`cookbook_core.eval.evaluation.evaluate` on the tasks
   that have no finished result yet under the same evaluation settings (row limit,
   shots, data folder).

:func:`results` reads the stored per-task metric back (each task's first metric, or
the one asked for: :func:`matrix_metrics` lists those a task offers);
:func:`example_scores` the per-example scores (for paired bootstrap intervals).  The ``cell`` job kind runs one
cell in a worker.  This module does not decide which cells to make (``sweep``,
``experiments``) and does no mixing math (``mixing``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cookbook_core import configs, paths, storage
from cookbook_core.errors import BadInput
from cookbook_core.jobs import store as jobs
from cookbook_core.train.config import TrainConfig

StageProgress = Callable[..., None]  # progress(stage, done, total, **info)

# Training options a cell may set (the rest keep TrainConfig's defaults).
TRAIN_OPTIONS = (
    "steps",
    "lr",
    "batch_size",
    "method",
    "lora_r",
    "lora_alpha",
    "seed",
    "max_length",
    "warmup_steps",
    "lr_scheduler",
    "save_every",
    "natural_data",  # natural-language prompt/completion rows mixed into training (a file)
    "natural_n",  # how many of them (default: TrainConfig's)
)


@dataclass
class EvalSettings:
    """How a cell's model is evaluated (results are only shared between equal settings)."""

    tasks: list[str]
    limit: int | None = 100
    num_fewshot: int = 0
    data_dir: str | None = None
    max_new_tokens: int | None = None

    def key(self) -> str:
        """Folder name for these settings (the task list is not part of it)."""
        d = {"limit": self.limit, "fewshot": self.num_fewshot, "data": self.data_dir}
        if self.max_new_tokens is not None:
            d["max_new_tokens"] = self.max_new_tokens
        digest = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]
        return f"l{self.limit or 'all'}-f{self.num_fewshot}-{digest}"


@dataclass
class CellSpec:
    """A mixture to train (empty ``weights``: the untrained base model)."""

    name: str
    weights: dict[str, float] = field(default_factory=dict)
    n: int = 2000
    data_seed: int = 0
    model: str = "default"
    train: dict[str, Any] = field(default_factory=dict)
    role: str = "single"  # base | single | pair | dirichlet | optimized | uniform | ...

    def __post_init__(self) -> None:
        bad = set(self.train) - set(TRAIN_OPTIONS)
        if bad:
            raise BadInput(
                f"cell {self.name!r}: unknown training option(s) {', '.join(sorted(bad))}"
            )
        if any(w < 0 for w in self.weights.values()):
            raise BadInput(f"cell {self.name!r}: negative weight")
        if self.weights and sum(self.weights.values()) <= 0:
            raise BadInput(f"cell {self.name!r}: weights sum to zero")

    @property
    def is_base(self) -> bool:
        return not self.weights

    def normalized(self) -> dict[str, float]:
        total = sum(self.weights.values())
        return {t: w / total for t, w in sorted(self.weights.items()) if w > 0}

    def identity(self) -> dict[str, Any]:
        """What determines the trained model (the name and role do not)."""
        from cookbook_core.mix import sources as mix_sources

        if self.is_base:
            return {"model": self.model}
        train = dict(sorted(self.train.items()))
        if train.get("natural_data"):  # what the rows say, not where the file is
            train["natural_data"] = content_digest(train["natural_data"])
            train.setdefault("natural_n", NATURAL_N_DEFAULT)
        else:
            train.pop("natural_data", None)
            train.pop("natural_n", None)
        return {
            "model": self.model,
            "weights": {t: round(w, 6) for t, w in self.normalized().items()},
            "templates": {t: mix_sources.fingerprint(t) for t in self.normalized()},
            "n": self.n,
            "data_seed": self.data_seed,
            "train": train,
        }

    def key(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NATURAL_N_DEFAULT = configs.default(TrainConfig, "natural_n")


def content_digest(path: str | Path) -> str:
    """A short SHA-256 of a file's bytes, or of a folder's files (names and bytes)."""
    p = Path(path).expanduser()
    h = hashlib.sha256()
    if p.is_file():
        h.update(p.read_bytes())
    elif p.is_dir():
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
            h.update(f.read_bytes())
    else:
        raise BadInput(f"natural-language data {path}: no such file or folder")
    return h.hexdigest()[:16]


def spec_from_dict(d: Mapping[str, Any]) -> CellSpec:
    return CellSpec(**dict(d))


def cells_root() -> Path:
    return paths.home() / "cells"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:48] or "cell"


def cell_dir(spec: CellSpec) -> Path:
    """Where the cell lives; an existing folder with the same key is reused whatever its name."""
    key = spec.key()
    root = cells_root()
    if root.is_dir():
        for d in root.glob(f"*-{key}"):
            if d.is_dir():
                return d
    return root / f"{_slug(spec.name)}-{key}"


# ----------------------------------------------------------------------------------
# Reading stored results


def _eval_dirs(cdir: Path, settings: EvalSettings) -> list[Path]:
    root = cdir / "evals" / settings.key()
    if not root.is_dir():
        return []
    return sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.name)


def primary_metric(task: str) -> str:
    """The metric a task's cell in the accuracy matrix holds (the task's first metric)."""
    from cookbook_core.eval import tasks

    return tasks.get(task).metrics[0]


NOT_IN_MATRIX = ("perplexity",)  # lower is better: not an accuracy


def matrix_metrics(task: str) -> tuple[str, ...]:
    """The metrics a task's matrix cell may hold (its metrics that are scores in [0, 1]),
    the default (:func:`primary_metric`) first."""
    from cookbook_core.eval import tasks

    return tuple(m for m in tasks.get(task).metrics if m not in NOT_IN_MATRIX)


def metric_for(task: str, metrics: Mapping[str, str] | None = None) -> str:
    """The matrix metric of ``task``: ``metrics[task]`` when given (checked), else the
    task's first."""
    chosen = (metrics or {}).get(task)
    if chosen is None:
        return primary_metric(task)
    offered = matrix_metrics(task)
    if chosen not in offered:
        raise BadInput(
            f"task {task!r} has no matrix metric {chosen!r} (it has: {', '.join(offered)})"
        )
    return chosen


def results(
    spec: CellSpec, settings: EvalSettings, metrics: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """``{task: {value, ci95, metric, n, run_dir}}`` for every finished task of the cell.

    ``metrics``: task -> metric to report (:func:`metric_for`); each task's first metric
    otherwise.  Evaluation stores every metric, so changing it re-reads, never re-runs.
    """
    cdir = cell_dir(spec)
    out: dict[str, dict[str, Any]] = {}
    for d in _eval_dirs(cdir, settings):
        f = d / "summary.json"
        if not f.is_file():
            continue
        try:
            summary = json.loads(f.read_text())
        except ValueError:
            continue
        for task, s in summary.get("tasks", {}).items():
            if task not in settings.tasks:
                continue
            metric = metric_for(task, metrics)
            m = s["metrics"].get(metric)
            if m is None:
                continue
            out[task] = {
                "value": m["value"],
                "ci95": m.get("ci95"),
                "metric": metric,
                "n": s.get("n"),
                "run_dir": str(d),
            }
    return out


def missing_tasks(spec: CellSpec, settings: EvalSettings) -> list[str]:
    """Tasks of ``settings`` without a finished result in this cell."""
    have = results(spec, settings)
    return [t for t in settings.tasks if t not in have]


def example_items(spec: CellSpec, settings: EvalSettings, task: str) -> dict[str, dict[str, Any]]:
    """Per-example score dicts of one task, by example id: what any of the task's metrics
    (a mean or a set-level one such as entity matching's F1) is computed from."""
    r = results(spec, settings).get(task)
    if r is None:
        raise BadInput(f"cell {spec.name!r} has no result for {task!r} yet")
    return run_items(r["run_dir"], task)


def run_items(run_dir: str | Path, task: str) -> dict[str, dict[str, Any]]:
    """Per-example score dicts of one task of an evaluation run folder, by example id."""
    from cookbook_core.eval import evaluation

    return {
        str(rec.get("id", i)): rec["scores"]
        for i, rec in enumerate(evaluation.read_records(run_dir, task))
    }


def example_scores(
    spec: CellSpec, settings: EvalSettings, task: str, metric: str | None = None
) -> dict[str, float]:
    """Per-example scores of one task's metric (default: its first), by example id (for
    paired statistics); ``BadInput`` for a corpus-level metric (entity matching's F1),
    which has no per-example value (:func:`example_items` has what it is made of)."""
    from cookbook_core.eval import tasks

    metric = metric_for(task, {task: metric} if metric else None)
    if not tasks.get(task).is_mean(metric):
        raise BadInput(f"{task}'s {metric} is computed over the corpus: no per-example scores")
    key = tasks.get(task).metric(metric).mean_of or metric
    return {i: float(s[key]) for i, s in example_items(spec, settings, task).items()}


def training_result(spec: CellSpec) -> dict[str, Any] | None:
    f = cell_dir(spec) / "train" / "result.json"
    if not f.is_file():
        return None
    return json.loads(f.read_text())


def is_complete(spec: CellSpec, settings: EvalSettings) -> bool:
    return not missing_tasks(spec, settings)


# ----------------------------------------------------------------------------------
# Running


def _train_config(spec: CellSpec, data: Path) -> Any:
    from cookbook_core.train import training

    return training.TrainConfig(data=str(data), model=spec.model, **spec.train)


def run(
    spec: CellSpec,
    settings: EvalSettings,
    *,
    progress: StageProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run the missing stages of a cell; return ``{status, cell_dir, results}``.

    ``status`` is ``completed`` or ``stopped`` (``should_stop`` turned True; what was
    finished is kept and a later call continues).
    """
    from cookbook_core.eval import evaluation
    from cookbook_core.generate import GenerateConfig, Source, generate
    from cookbook_core.mix import sources as mix_sources
    from cookbook_core.train import training

    cdir = cell_dir(spec)
    cdir.mkdir(parents=True, exist_ok=True)
    storage.write_json(cdir / "cell.json", spec.to_dict())
    stop = should_stop or (lambda: False)

    def report(stage: str, done: int, total: int, **info: Any) -> None:
        if progress:
            progress(stage, done, total, **info)

    adapter: str | None = None
    if not spec.is_base:
        data = cdir / "dataset"
        if not (data / "manifest.json").is_file() and any(
            map(mix_sources.is_dataset, spec.weights)
        ):
            mix_sources.build(
                spec.normalized(), spec.n, data, seed=spec.data_seed, provenance={"cell": spec.name}
            )
        elif not (data / "manifest.json").is_file():
            cfg = GenerateConfig(
                sources=[Source(t, w) for t, w in spec.normalized().items()],
                n=spec.n,
                seed=spec.data_seed,
                extra={"mixture": {"weights": spec.normalized(), "cell": spec.name}},
            )
            generate(cfg, data, overwrite=True, progress=lambda d, t: report("dataset", d, t))
        tdir = cdir / "train"
        done = training_result(spec)
        if not (done and done.get("status") == "completed"):
            tcfg = _train_config(spec, data)
            res = training.train(
                tcfg,
                tdir,
                resume=True,
                progress=lambda s, t, info: report("train", s, t, loss=info.get("loss")),
                should_stop=stop,
            )
            if res["status"] != "completed":
                return {"status": "stopped", "cell_dir": str(cdir), "stage": "train"}
        adapter = str(tdir)

    todo = missing_tasks(spec, settings)
    if todo:
        if stop():
            return {"status": "stopped", "cell_dir": str(cdir), "stage": "eval"}
        root = cdir / "evals" / settings.key()
        root.mkdir(parents=True, exist_ok=True)
        out = root / f"{len(list(root.iterdir())):03d}"
        ecfg = evaluation.EvalConfig(
            tasks=todo,
            model=spec.model,
            adapter=adapter,
            limit=settings.limit,
            num_fewshot=settings.num_fewshot,
            data_dir=settings.data_dir,
            max_new_tokens=settings.max_new_tokens,
        )
        summary = evaluation.evaluate(
            ecfg,
            out,
            progress=lambda d, t, **info: report("eval", d, t, **info),
            should_stop=stop,
        )
        if summary["status"] != "completed":
            return {"status": "stopped", "cell_dir": str(cdir), "stage": "eval"}
    return {"status": "completed", "cell_dir": str(cdir), "results": results(spec, settings)}


# ----------------------------------------------------------------------------------
# The ``cell`` job kind


def job_config(spec: CellSpec, settings: EvalSettings) -> dict[str, Any]:
    return {"spec": spec.to_dict(), "eval": asdict(settings)}


def _from_job(config: Mapping[str, Any]) -> tuple[CellSpec, EvalSettings]:
    try:
        return spec_from_dict(config["spec"]), EvalSettings(**config["eval"])
    except (KeyError, TypeError) as exc:
        raise BadInput(f"bad cell job config: {exc}") from None


def validate_job(config: dict[str, Any]) -> dict[str, Any]:
    """Job validator: the templates, tasks and training options exist and make sense."""
    from cookbook_core.eval import tasks
    from cookbook_core.mix import sources as mix_sources
    from cookbook_core.train import training

    spec, settings = _from_job(config)
    for t in spec.weights:
        mix_sources.check(t)
    tasks.resolve(settings.tasks)
    if not spec.is_base:
        training.validate(_train_config(spec, cells_root() / "unused"))
    if settings.limit is not None and settings.limit < 1:
        raise BadInput("evaluation --limit must be >= 1")
    return job_config(spec, settings)


def run_job(ctx: Any) -> dict[str, Any]:
    """Job runner: run the cell's missing stages with per-stage progress."""
    spec, settings = _from_job(ctx.config)

    def progress(stage: str, done: int, total: int, **info: Any) -> None:
        ctx.progress(done, total, unit=stage, stage=stage, cell=spec.name, **info)

    res = run(spec, settings, progress=progress, should_stop=ctx.cancelled)
    return {"status": res["status"], "cell_dir": res["cell_dir"], "cell": spec.name}


def submit(spec: CellSpec, settings: EvalSettings, *, start: bool = True) -> str | None:
    """Queue a ``cell`` job unless the cell is complete or already queued/running."""
    if is_complete(spec, settings):
        return None
    key = spec.key()
    for job in jobs.list_jobs():
        if job.kind == "cell" and job.state in ("queued", "running"):
            other = job.config.get("spec", {})
            try:
                if spec_from_dict(other).key() == key and job.config.get("eval") == asdict(
                    settings
                ):
                    return job.id
            except BadInput:
                continue
    job = jobs.submit("cell", job_config(spec, settings), name=f"cell {spec.name}", start=start)
    return job.id


def run_all(
    specs: Sequence[CellSpec],
    settings: EvalSettings,
    *,
    progress: Callable[[str, str, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    ray: Any = None,
) -> dict[str, str]:
    """Run cells one after another in this process; ``{cell name: status}``.

    ``ray`` (a :class:`cookbook_core.mix.ray_cells.RayOptions`): run the incomplete ones
    as Ray tasks instead (same folders, keys and reuse; see that module).
    """
    if ray is not None:
        from cookbook_core.mix import ray_cells

        return ray_cells.run_all(
            specs, settings, options=ray, progress=progress, should_stop=should_stop
        )
    out: dict[str, str] = {}
    for spec in specs:
        if should_stop and should_stop():
            out[spec.name] = "stopped"
            continue
        res = run(
            spec,
            settings,
            progress=(lambda st, d, t, _n=spec.name, **_: progress(_n, st, d, t))
            if progress
            else None,
            should_stop=should_stop,
        )
        out[spec.name] = res["status"]
    return out
