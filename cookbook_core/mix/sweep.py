"""Cookbook-Mix sweeps: the cells that measure the accuracy matrix and test the linear model.

A sweep is a named plan saved as ``<home>/mixing/sweeps/<name>.json``: a set of
templates, a set of tasks, a training budget and evaluation settings.  From it come
the cells (:mod:`cookbook_core.mix.cells`):

* ``base``: the untrained model, evaluated on every task (the matrix's base row);
* one ``single`` cell per template (the matrix's rows);
* validation mixtures: every uniform pair of templates (``pairs``, as in the paper)
  and ``dirichlet`` seeded draws from a Dirichlet(alpha) over the templates;
* mixtures added later (``add_mixture``: the optimized mixture of ``mix verify``, an
  experiment's uniform mixture).

Every cell is stored once under ``<home>/cells`` and reused by any sweep that asks
for the same thing, so re-running a sweep only runs what is missing.  The training
options may mix natural-language rows into every fine-tune (``natural_data``,
``natural_n``: part of each cell's key).  The matrix is assembled from stored results
(:func:`matrix`) in the metric chosen per task (``metrics``; a task's first metric
otherwise: acc or acc_norm, exact_match or F1, ...) and written as CSV with a JSON
note of those metrics beside it (:func:`matrix_note`); missing (template, task) cells
are listed, never guessed.  :func:`validation`
compares each finished mixture's observed accuracy with the linear prediction.
This module holds no optimizer and no figures (``mixing``).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cookbook_core import storage
from cookbook_core.errors import BadInput
from cookbook_core.mix import cells, mixing

VALIDATION_ROLES = ("pair", "dirichlet", "optimized", "uniform", "mixture")
NOTE_SUFFIX = ".matrix.json"  # beside <name>.csv: the metric of each task column


class SweepError(BadInput):
    """A sweep that does not exist or cannot be assembled."""


@dataclass
class SweepConfig:
    """What a sweep trains and how it evaluates (saved as JSON)."""

    name: str
    templates: list[str]
    tasks: list[str]
    n: int = 2000
    data_seed: int = 0
    model: str = "default"
    train: dict[str, Any] = field(default_factory=lambda: {"steps": 40})
    limit: int | None = 100
    num_fewshot: int = 0
    data_dir: str | None = None
    pairs: bool = False
    dirichlet: int = 0
    alpha: float = 1.0
    seed: int = 0
    mixtures: list[dict[str, Any]] = field(default_factory=list)  # {name, weights, role, meta}
    metrics: dict[str, str] = field(default_factory=dict)  # task -> matrix metric (else first)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sweeps_root() -> Path:
    return Path(mixing.matrices_root()) / "sweeps"


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name or ""):
        raise SweepError(
            f"sweep name {name!r}: use letters, digits, '.', '_' or '-' (at most 64 characters)"
        )
    return name


def new(
    name: str,
    templates: Sequence[str],
    task_names: Sequence[str],
    **options: Any,
) -> SweepConfig:
    """A checked :class:`SweepConfig` (templates and tasks exist; groups expanded)."""
    from cookbook_core.eval import tasks
    from cookbook_core.mix import sources as mix_sources

    _check_name(name)
    if len(templates) < 1:
        raise SweepError("a sweep needs at least one template (--template)")
    if len(set(templates)) != len(templates):
        raise SweepError("a template is listed twice")
    for t in templates:
        mix_sources.check(t)  # a template name or dataset:PATH (e.g. a SELF-GUIDE run)
    resolved = [t.name for t in tasks.resolve(task_names)]
    if not resolved:
        raise SweepError("a sweep needs at least one task (--task or --task-group)")
    templates = [mix_sources.normalize(t) for t in templates]
    cfg = SweepConfig(name=name, templates=templates, tasks=resolved, **options)
    if cfg.dirichlet < 0 or cfg.alpha <= 0:
        raise SweepError("--dirichlet must be >= 0 and --alpha > 0")
    if cfg.n < 1:
        raise SweepError("-n must be >= 1")
    cfg.train = _checked_natural(cfg.train)
    cfg.metrics = check_metrics(cfg.tasks, cfg.metrics)
    plan(cfg)  # building the cells checks the training options
    return cfg


def _checked_natural(train: dict[str, Any]) -> dict[str, Any]:
    """Training options with ``natural_data`` made absolute and checked (rows readable,
    ``natural_n`` >= 1); without ``natural_data``, ``natural_n`` is an error."""
    from cookbook_core import dataset_io

    out = dict(train)
    if not out.get("natural_data"):
        out.pop("natural_data", None)
        if "natural_n" in out:
            raise SweepError("--natural-n needs --natural-data FILE (the rows to mix in)")
        return out
    path = Path(str(out["natural_data"])).expanduser()
    if not path.exists():
        raise SweepError(f"--natural-data {path}: no such file or folder")
    n = out.setdefault("natural_n", cells.NATURAL_N_DEFAULT)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise SweepError(f"--natural-n must be a positive integer, got {n!r}")
    if next(iter(dataset_io.iter_rows(str(path), limit=1)), None) is None:
        raise SweepError(f"--natural-data {path} has no rows")
    out["natural_data"] = str(path.resolve())
    return out


def check_metrics(task_names: Sequence[str], metrics: dict[str, str]) -> dict[str, str]:
    """``metrics`` (task -> matrix metric) checked against the tasks; entries that name
    a task's first metric are dropped (that is the default)."""
    out = {}
    for task, metric in metrics.items():
        if task not in task_names:
            raise SweepError(f"--metric for {task!r}, which is not one of the sweep's tasks")
        if cells.metric_for(task, {task: metric}) != cells.primary_metric(task):
            out[task] = metric
    return out


