"""Side-by-side comparison of 2–4 trained models through their evaluation runs.

Any run that :func:`cookbook_core.eval.evaluation.list_runs` finds can be compared: the
base model, a training job's adapter, a Cookbook-Mix cell (a single template or a
mixture, from a sweep or an experiment), a SELF-GUIDE adapter evaluated on the
Evaluation page.  For the runs picked (their folders) this module builds:

* :func:`letters` / :func:`models_frame`: a letter per run (A, B, ...) with the model that
  made it and the mixture weights (from the cell's ``cell.json`` when the run belongs to
  a cell; none for the base model and training jobs);
* :func:`scores_frame`: per (model, task) the task's metric with the run's seeded
  bootstrap 95% interval, as stored in ``summary.json``;
* :func:`example_table`: per example that every run scored (matched by id), each
  model's score, verdict (right when the score is >= 0.5: exactly the 0/1 metrics, a
  threshold for token F1) and answer; :func:`disagreements` keeps the rows where one
  model is right and another wrong; :func:`example_detail` gives one example's full
  prompt and every model's full output;
* :func:`paired_differences`: each model against the first on the shared examples,
  with a paired bootstrap 95% interval of the difference;
* :func:`runs_for_matrix_cell`: the runs behind a sweep's (template, task) matrix cell
  and its base row, which the Mixing page links to.

Figures are in :mod:`cookbook_core.studio.figures_compare`.  This module reads runs and
cells from disk; it runs no model, writes nothing and imports no Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from string import ascii_uppercase
from typing import Any

import numpy as np
import pandas as pd

from cookbook_core.errors import BadInput
from cookbook_core.eval import evaluation, scoring, tasks
from cookbook_core.studio import evaluation as studio_eval

MAX_MODELS = 4
RIGHT_AT = 0.5  # an example counts as right when its score reaches this


def load(run_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The runs' summaries with ``run_dir``, ``origin`` and ``run_id`` (as listed)."""
    if len(run_dirs) > MAX_MODELS:
        raise BadInput(f"compare at most {MAX_MODELS} runs, got {len(run_dirs)}")
    return [evaluation.describe_run(d) for d in run_dirs]


def letters(n: int) -> list[str]:
    """``A``, ``B``, ... for ``n`` runs (the column prefixes of the example tables)."""
    return list(ascii_uppercase[:n])


