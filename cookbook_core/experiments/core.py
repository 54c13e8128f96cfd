"""Experiments: the Cookbook paper's effects, measured end to end with the project's parts.

Two experiments, each built from stored cells (:mod:`cookbook_core.mix.cells`) so a
rerun, a resumed job or a later report reuses every finished stage:

* **single-task** (:func:`run_single_task`): evaluate the base model on the
  template's real task(s), fine-tune on the template's data, evaluate again, and
  report the gain with a paired bootstrap interval over the same examples;
* **mix** (:func:`run_mix`): a Cookbook-Mix sweep at CPU scale (base + one
  fine-tune per template + uniform pairs and/or Dirichlet validation mixtures), the
  accuracy matrix, the linear-fit validation, the optimized mixture(s) (``--objective
  both``: mean and max-min) trained and evaluated, compared with the base model, the
  uniform mixture and the best single template; the paper's validation protocol with
  paired intervals (:mod:`cookbook_core.mix.protocol`) is stored with the result.

Each writes ``<home>/experiments/<name>/result.json`` with every number, the
settings, row counts and seconds spent; ``experiment`` jobs run either in a worker.
Report pages and figures are :mod:`cookbook_core.experiments.report`; no number here is typed
in by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cookbook_core import paths, storage
from cookbook_core.errors import BadInput
from cookbook_core.jobs import store as jobs
from cookbook_core.mix import cells

Progress = Callable[[str, str, int, int], None]  # (cell, stage, done, total)


class ExperimentError(BadInput):
    """An experiment that cannot run or has no results yet."""


def experiments_root() -> Path:
    return paths.home() / "experiments"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }


def paired_gain(
    before: Mapping[str, float], after: Mapping[str, float], *, n_boot: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Mean of ``after - before`` over the shared examples (points) with a 95% bootstrap CI."""
    ids = sorted(set(before) & set(after))
    if not ids:
        raise ExperimentError("the two runs share no examples")
    d = 100 * (np.array([after[i] for i in ids]) - np.array([before[i] for i in ids]))
    rng = np.random.default_rng(seed)
    reps = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
    return {
        "gain": float(d.mean()),
        "lo": float(np.quantile(reps, 0.025)),
        "hi": float(np.quantile(reps, 0.975)),
        "n": len(ids),
    }


def paired_metric_gain(
    task: str,
    metric: str,
    before: Mapping[str, Mapping[str, Any]],
    after: Mapping[str, Mapping[str, Any]],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """:func:`paired_gain` for any metric of ``task``, from per-example score dicts
    (:func:`cells.example_items`): a mean metric is a mean of differences; a set-level
    one (entity matching's F1) is recomputed for both models on each resample of the
    shared examples, so its interval is paired too."""
    from cookbook_core.eval import tasks

    t = tasks.get(task)
    if t.is_mean(metric):
        key = t.metric(metric).mean_of or metric
        return paired_gain(
            {i: float(s[key]) for i, s in before.items()},
            {i: float(s[key]) for i, s in after.items()},
            n_boot=n_boot,
            seed=seed,
        )
    ids = sorted(set(before) & set(after))
    if not ids:
        raise ExperimentError("the two runs share no examples")
    agg = t.aggregate(metric)
    b, a = [before[i] for i in ids], [after[i] for i in ids]
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(ids), len(ids))
        reps.append(100 * (agg([a[k] for k in idx]) - agg([b[k] for k in idx])))
    return {
        "gain": 100 * (agg(a) - agg(b)),
        "lo": float(np.quantile(reps, 0.025)),
        "hi": float(np.quantile(reps, 0.975)),
        "n": len(ids),
    }


def _cell_seconds(spec: cells.CellSpec, res: Mapping[str, Any]) -> dict[str, float]:
    train = cells.training_result(spec) or {}
    eval_s = 0.0
    for d in {r["run_dir"] for r in res.values()}:
        f = Path(d) / "summary.json"
        if f.is_file():
            eval_s += float(json.loads(f.read_text()).get("seconds") or 0)
    return {"train_seconds": float(train.get("seconds") or 0), "eval_seconds": eval_s}