def parse_metrics(task_names: Sequence[str], choices: Sequence[str]) -> dict[str, str]:
    """``--metric`` values into task -> metric: ``TASK=METRIC`` for one task, or a bare
    ``METRIC`` for every task that offers it (an error when none does)."""
    out: dict[str, str] = {}
    for choice in choices:
        task, sep, metric = choice.partition("=")
        if sep:
            out[task.strip()] = metric.strip()
            continue
        hits = [t for t in task_names if choice in cells.matrix_metrics(t)]
        if not hits:
            raise SweepError(f"--metric {choice}: none of the sweep's tasks reports it")
        out.update({t: choice for t in hits})
    return check_metrics(task_names, out)


def metrics_of(cfg: SweepConfig) -> dict[str, str]:
    """The metric every task of the matrix holds (chosen or the task's first)."""
    return {t: cells.metric_for(t, cfg.metrics) for t in cfg.tasks}


def save(cfg: SweepConfig) -> Path:
    path = sweeps_root() / f"{_check_name(cfg.name)}.json"
    return storage.write_json(path, cfg.to_dict())


def load(name: str) -> SweepConfig:
    path = sweeps_root() / f"{name}.json"
    if not path.is_file():
        known = ", ".join(list_sweeps()) or "none yet"
        raise SweepError(f"no sweep named {name!r} (known: {known}); start one with `mix sweep`")
    return SweepConfig(**json.loads(path.read_text()))


def list_sweeps() -> list[str]:
    root = sweeps_root()
    return sorted(p.stem for p in root.glob("*.json")) if root.is_dir() else []


def settings(cfg: SweepConfig) -> cells.EvalSettings:
    return cells.EvalSettings(
        tasks=list(cfg.tasks), limit=cfg.limit, num_fewshot=cfg.num_fewshot, data_dir=cfg.data_dir
    )


def _cell(cfg: SweepConfig, name: str, weights: dict[str, float], role: str) -> cells.CellSpec:
    return cells.CellSpec(
        name=name,
        weights=weights,
        n=cfg.n,
        data_seed=cfg.data_seed,
        model=cfg.model,
        train=dict(cfg.train),
        role=role,
    )