def models_frame(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per run: letter, label, kind, role, the mixture's weights (text), and the
    run's folder."""
    rows = []
    for letter, s in zip(letters(len(summaries)), summaries, strict=True):
        origin = s.get("origin") or {}
        weights = origin.get("weights") or {}
        rows.append(
            {
                "model": letter,
                "label": studio_eval.run_label(s),
                "kind": origin.get("kind", ""),
                "role": origin.get("role", ""),
                "weights": ", ".join(f"{t} {w:.2f}" for t, w in weights.items()) or "—",
                "run_dir": s.get("run_dir", ""),
            }
        )
    cols = ["model", "label", "kind", "role", "weights", "run_dir"]
    return pd.DataFrame(rows, columns=cols)


def weights_frame(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Long table of the mixture weights that made each model: model, template, weight
    (models without a mixture have no rows)."""
    rows = [
        {"model": letter, "template": t, "weight": float(w)}
        for letter, s in zip(letters(len(summaries)), summaries, strict=True)
        for t, w in ((s.get("origin") or {}).get("weights") or {}).items()
    ]
    return pd.DataFrame(rows, columns=["model", "template", "weight"])


def common_tasks(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Tasks every run has finished, in the first run's order."""
    if not summaries:
        return []
    first = list(summaries[0].get("tasks", {}))
    return [t for t in first if all(t in s.get("tasks", {}) for s in summaries[1:])]


def per_example_metrics(task_name: str) -> list[str]:
    """The task's metrics that have a per-example value (not corpus-level F1 or
    perplexity), the task's main metric first when it is one."""
    task = tasks.get(task_name)
    return [m for m in task.metrics if task.is_mean(m)]


def scores_frame(
    summaries: Sequence[Mapping[str, Any]], metrics: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Long table: per (model, task) the metric (``metrics[task]``, else the task's first),
    its value, the run's bootstrap 95% interval and n."""
    rows = []
    for letter, s in zip(letters(len(summaries)), summaries, strict=True):
        for task_name, t in s.get("tasks", {}).items():
            metric = (metrics or {}).get(task_name) or studio_eval.main_metric(task_name)
            m = (t.get("metrics") or {}).get(metric)
            if m is None:
                continue
            lo, hi = (list(m.get("ci95") or []) + [None, None])[:2]
            rows.append(
                {
                    "model": letter,
                    "label": f"{letter} · {studio_eval.run_label(s)}",
                    "task": task_name,
                    "metric": metric,
                    "value": m.get("value"),
                    "ci_low": lo,
                    "ci_high": hi,
                    "n": t.get("n"),
                }
            )
    cols = ["model", "label", "task", "metric", "value", "ci_low", "ci_high", "n"]
    return pd.DataFrame(rows, columns=cols)


def _records_by_id(run_dir: str | Path, task_name: str) -> dict[str, dict[str, Any]]:
    return {
        str(r.get("id", i)): r for i, r in enumerate(evaluation.read_records(run_dir, task_name))
    }


def _metric(task_name: str, metric: str | None) -> str:
    offered = per_example_metrics(task_name)
    if not offered:
        raise BadInput(f"task {task_name!r} has no per-example metric to compare examples on")
    if metric is None:
        return offered[0]
    if metric not in offered:
        raise BadInput(
            f"{task_name}: {metric!r} has no per-example value (use one of {', '.join(offered)})"
        )
    return metric


def example_table(
    run_dirs: Sequence[str | Path], task_name: str, metric: str | None = None
) -> pd.DataFrame:
    """One row per example every run scored on ``task_name`` (matched by id, in the first
    run's order): ``id``, ``gold``, then per model letter ``L``: ``L score``, ``L right``
    (score >= :data:`RIGHT_AT`) and ``L answer``.  ``metric``: a per-example metric of
    the task (default its first, :func:`per_example_metrics`)."""
    metric = _metric(task_name, metric)
    by_run = [_records_by_id(d, task_name) for d in run_dirs]
    if not by_run:
        raise BadInput("pick at least one run")
    shared = [i for i in by_run[0] if all(i in other for other in by_run[1:])]
    rows = []
    for i in shared:
        row: dict[str, Any] = {"id": i}
        for letter, recs in zip(letters(len(by_run)), by_run, strict=True):
            rec = recs[i]
            score = float((rec.get("scores") or {}).get(metric, float("nan")))
            answer, gold = studio_eval.answer_and_gold(rec, task_name, metric)
            row.setdefault("gold", studio_eval.short_text(gold))
            row[f"{letter} score"] = score
            row[f"{letter} right"] = bool(score >= RIGHT_AT)
            row[f"{letter} answer"] = studio_eval.short_text(answer)
        rows.append(row)
    cols = ["id", "gold"] + [
        f"{L} {c}" for L in letters(len(by_run)) for c in ("score", "right", "answer")
    ]
    frame = pd.DataFrame(rows, columns=cols)
    frame.attrs.update(metric=metric, task=task_name, n_each=[len(r) for r in by_run])
    return frame


def disagreements(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`example_table` where at least one model is right and another
    wrong, with ``right`` and ``wrong`` naming the models (``"A, C"``)."""
    models = [c.removesuffix(" right") for c in table.columns if c.endswith(" right")]
    if table.empty or len(models) < 2:
        return table.iloc[0:0].assign(right=[], wrong=[])
    flags = table[[f"{m} right" for m in models]].to_numpy(dtype=bool)
    split = flags.any(axis=1) & ~flags.all(axis=1)
    out = table[split].copy()
    out.insert(
        1,
        "right",
        [", ".join(m for m, f in zip(models, r, strict=True) if f) for r in flags[split]],
    )
    out.insert(
        2,
        "wrong",
        [", ".join(m for m, f in zip(models, r, strict=True) if not f) for r in flags[split]],
    )
    out.attrs.update(table.attrs)
    return out


def paired_differences(table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Each model against the first (``A``) on the shared examples of :func:`example_table`:
    mean score difference with a paired bootstrap 95% interval (seeded), and how many
    examples only one of the two gets right."""
    models = [c.removesuffix(" score") for c in table.columns if c.endswith(" score")]
    rows = []
    for m in models[1:]:
        a = table[f"{models[0]} score"].to_numpy(dtype=float)
        b = table[f"{m} score"].to_numpy(dtype=float)
        diff = b - a
        lo, hi = scoring.bootstrap_mean_ci(list(diff), n=n_boot, seed=seed)
        ra, rb = table[f"{models[0]} right"].to_numpy(bool), table[f"{m} right"].to_numpy(bool)
        rows.append(
            {
                "model": m,
                "against": models[0],
                "n": len(diff),
                "difference": float(np.mean(diff)) if len(diff) else float("nan"),
                "ci_low": lo,
                "ci_high": hi,
                f"only {m} right": int((rb & ~ra).sum()),
                f"only {models[0]} right": int((ra & ~rb).sum()),
            }
        )
    return pd.DataFrame(rows)


def example_detail(
    run_dirs: Sequence[str | Path], task_name: str, example_id: str, metric: str | None = None
) -> dict[str, Any]:
    """One example in full: ``gold`` and per model (``models``: letter, prompt, answer,
    output: the whole generation or greedy continuation when there is one, score,
    right)."""
    metric = _metric(task_name, metric)
    models = []
    gold: Any = None
    for letter, d in zip(letters(len(run_dirs)), run_dirs, strict=True):
        rec = _records_by_id(d, task_name).get(str(example_id))
        if rec is None:
            raise BadInput(f"run {d} has no example {example_id!r} of {task_name}")
        answer, gold = studio_eval.answer_and_gold(rec, task_name, metric)
        prompt = rec.get("prompt")
        score = float((rec.get("scores") or {}).get(metric, float("nan")))
        models.append(
            {
                "model": letter,
                "prompt": prompt if isinstance(prompt, str) else (prompt or [""])[0],
                "answer": answer,
                "output": rec.get("generation", rec.get("greedy_continuation", answer)),
                "score": score,
                "right": bool(score >= RIGHT_AT),
            }
        )
    return {
        "id": str(example_id),
        "task": task_name,
        "metric": metric,
        "gold": gold,
        "models": models,
    }


def runs_for_matrix_cell(sweep_name: str, template: str, task_name: str) -> list[str]:
    """The run folders behind a sweep's matrix cell (``template`` row, ``task`` column):
    the base row's run and the template's single-template run (just the base's for the
    ``base`` row).  ``BadInput`` when the sweep, row or task is unknown or not measured."""
    from cookbook_core.mix import cells, sweep

    cfg = sweep.load(sweep_name)
    if task_name not in cfg.tasks:
        raise BadInput(f"sweep {sweep_name!r} has no task {task_name!r}")
    by_name = {s.name: s for s in sweep.plan(cfg) if s.role in ("base", "single")}
    if template not in by_name:
        raise BadInput(f"sweep {sweep_name!r} has no matrix row {template!r}")
    st = sweep.settings(cfg)
    out = []
    for name in dict.fromkeys(["base", template]):
        res = cells.results(by_name[name], st, cfg.metrics).get(task_name)
        if res is None:
            raise BadInput(f"sweep {sweep_name!r}: ({name}, {task_name}) is not measured yet")
        out.append(res["run_dir"])
    return out


def match_runs(wanted: Sequence[str | Path], known: Sequence[str]) -> list[str]:
    """The entries of ``known`` (listed run folders) that are the folders ``wanted``, in
    ``wanted``'s order (paths compared resolved)."""
    by_real = {Path(k).resolve(): k for k in known}
    out = []
    for w in wanted:
        hit = by_real.get(Path(w).resolve())
        if hit is not None and hit not in out:
            out.append(hit)
    return out