def _write(name: str, result: dict[str, Any]) -> Path:
    out = experiments_root() / name
    return storage.write_json(out / "result.json", result, default=str)


def read(name: str) -> dict[str, Any]:
    f = experiments_root() / name / "result.json"
    if not f.is_file():
        known = ", ".join(list_experiments()) or "none yet"
        raise ExperimentError(f"no experiment {name!r} (known: {known})")
    return json.loads(f.read_text())


def list_experiments() -> list[str]:
    root = experiments_root()
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if (d / "result.json").is_file())


# ----------------------------------------------------------------------------------
# Single task


@dataclass
class SingleTaskConfig:
    """Base vs fine-tuned on one template's real task(s)."""

    template: str
    tasks: list[str] = field(default_factory=list)  # empty: the template's own tasks
    n: int = 2000
    steps: int = 80
    lr: float | None = None
    batch_size: int | None = None
    limit: int | None = 100
    data_seed: int = 0
    seed: int = 0
    model: str = "default"
    data_dir: str | None = None
    name: str | None = None
    train_extra: dict[str, Any] = field(default_factory=dict)  # other cells.TRAIN_OPTIONS

    def __post_init__(self) -> None:
        from cookbook_core.mix import sources as mix_sources

        self.template = mix_sources.normalize(self.template)

    def experiment_name(self) -> str:
        from cookbook_core.mix import sources as mix_sources

        if self.name:
            return self.name
        natural = f"-natural{self.natural_n}" if self.natural_n else ""
        return f"single-{mix_sources.short_name(self.template)}{natural}"

    @property
    def natural_n(self) -> int:
        """Natural-language rows mixed into the fine-tune (0: none)."""
        return natural_count(self.train_extra)

    def train_options(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": self.steps}
        if self.lr is not None:
            out["lr"] = self.lr
        if self.batch_size is not None:
            out["batch_size"] = self.batch_size
        if self.seed:
            out["seed"] = self.seed
        return {**out, **self.train_extra}


def natural_count(train_extra: Mapping[str, Any] | None) -> int:
    """Natural-language rows that training options mix in (0 without ``natural_data``)."""
    extra = train_extra or {}
    return int(extra.get("natural_n") or 0) if extra.get("natural_data") else 0


def single_task_cells(cfg: SingleTaskConfig) -> tuple[list[cells.CellSpec], cells.EvalSettings]:
    """The base and fine-tuned cells of the experiment and its evaluation settings."""
    from cookbook_core import discovery
    from cookbook_core.eval import tasks
    from cookbook_core.mix import sources as mix_sources

    mix_sources.check(cfg.template)  # a template, or dataset:PATH (e.g. other params)
    origin = mix_sources.template_of(cfg.template)
    declared = discovery.get(origin).tasks if origin in discovery.names() else ()
    names = cfg.tasks or [t for t in declared if t in tasks.TASKS]
    if not names:
        raise ExperimentError(
            f"{cfg.template!r} names no registered task ({', '.join(declared) or 'none'}); "
            "pass --task"
        )
    task_names = [t.name for t in tasks.resolve(names)]
    specs = [
        cells.CellSpec(name="base", model=cfg.model, role="base"),
        cells.CellSpec(
            name=cfg.template,
            weights={cfg.template: 1.0},
            n=cfg.n,
            data_seed=cfg.data_seed,
            model=cfg.model,
            train=cfg.train_options(),
            role="single",
        ),
    ]
    settings = cells.EvalSettings(tasks=task_names, limit=cfg.limit, data_dir=cfg.data_dir)
    return specs, settings


def run_single_task(
    cfg: SingleTaskConfig,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    ray: Any = None,
) -> dict[str, Any]:
    """Run (or finish) the experiment and write its result; ``status`` says whether it ended.

    ``ray`` (:class:`cookbook_core.mix.ray_cells.RayOptions`): the cells run as Ray tasks.
    """
    specs, settings = single_task_cells(cfg)
    t0 = time.time()
    statuses = cells.run_all(specs, settings, progress=progress, should_stop=should_stop, ray=ray)
    if any(s != "completed" for s in statuses.values()):
        return {"status": "stopped", "cells": statuses}
    return summarize_single_task(cfg, wall_seconds=time.time() - t0)


def summarize_single_task(cfg: SingleTaskConfig, wall_seconds: float | None = None) -> dict:
    """The result of a finished single-task experiment, from the stored cells."""
    specs, settings = single_task_cells(cfg)
    base, tuned = specs
    rb, rt = cells.results(base, settings), cells.results(tuned, settings)
    rows = []
    for task in settings.tasks:
        if task not in rb or task not in rt:
            raise ExperimentError(f"{cfg.experiment_name()}: no result for {task!r} yet")
        g = paired_metric_gain(
            task,
            rb[task]["metric"],
            cells.example_items(base, settings, task),
            cells.example_items(tuned, settings, task),
        )
        rows.append(
            {
                "task": task,
                "metric": rb[task]["metric"],
                "rows": rb[task]["n"],
                "base": 100 * rb[task]["value"],
                "base_ci95": [100 * x for x in rb[task]["ci95"]] if rb[task]["ci95"] else None,
                "tuned": 100 * rt[task]["value"],
                "tuned_ci95": [100 * x for x in rt[task]["ci95"]] if rt[task]["ci95"] else None,
                "gain": g["gain"],
                "gain_ci95": [g["lo"], g["hi"]],
                "base_run": rb[task]["run_dir"],
                "tuned_run": rt[task]["run_dir"],
                "gain_by_alignment": alignment_gain(
                    cfg.template, task, rb[task]["run_dir"], rt[task]["run_dir"]
                ),
            }
        )
    train = cells.training_result(tuned) or {}
    result = {
        "kind": "single-task",
        "name": cfg.experiment_name(),
        "status": "completed",
        "config": asdict(cfg),
        "train_options": cfg.train_options(),
        "rows": rows,
        "final_loss": train.get("final_loss"),
        "seconds": {
            "base": _cell_seconds(base, rb),
            "tuned": _cell_seconds(tuned, rt),
            "wall_last_call": wall_seconds,
        },
        "cells": {s.name: str(cells.cell_dir(s)) for s in specs},
        "machine": machine(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": single_task_command(cfg),
    }
    _write(cfg.experiment_name(), result)
    return result


def alignment_gain(template: str, task: str, base_run: str, tuned_run: str) -> dict | None:
    """The tuned run's gain split by whether its answers follow the template's rule
    (:func:`cookbook_core.align.gain.split_runs`, with ``explanation``); None when the
    template has no rule for the task, ``{"error": ...}`` when the runs cannot be aligned."""
    from cookbook_core.align import alignment, gain
    from cookbook_core.align import runs as alignment_runs
    from cookbook_core.mix import sources as mix_sources

    origin = mix_sources.template_of(template)
    if origin not in alignment.RULES or task not in alignment_runs.tasks_for_template(origin):
        return None
    try:
        split = gain.split_runs(origin, task, base_run, tuned_run)
    except BadInput as exc:
        return {"error": str(exc)}
    return {**split.to_dict(), "explanation": gain.explain(split)}


def single_task_command(cfg: SingleTaskConfig) -> str:
    parts = ["cookbook experiment single-task", f"--template {cfg.template}"]
    parts += [f"--task {t}" for t in cfg.tasks]
    parts += [f"-n {cfg.n}", f"--steps {cfg.steps}", f"--limit {cfg.limit}"]
    if cfg.lr is not None:
        parts.append(f"--lr {cfg.lr}")
    if cfg.batch_size is not None:
        parts.append(f"--batch-size {cfg.batch_size}")
    if cfg.natural_n:
        data = cfg.train_extra["natural_data"]
        parts.append(f"--natural-data {_natural_arg(data)} --natural-n {cfg.natural_n}")
    if cfg.data_dir:
        parts.append(f"--data-dir {cfg.data_dir}")
    if cfg.name:
        parts.append(f"--name {cfg.name}")
    return " ".join(parts)


def _natural_arg(path: str) -> str:
    """``sni`` when ``path`` is the workspace's pack-built natural file, else the path."""
    from cookbook_core.selfguide import natural_rows

    return natural_rows.ALIAS if Path(path).parent == paths.home() / "natural" else path


# ----------------------------------------------------------------------------------
# Mixing


@dataclass
class MixConfig:
    """Cookbook-Mix end to end at a chosen (CPU-sized) scale."""

    templates: list[str]
    tasks: list[str] = field(default_factory=lambda: ["gpt4all"])
    n: int = 1000
    steps: int = 24
    limit: int | None = 50
    dirichlet: int = 2
    pairs: bool = False
    objective: str = "maxmin"  # or "both": the mean and the max-min optimized mixtures
    model: str = "default"
    data_dir: str | None = None
    name: str | None = None
    train_extra: dict[str, Any] = field(default_factory=dict)  # other cells.TRAIN_OPTIONS
    metrics: list[str] = field(default_factory=list)  # --metric values (sweep.parse_metrics)

    def __post_init__(self) -> None:
        from cookbook_core.mix import sources as mix_sources

        self.templates = [mix_sources.normalize(t) for t in self.templates]

    def experiment_name(self) -> str:
        return self.name or "mix-" + "-".join(self.tasks)

    def objectives(self) -> list[str]:
        """The optimizer objectives whose mixtures the experiment trains."""
        return list(BOTH_OBJECTIVES) if self.objective == "both" else [self.objective]


BOTH_OBJECTIVES = ("mean", "maxmin")  # ``--objective both``: the paper's two comparisons


def mix_sweep(cfg: MixConfig) -> Any:
    """The experiment's sweep (created and saved on first use, reused after)."""
    from cookbook_core.mix import sweep

    name = cfg.experiment_name()
    fresh = sweep.new(
        name,
        cfg.templates,
        cfg.tasks,
        n=cfg.n,
        train={"steps": cfg.steps, **cfg.train_extra},
        limit=cfg.limit,
        data_dir=cfg.data_dir,
        pairs=cfg.pairs,
        dirichlet=cfg.dirichlet,
        model=cfg.model,
    )
    fresh.metrics = sweep.parse_metrics(fresh.tasks, cfg.metrics)
    if name in sweep.list_sweeps():
        old = sweep.load(name)
        fresh.mixtures = old.mixtures
    sweep.save(fresh)
    return fresh


def run_mix(
    cfg: MixConfig,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    ray: Any = None,
) -> dict[str, Any]:
    """Sweep, fit, optimize, train the optimized and the uniform mixtures, compare.

    ``ray`` (:class:`cookbook_core.mix.ray_cells.RayOptions`): the cells run as Ray tasks
    (both rounds over one connection).
    """
    from cookbook_core.mix import mixing, ray_cells, sweep

    sw = mix_sweep(cfg)
    t0 = time.time()
    link = ray_cells.connected(ray.address) if ray is not None else contextlib.nullcontext()
    with link:
        st = sweep.run_missing(sw, progress=progress, should_stop=should_stop, ray=ray)
        if any(s != "completed" for s in st.values()):
            return {"status": "stopped", "cells": st}
        A = sweep.complete_matrix(sw)
        for objective in cfg.objectives():
            opt = mixing.optimize(A, objective)
            sweep.add_mixture(sw, f"opt-{objective}", opt.weights, "optimized", opt.manifest())
        uniform = {t: 1 / len(cfg.templates) for t in cfg.templates}
        sweep.add_mixture(sw, "uniform", uniform, "uniform")
        st = sweep.run_missing(sw, progress=progress, should_stop=should_stop, ray=ray)
        if any(s != "completed" for s in st.values()):
            return {"status": "stopped", "cells": st}
    return summarize_mix(cfg, wall_seconds=time.time() - t0)


def summarize_mix(cfg: MixConfig, wall_seconds: float | None = None) -> dict[str, Any]:
    """The result of a finished mix experiment, from the stored cells (with the paper's
    validation protocol: :func:`cookbook_core.mix.protocol.run`)."""
    from cookbook_core.mix import mixing, protocol, sweep

    sw = sweep.load(cfg.experiment_name())
    if cfg.metrics:  # a new reading of the same cells
        sw.metrics = sweep.parse_metrics(sw.tasks, cfg.metrics)
    A_full = sweep.matrix(sw)
    A = sweep.complete_matrix(sw)
    settings = sweep.settings(sw)
    by_name = {s.name: s for s in sweep.plan(sw)}
    opt_names = [f"opt-{o}" for o in cfg.objectives()]
    if any(n not in by_name for n in opt_names) or "uniform" not in by_name:
        raise ExperimentError(f"{cfg.experiment_name()}: the optimized mixture has not run yet")
    observed = {
        name: {t: r["value"] for t, r in cells.results(by_name[name], settings, sw.metrics).items()}
        for name in ("base", *opt_names, "uniform", *sw.templates)
    }
    best_single = max(sw.templates, key=lambda t: float(np.mean(list(observed[t].values()))))
    compare_names = {
        "base model": "base",
        "best single template": best_single,
        "uniform mixture": "uniform",
        **{f"optimized ({n.removeprefix('opt-')})": n for n in opt_names},
    }
    table = {
        label: {t: 100 * observed[name][t] for t in sw.tasks}
        for label, name in compare_names.items()
    }
    for label in table:
        vals = list(table[label].values())
        table[label]["average"] = float(np.mean(vals))
        table[label]["worst"] = float(np.min(vals))
    weights = {n: by_name[n].normalized() for n in (*opt_names, "uniform")}
    predicted = {
        n: {t: 100 * v for t, v in mixing.predict(A, w, normalize=True).items()}
        for n, w in weights.items()
    }
    validation: dict[str, Any] = {}
    try:
        v = sweep.validation(sw, intervals=False)  # the protocol below has the intervals
        validation = {
            "table": v["table"].to_dict(orient="records"),
            "stats": v["stats"],
            "loo_mean_abs_error": v["loo_mean_abs_error"],
        }
    except BadInput as exc:
        validation = {"error": str(exc)}
    seconds_protocol = time.time()
    try:
        protocol_result = protocol.run(sw)
        protocol_result["seconds"] = time.time() - seconds_protocol
    except BadInput as exc:
        protocol_result = {"error": str(exc)}
    seconds = {s.name: _cell_seconds(s, cells.results(s, settings)) for s in sweep.plan(sw)}
    result = {
        "kind": "mix",
        "name": cfg.experiment_name(),
        "status": "completed",
        "config": asdict(cfg),
        "sweep": sw.to_dict(),
        "matrix": {
            t: {k: (None if np.isnan(v) else 100 * v) for k, v in row.items()}
            for t, row in A_full.iterrows()
        },
        "weights": weights,
        "best_single": best_single,
        "comparison": table,
        "predicted": predicted,
        "validation": validation,
        "protocol": protocol_result,
        "seconds": seconds,
        "metrics": sweep.metrics_of(sw),
        "eval_backends": eval_backends([s for s in sweep.plan(sw)], settings),
        "wall_last_call": wall_seconds,
        "machine": machine(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": mix_command(cfg),
    }
    _write(cfg.experiment_name(), result)
    return result


def eval_backends(specs: list[cells.CellSpec], settings: cells.EvalSettings) -> dict[str, int]:
    """How many of the cells' evaluation runs each backend answered (transformers in
    this process, or served by vLLM)."""
    out: dict[str, int] = {}
    for spec in specs:
        for d in {r["run_dir"] for r in cells.results(spec, settings).values()}:
            f = Path(d) / "summary.json"
            backend = json.loads(f.read_text()).get("backend") if f.is_file() else None
            out[backend or "unknown"] = out.get(backend or "unknown", 0) + 1
    return out


def mix_command(cfg: MixConfig) -> str:
    parts = ["cookbook experiment mix"]
    parts += [f"--template {t}" for t in cfg.templates]
    parts += [f"--task {t}" for t in cfg.tasks]
    parts += [f"-n {cfg.n}", f"--steps {cfg.steps}", f"--limit {cfg.limit}"]
    parts += [f"--dirichlet {cfg.dirichlet}", f"--objective {cfg.objective}"]
    if cfg.pairs:
        parts.append("--pairs")
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in sorted(cfg.train_extra.items())]
    parts += [f"--metric {m}" for m in cfg.metrics]
    if cfg.data_dir:
        parts.append(f"--data-dir {cfg.data_dir}")
    if cfg.name:
        parts.append(f"--name {cfg.name}")
    return " ".join(parts)


# ----------------------------------------------------------------------------------
# The ``experiment`` job kind


KINDS = {"single-task": (SingleTaskConfig, run_single_task), "mix": (MixConfig, run_mix)}


def config_of(kind: str, d: Mapping[str, Any]) -> Any:
    if kind not in KINDS:
        raise ExperimentError(f"unknown experiment {kind!r} (known: {', '.join(KINDS)})")
    try:
        return KINDS[kind][0](**dict(d))
    except TypeError as exc:
        raise ExperimentError(f"bad {kind} experiment options: {exc}") from None


def check_name_free(cfg: Any) -> None:
    """Refuse a name that already holds a result with other settings (it would be replaced).

    Rerunning or resuming with the same settings is fine; settings a result written by an
    older version does not record are not compared.
    """
    name = cfg.experiment_name()
    f = experiments_root() / name / "result.json"
    if not f.is_file():
        return
    stored = json.loads(f.read_text()).get("config") or {}
    now = json.loads(json.dumps(asdict(cfg), default=str))
    differ = [k for k in now if k in stored and stored[k] != now[k]]
    if differ:
        what = "; ".join(f"{k}: {stored[k]!r} there, {now[k]!r} now" for k in differ)
        raise ExperimentError(
            f"experiment {name!r} already holds a result with other settings ({what}); "
            f"pass --name to keep both (or delete {f.parent} to replace it)"
        )


def check(kind: str, cfg: Any) -> None:
    """Cheap checks before any work: templates, tasks and options exist and make sense,
    and the experiment's name does not hold another experiment's result."""
    check_name_free(cfg)
    if kind == "single-task":
        single_task_cells(cfg)
        if cfg.steps < 1 or cfg.n < 1:
            raise ExperimentError("--steps and -n must be >= 1")
    else:
        from cookbook_core.mix import mixing, sweep

        if cfg.objective not in (*mixing.OBJECTIVES, "both"):
            raise ExperimentError(f"unknown objective {cfg.objective!r}")
        if len(cfg.templates) < 2:
            raise ExperimentError("a mix experiment needs at least two templates (--template)")
        sweep.new(cfg.experiment_name(), cfg.templates, cfg.tasks, n=cfg.n)


def validate_job(config: dict[str, Any]) -> dict[str, Any]:
    kind = config.get("experiment")
    cfg = config_of(str(kind), config.get("config", {}))
    check(str(kind), cfg)
    return {"experiment": kind, "config": asdict(cfg)}


def run_job(ctx: Any) -> dict[str, Any]:
    kind = ctx.config["experiment"]
    cfg = config_of(kind, ctx.config["config"])

    def progress(cell: str, stage: str, done: int, total: int) -> None:
        ctx.progress(done, total, unit=stage, cell=cell, stage=stage)

    res = KINDS[kind][1](cfg, progress=progress, should_stop=ctx.cancelled)
    return {"status": res["status"], "experiment": cfg.experiment_name()}


def submit(kind: str, cfg: Any) -> str:
    """Queue an ``experiment`` job; return its id."""
    job = jobs.submit(
        "experiment",
        {"experiment": kind, "config": asdict(cfg)},
        name=f"experiment {cfg.experiment_name()}",
    )
    return job.id


def summarize(kind: str, cfg: Any) -> dict[str, Any]:
    return summarize_single_task(cfg) if kind == "single-task" else summarize_mix(cfg)