def dirichlet_mixtures(templates: Sequence[str], k: int, alpha: float, seed: int) -> list[dict]:
    """``k`` seeded Dirichlet(alpha) mixtures (weights rounded to 3 decimals, renormalized)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        w = np.round(rng.dirichlet([alpha] * len(templates)), 3)
        w = w / w.sum()
        out.append({t: float(x) for t, x in zip(templates, w, strict=True) if x > 0})
    return out


def plan(cfg: SweepConfig) -> list[cells.CellSpec]:
    """Every cell of the sweep, base first, then singles, pairs, Dirichlet draws, added mixtures."""
    out = [cells.CellSpec(name="base", model=cfg.model, role="base")]
    out += [_cell(cfg, t, {t: 1.0}, "single") for t in cfg.templates]
    if cfg.pairs:
        for a, b in itertools.combinations(cfg.templates, 2):
            out.append(_cell(cfg, f"{a}+{b}", {a: 0.5, b: 0.5}, "pair"))
    if len(cfg.templates) > 1:
        for i, w in enumerate(
            dirichlet_mixtures(cfg.templates, cfg.dirichlet, cfg.alpha, cfg.seed)
        ):
            out.append(_cell(cfg, f"dirichlet-{i}", w, "dirichlet"))
    for m in cfg.mixtures:
        out.append(_cell(cfg, m["name"], dict(m["weights"]), m.get("role", "mixture")))
    return out


def add_mixture(
    cfg: SweepConfig,
    name: str,
    weights: dict[str, float],
    role: str = "mixture",
    meta: dict[str, Any] | None = None,
) -> cells.CellSpec:
    """Add (or replace) a named mixture in the sweep and save it; return its cell."""
    unknown = [t for t in weights if t not in cfg.templates]
    if unknown:
        raise SweepError(f"mixture {name!r} uses templates outside the sweep: {unknown}")
    cfg.mixtures = [m for m in cfg.mixtures if m["name"] != name]
    cfg.mixtures.append({"name": name, "weights": weights, "role": role, "meta": meta or {}})
    save(cfg)
    return _cell(cfg, name, weights, role)


# ----------------------------------------------------------------------------------
# Reading results back


def status(cfg: SweepConfig) -> pd.DataFrame:
    """One row per (cell, task): role, value (None when missing), where it is stored."""
    st = settings(cfg)
    metric = metrics_of(cfg)
    rows = []
    for spec in plan(cfg):
        res = cells.results(spec, st, metric)
        for task in cfg.tasks:
            r = res.get(task)
            rows.append(
                {
                    "cell": spec.name,
                    "role": spec.role,
                    "task": task,
                    "value": None if r is None else r["value"],
                    "metric": metric[task],
                    "done": r is not None,
                    "cell_dir": str(cells.cell_dir(spec)),
                }
            )
    return pd.DataFrame(rows)


def missing(cfg: SweepConfig) -> list[tuple[str, str]]:
    """``(cell, task)`` pairs without a stored result."""
    st = status(cfg)
    return [(r.cell, r.task) for r in st.itertuples() if not r.done]


def matrix(cfg: SweepConfig, *, write: bool = True) -> pd.DataFrame:
    """The accuracy matrix (base row + one row per template); NaN where not measured.

    Each task's column holds its metric in :func:`metrics_of`.  With ``write`` it is
    saved as ``<home>/mixing/<name>.csv`` for the studio and CLI, and those metrics as
    ``<name>.matrix.json`` beside it (:func:`matrix_note`).
    """
    st = status(cfg)
    rows = st[st["role"].isin(["base", "single"])]
    A = rows.pivot(index="cell", columns="task", values="value").astype(float)
    A = A.reindex(index=["base", *cfg.templates], columns=cfg.tasks)
    A.index.name = "template"
    if write:
        path = Path(mixing.matrices_root()) / f"{cfg.name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        storage.write_text(path, A.to_csv())
        storage.write_json(
            path.with_suffix(NOTE_SUFFIX), {"sweep": cfg.name, "metrics": metrics_of(cfg)}
        )
    return A


def matrix_note(csv: Path | str) -> dict[str, Any]:
    """What :func:`matrix` recorded beside a matrix CSV (``{sweep, metrics}``); ``{}`` for a
    CSV without a note (uploaded, or written before notes existed)."""
    note = Path(csv).with_suffix(NOTE_SUFFIX)
    if not note.is_file():
        return {}
    try:
        data = json.loads(note.read_text())
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def record_metrics(cfg: SweepConfig, metrics: dict[str, str]) -> pd.DataFrame:
    """Make ``metrics`` the sweep's matrix metrics: save the sweep and rewrite its matrix."""
    cfg.metrics = check_metrics(cfg.tasks, metrics)
    save(cfg)
    return matrix(cfg)


def complete_matrix(cfg: SweepConfig) -> pd.DataFrame:
    """The template rows of the matrix, or a :class:`SweepError` listing the missing cells."""
    A = matrix(cfg, write=False).drop(index="base")
    gaps = [(t, k) for t in A.index for k in A.columns if not np.isfinite(A.at[t, k])]
    if gaps:
        listed = ", ".join(f"({t}, {k})" for t, k in gaps)
        raise SweepError(
            f"sweep {cfg.name!r} is missing {len(gaps)} cell(s): {listed}; run "
            f"`cookbook mix sweep {cfg.name}` to measure them"
        )
    return A


def validation_runs(cfg: SweepConfig) -> list[mixing.Run]:
    """Finished mixtures (every role but base and single) as :class:`mixing.Run`."""
    st = settings(cfg)
    out = []
    for spec in plan(cfg):
        if spec.role not in VALIDATION_ROLES:
            continue
        res = cells.results(spec, st, cfg.metrics)
        if all(t in res for t in cfg.tasks):
            out.append(
                mixing.Run(spec.name, spec.normalized(), {t: res[t]["value"] for t in cfg.tasks})
            )
    return out


def validation(cfg: SweepConfig, *, n_boot: int = 1000, intervals: bool = True) -> dict[str, Any]:
    """Predicted vs observed for every finished mixture.

    Returns ``table`` (per mixture and task; with ``intervals``, the paired bootstrap
    interval of the error from :func:`cookbook_core.mix.protocol.fit_table`, set-level
    metrics included), ``stats`` (mean/median |error| in points), ``loo`` (leave-one-out:
    the matrix refit without each run, all runs including the single-template ones) and
    ``runs``.  A caller that runs the protocol itself passes ``intervals=False``.
    """
    A = complete_matrix(cfg)
    runs = validation_runs(cfg)
    if not runs:
        raise SweepError(
            f"sweep {cfg.name!r} has no finished mixture yet: add --pairs/--dirichlet K "
            "or run `cookbook mix verify`"
        )
    table = mixing.validation_table(A, runs)
    if intervals:
        from cookbook_core.mix import protocol  # paired replicates, set-level metrics included

        fit, _ = protocol.fit_table(protocol.collect_scores(cfg, n_boot=n_boot), cfg.templates)
        ci = {(r.mixture, r.task): (r.error_lo, r.error_hi) for r in fit.itertuples()}
        keys = list(zip(table["mixture"], table["task"], strict=True))
        table["error_lo"] = [ci.get(k, (np.nan, np.nan))[0] for k in keys]
        table["error_hi"] = [ci.get(k, (np.nan, np.nan))[1] for k in keys]
    singles = [mixing.Run(t, {t: 1.0}, A.loc[t].to_dict()) for t in cfg.templates]
    loo = mixing.leave_one_out([*singles, *runs], cfg.templates, cfg.tasks)
    return {
        "table": table,
        "stats": mixing.validation_stats(table),
        "loo": loo,
        "loo_mean_abs_error": float(loo["error_points"].abs().mean()),
        "runs": runs,
    }


# ----------------------------------------------------------------------------------
# Running


def submit_missing(cfg: SweepConfig) -> list[str]:
    """Queue a ``cell`` job for every cell with missing results; return the job ids."""
    st = settings(cfg)
    ids = []
    for spec in plan(cfg):
        job_id = cells.submit(spec, st)
        if job_id:
            ids.append(job_id)
    return ids


def run_missing(
    cfg: SweepConfig,
    *,
    progress: Callable[[str, str, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    only: Sequence[str] | None = None,
    ray: Any = None,
) -> dict[str, str]:
    """Run the sweep's incomplete cells in this process (``only``: those names), or as
    Ray tasks with ``ray`` (a :class:`cookbook_core.mix.ray_cells.RayOptions`)."""
    st = settings(cfg)
    todo = [
        s for s in plan(cfg) if (only is None or s.name in only) and not cells.is_complete(s, st)
    ]
    return cells.run_all(todo, st, progress=progress, should_stop=should_stop, ray=ray)
