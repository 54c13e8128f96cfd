"""The Cookbook paper's validation protocol, computed from a sweep's stored cells.

The paper checks the linear mixing model on uniform pairs (A only, B only, A+B at
50/50) and reports how far the mixed model lands from the average of A and B (1.4
points on average, 0.4 median).  Over a sweep (:mod:`cookbook_core.mix.sweep`: single
templates, ``--pairs``, Dirichlet draws, optimized and uniform mixtures) this module
computes, from the per-example evaluation records of every finished cell:

* **fit**: per (mixture, task) the linear prediction from the single-template rows,
  the observed score and the error, with a paired bootstrap 95% interval over the
  evaluation examples (every model is resampled on the same examples);
* **fit statistics**: mean and median |error| (with intervals) per group of mixtures
  (the paper's pairs, the Dirichlet draws, the rest), next to the paper's numbers;
* **leave-one-out**: each mixture predicted from a matrix fitted (least squares,
  clipped to [0, 1]) on the single templates and every *other* mixture;
* **optimizer**: each optimized mixture (role ``optimized``: ``opt-mean``,
  ``opt-maxmin``) against the base model, the uniform mixture and the best single
  template, on the average over tasks and on the worst task, with paired intervals of
  the differences.

One bootstrap drives everything: per task, ``n_boot`` multinomial resamples of the
examples that every finished cell scored, shared by all models, so every statistic
(a difference, a mean |error|, a refit) is recomputed on the same replicates; a
set-level metric (entity matching's F1) is recomputed from each replicate's examples.  :func:`run` returns plain JSON (``None`` where a number is
undefined); the ``*_frame`` functions and :func:`verdicts` turn it into the tables and
sentences the results page and the Mixing page show.  This module trains and
evaluates nothing and draws no figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cookbook_core.mix import cells, sweep

PAPER = {"mean_abs_error": 1.4, "median_abs_error": 0.4}  # points, uniform pairs on GPT4All
PROTOCOL_ROLES = ("pair", "dirichlet")  # the mixtures that test the linear model
GROUPS = {
    "pairs (paper's protocol)": ("pair",),
    "Dirichlet mixtures": ("dirichlet",),
    "pairs + Dirichlet": PROTOCOL_ROLES,
    "optimized / uniform / other": ("optimized", "uniform", "mixture"),
    "all mixtures": sweep.VALIDATION_ROLES,
}
LEVEL = 0.95


@dataclass
class Scores:
    """Every finished cell's score per task (fractions) and its bootstrap replicates."""

    names: list[str]
    roles: dict[str, str]
    weights: dict[str, dict[str, float]]
    tasks: list[str]
    metrics: dict[str, str]
    point: np.ndarray  # models x tasks
    reps: np.ndarray  # n_boot x models x tasks (NaN for a task without per-example scores)
    rows: dict[str, int]  # examples per task

    def at(self, name: str) -> int:
        return self.names.index(name)


def _q(values: np.ndarray) -> tuple[float, float]:
    """The central ``LEVEL`` interval of bootstrap replicates (NaN when any is NaN)."""
    a = (1 - LEVEL) / 2
    if values.size == 0 or np.isnan(values).any():
        return math.nan, math.nan
    return float(np.quantile(values, a)), float(np.quantile(values, 1 - a))


def collect_scores(cfg: sweep.SweepConfig, *, n_boot: int = 1000, seed: int = 0) -> Scores:
    """Scores of every cell of the sweep that finished every task (singles required).

    Per task the examples are those every such cell scored (matched by id); the
    replicates resample them with one multinomial draw per replicate shared by all
    cells (paired).
    """
    from cookbook_core.eval import tasks

    sweep.complete_matrix(cfg)  # every single-template cell finished, or a clear error
    st = sweep.settings(cfg)
    metrics = sweep.metrics_of(cfg)
    specs: list[cells.CellSpec] = []
    stored: dict[str, dict[str, Any]] = {}
    for spec in sweep.plan(cfg):
        res = cells.results(spec, st, metrics)
        if spec.name not in stored and all(t in res for t in cfg.tasks):
            specs.append(spec)
            stored[spec.name] = res
    names = [s.name for s in specs]
    point = np.full((len(names), len(cfg.tasks)), np.nan)
    reps = np.full((n_boot, len(names), len(cfg.tasks)), np.nan)
    rows: dict[str, int] = {}
    rng = np.random.default_rng(seed)
    for j, task in enumerate(cfg.tasks):
        metric = metrics[task]
        per = [cells.example_items(s, st, task) for s in specs]
        common = sorted(set.intersection(*(set(p) for p in per))) if per else []
        if not common:  # records without shared ids: the stored values, no interval
            point[:, j] = [stored[n][task]["value"] for n in names]
            rows[task] = int(min(stored[n][task]["n"] or 0 for n in names))
            continue
        n = len(common)
        counts = rng.multinomial(n, np.full(n, 1 / n), size=n_boot)  # n_boot x examples
        rows[task] = n
        t = tasks.get(task)
        if t.is_mean(metric):
            key = t.metric(metric).mean_of or metric
            S = np.array([[float(p[i][key]) for i in common] for p in per])  # models x examples
            point[:, j] = S.mean(axis=1)
            reps[:, :, j] = counts @ S.T / n
            continue
        # a set-level metric (entity matching's F1): recomputed on every resample
        agg = t.aggregate(metric)
        items = [[p[i] for i in common] for p in per]
        point[:, j] = [agg(it) for it in items]
        for b in range(n_boot):
            idx = np.repeat(np.arange(n), counts[b])
            reps[b, :, j] = [agg([it[k] for k in idx]) for it in items]
    return Scores(
        names=names,
        roles={s.name: s.role for s in specs},
        weights={s.name: s.normalized() for s in specs},
        tasks=list(cfg.tasks),
        metrics=metrics,
        point=point,
        reps=reps,
        rows=rows,
    )


def _weight_label(weights: Mapping[str, float]) -> str:
    return ", ".join(f"{t} {w:.2f}" for t, w in weights.items())


def _mixtures(sc: Scores) -> list[str]:
    return [n for n in sc.names if sc.roles[n] in sweep.VALIDATION_ROLES]


def _vector(sc: Scores, templates: Sequence[str], name: str) -> np.ndarray:
    w = sc.weights[name]
    return np.array([w.get(t, 0.0) for t in templates])


def _error_row(
    sc: Scores, name: str, j: int, pred: float, pred_reps: np.ndarray, obs_i: int
) -> tuple[dict[str, Any], np.ndarray]:
    err = 100 * (sc.point[obs_i, j] - pred)
    err_reps = 100 * (sc.reps[:, obs_i, j] - pred_reps)
    lo, hi = _q(err_reps)
    row = {
        "mixture": name,
        "role": sc.roles[name],
        "weights": _weight_label(sc.weights[name]),
        "task": sc.tasks[j],
        "metric": sc.metrics[sc.tasks[j]],
        "rows": sc.rows[sc.tasks[j]],
        "predicted": float(pred),
        "observed": float(sc.point[obs_i, j]),
        "error_points": float(err),
        "abs_error_points": float(abs(err)),
        "error_lo": lo,
        "error_hi": hi,
        "excludes_zero": bool(lo > 0 or hi < 0),
    }
    return row, err_reps


def fit_table(sc: Scores, templates: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Predicted (linear, from the single-template rows) vs observed per (mixture, task),
    errors in points with paired intervals; and the errors' replicates (n_boot x rows)."""
    idx = [sc.at(t) for t in templates]
    rows, reps = [], []
    for name in _mixtures(sc):
        w = _vector(sc, templates, name)
        for j in range(len(sc.tasks)):
            pred = float(w @ sc.point[idx, j])
            pred_reps = sc.reps[:, idx, j] @ w
            row, err_reps = _error_row(sc, name, j, pred, pred_reps, sc.at(name))
            rows.append(row)
            reps.append(err_reps)
    stacked = np.stack(reps, axis=1) if reps else np.empty((sc.reps.shape[0], 0))
    return pd.DataFrame(rows), stacked


def abs_error_stats(errors: np.ndarray, error_reps: np.ndarray) -> dict[str, Any]:
    """Mean, median and max |error| (points) of ``errors``, with bootstrap intervals of
    the mean and the median from ``error_reps`` (n_boot x len(errors)).  Sampling noise
    alone makes |error| positive, so the intervals' floor is above zero."""
    a = np.abs(errors)
    mlo, mhi = _q(np.abs(error_reps).mean(axis=1))
    dlo, dhi = _q(np.median(np.abs(error_reps), axis=1))
    return {
        "cells": int(len(a)),
        "mean_abs_error": float(a.mean()),
        "mean_lo": mlo,
        "mean_hi": mhi,
        "median_abs_error": float(np.median(a)),
        "median_lo": dlo,
        "median_hi": dhi,
        "max_abs_error": float(a.max()),
    }


def fit_stats(table: pd.DataFrame, error_reps: np.ndarray) -> dict[str, dict[str, Any]]:
    """:func:`abs_error_stats` per group of :data:`GROUPS` that has mixtures (a group
    holding the same mixtures as an earlier one is left out), with the count of cells
    whose interval excludes zero."""
    out = {}
    seen: list[np.ndarray] = []
    for group, roles in GROUPS.items():
        mask = table["role"].isin(roles).to_numpy() if len(table) else np.zeros(0, bool)
        if not mask.any() or any((mask == m).all() for m in seen):
            continue  # no mixture, or the same mixtures as a group listed before
        seen.append(mask)
        s = abs_error_stats(table["error_points"].to_numpy()[mask], error_reps[:, mask])
        s["excluding_zero"] = int(table["excludes_zero"].to_numpy()[mask].sum())
        s["mixtures"] = int(table.loc[mask, "mixture"].nunique())
        out[group] = s
    return out


def loo_table(sc: Scores, templates: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Leave-one-out: each mixture predicted from the matrix fitted on the single
    templates and every other mixture (least squares, clipped to [0, 1], as
    :func:`cookbook_core.mix.mixing.fit_matrix`); a mixture whose removal leaves the
    matrix undetermined gets no prediction (``note``)."""
    mixtures = _mixtures(sc)
    runs = [*templates, *mixtures]
    P = np.array([_vector(sc, templates, r) for r in runs])
    P = P / P.sum(axis=1, keepdims=True)
    ri = [sc.at(r) for r in runs]
    Y, Y_reps = sc.point[ri], sc.reps[:, ri, :]
    rows, reps = [], []
    for k, name in enumerate(mixtures, start=len(templates)):
        rest = [i for i in range(len(runs)) if i != k]
        if np.linalg.matrix_rank(P[rest]) < len(templates):
            for task in sc.tasks:
                rows.append(
                    {
                        "mixture": name,
                        "role": sc.roles[name],
                        "task": task,
                        "note": "the other runs do not determine every template's row",
                    }
                )
                reps.append(np.full(sc.reps.shape[0], np.nan))
            continue
        pinv = np.linalg.pinv(P[rest])  # templates x rest
        X = np.clip(pinv @ Y[rest], 0, 1)
        X_reps = np.clip(np.einsum("tr,brk->btk", pinv, Y_reps[:, rest, :]), 0, 1)
        for j in range(len(sc.tasks)):
            pred = float(P[k] @ X[:, j])
            row, err_reps = _error_row(sc, name, j, pred, X_reps[:, :, j] @ P[k], sc.at(name))
            rows.append({**row, "note": ""})
            reps.append(err_reps)
    stacked = np.stack(reps, axis=1) if reps else np.empty((sc.reps.shape[0], 0))
    return pd.DataFrame(rows), stacked


def _summary(vals: np.ndarray, reps: np.ndarray) -> dict[str, float]:
    lo, hi = _q(reps)
    return {"value": float(vals), "lo": lo, "hi": hi}


def _stat(sc: Scores, name: str, which: str) -> tuple[float, np.ndarray]:
    """A model's average over tasks or worst task, in points, and its replicates."""
    i = sc.at(name)
    if which == "average":
        return 100 * float(sc.point[i].mean()), 100 * sc.reps[:, i, :].mean(axis=1)
    return 100 * float(sc.point[i].min()), 100 * sc.reps[:, i, :].min(axis=1)


def optimizer_tables(
    sc: Scores, templates: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """Each optimized mixture against the base model, the uniform mixture and the best
    single template (by observed average): per model its average and worst-task score
    and per task (points, with intervals), and per (optimized, alternative, statistic)
    the paired difference with its interval.  Empty frames when no optimized mixture
    finished; the third value is the best single template."""
    best = max(templates, key=lambda t: float(sc.point[sc.at(t)].mean()))
    optimized = [n for n in sc.names if sc.roles[n] == "optimized"]
    if not optimized:
        return pd.DataFrame(), pd.DataFrame(), best
    alternatives = []
    if "base" in sc.names:
        alternatives.append(("base model", "base"))
    uniform = next((n for n in sc.names if sc.roles[n] == "uniform"), None)
    if uniform is not None:
        alternatives.append(("uniform mixture", uniform))
    alternatives.append((f"best single template ({best})", best))
    labels = [*alternatives, *((optimized_label(n), n) for n in optimized)]
    model_rows = []
    for label, name in labels:
        i = sc.at(name)
        row: dict[str, Any] = {"model": label, "cell": name}
        for which in ("average", "worst"):
            v, r = _stat(sc, name, which)
            row.update({f"{which}{k}": x for k, x in _summary(v, r).items()})
        for j, task in enumerate(sc.tasks):
            s = _summary(100 * sc.point[i, j], 100 * sc.reps[:, i, j])
            row.update({f"{task}{k}": x for k, x in s.items()})
        model_rows.append(row)
    diff_rows = []
    for name in optimized:
        for alt_label, alt in alternatives:
            for which in ("average", "worst"):
                ov, orep = _stat(sc, name, which)
                av, arep = _stat(sc, alt, which)
                lo, hi = _q(orep - arep)
                diff_rows.append(
                    {
                        "optimized": optimized_label(name),
                        "weights": _weight_label(sc.weights[name]),
                        "against": alt_label,
                        "statistic": which,
                        "optimized_value": ov,
                        "against_value": av,
                        "difference": ov - av,
                        "lo": lo,
                        "hi": hi,
                    }
                )
    return pd.DataFrame(model_rows), pd.DataFrame(diff_rows), best


def optimized_label(name: str) -> str:
    """``opt-maxmin`` -> ``optimized (maxmin)``."""
    return f"optimized ({name.removeprefix('opt-')})" if name.startswith("opt-") else name


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


def run(cfg: sweep.SweepConfig, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The whole protocol for a sweep, as JSON-ready numbers (points; ``None`` where
    undefined).  A :class:`~cookbook_core.mix.sweep.SweepError` when a single-template
    cell is missing or no mixture has finished."""
    sc = collect_scores(cfg, n_boot=n_boot, seed=seed)
    fit, fit_reps = fit_table(sc, cfg.templates)
    if fit.empty:
        raise sweep.SweepError(
            f"sweep {cfg.name!r} has no finished mixture yet: add --pairs/--dirichlet K "
            "or run `cookbook mix verify`"
        )
    loo, loo_reps = loo_table(sc, cfg.templates)
    done = loo["note"] == "" if len(loo) else pd.Series(dtype=bool)
    loo_stats = (
        abs_error_stats(loo.loc[done, "error_points"].to_numpy(), loo_reps[:, done.to_numpy()])
        if done.any()
        else None
    )
    models, diffs, best = optimizer_tables(sc, cfg.templates)
    return _clean(
        {
            "sweep": cfg.name,
            "paper": dict(PAPER),
            "n_boot": n_boot,
            "seed": seed,
            "level": LEVEL,
            "rows": sc.rows,
            "metrics": sc.metrics,
            "tasks": sc.tasks,
            "fit": fit.to_dict(orient="records"),
            "fit_stats": fit_stats(fit, fit_reps),
            "loo": loo.to_dict(orient="records"),
            "loo_stats": loo_stats,
            "best_single": best,
            "models": models.to_dict(orient="records"),
            "optimized": diffs.to_dict(orient="records"),
        }
    )


# ----------------------------------------------------------------------------------
# Tables and sentences for the results page and the Mixing page


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def ci_text(value: Any, lo: Any, hi: Any, *, signed: bool = False, digits: int = 1) -> str:
    """``+1.2 [-0.5, 3.0]`` (no brackets when the interval is undefined)."""
    v = _num(value)
    if not math.isfinite(v):
        return "-"
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    text = fmt.format(v)
    a, b = _num(lo), _num(hi)
    if math.isfinite(a) and math.isfinite(b):
        text += f" [{fmt.format(a)}, {fmt.format(b)}]"
    return text


def stats_frame(p: Mapping[str, Any]) -> pd.DataFrame:
    """One row per group of mixtures (and leave-one-out): mean and median |error| with
    intervals, max, how many cells' intervals exclude zero, the paper's numbers."""
    rows = []
    for group, s in p["fit_stats"].items():
        rows.append(
            {
                "mixtures": group,
                "(mixture, task) cells": (
                    f"{s['cells']} ({s['mixtures']} mixture{'s' if s['mixtures'] != 1 else ''})"
                ),
                "mean |error|": ci_text(s["mean_abs_error"], s["mean_lo"], s["mean_hi"], digits=2),
                "median |error|": ci_text(
                    s["median_abs_error"], s["median_lo"], s["median_hi"], digits=2
                ),
                "max |error|": f"{s['max_abs_error']:.2f}",
                "cells whose interval excludes 0": str(s["excluding_zero"]),
            }
        )
    s = p.get("loo_stats")
    if s:
        rows.append(
            {
                "mixtures": "leave-one-out (each mixture refit without it)",
                "(mixture, task) cells": str(s["cells"]),
                "mean |error|": ci_text(s["mean_abs_error"], s["mean_lo"], s["mean_hi"], digits=2),
                "median |error|": ci_text(
                    s["median_abs_error"], s["median_lo"], s["median_hi"], digits=2
                ),
                "max |error|": f"{s['max_abs_error']:.2f}",
                "cells whose interval excludes 0": str(
                    sum(bool(r.get("excludes_zero")) for r in p["loo"] if not r.get("note"))
                ),
            }
        )
    rows.append(
        {
            "mixtures": "paper (6 uniform pairs, GPT4All)",
            "(mixture, task) cells": "",
            "mean |error|": f"{p['paper']['mean_abs_error']:.2f}",
            "median |error|": f"{p['paper']['median_abs_error']:.2f}",
            "max |error|": "",
            "cells whose interval excludes 0": "",
        }
    )
    return pd.DataFrame(rows)


def fit_frame(p: Mapping[str, Any], *, loo: bool = False) -> pd.DataFrame:
    """Per (mixture, task): role, weights, predicted and observed (points), error [95% CI]; with
    ``loo`` the leave-one-out predictions instead."""
    recs = [r for r in (p["loo"] if loo else p["fit"]) if not r.get("note")]
    return pd.DataFrame(
        {
            "mixture": [r["mixture"] for r in recs],
            "role": [r["role"] for r in recs],
            "weights": [r.get("weights", "") for r in recs],
            "task": [r["task"] for r in recs],
            "rows": [r["rows"] for r in recs],
            "predicted": [f"{100 * r['predicted']:.1f}" for r in recs],
            "observed": [f"{100 * r['observed']:.1f}" for r in recs],
            "observed - predicted [95% CI]": [
                ci_text(r["error_points"], r["error_lo"], r["error_hi"], signed=True) for r in recs
            ],
        }
    )


def models_table(p: Mapping[str, Any]) -> pd.DataFrame:
    """Per compared model: average and worst task, then each task (points [95% CI])."""
    cols = ["average", "worst", *p["tasks"]]
    return pd.DataFrame(
        [
            {
                "model": r["model"],
                **{c: ci_text(r[f"{c}value"], r[f"{c}lo"], r[f"{c}hi"]) for c in cols},
            }
            for r in p["models"]
        ],
        columns=["model", *cols],
    )


def optimized_frame(p: Mapping[str, Any]) -> pd.DataFrame:
    """Per (optimized mixture, alternative): the paired difference on the average and
    on the worst task (points [95% CI])."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in p["optimized"]:
        row = out.setdefault(
            (r["optimized"], r["against"]),
            {"optimized mixture": r["optimized"], "weights": r["weights"], "vs": r["against"]},
        )
        row[f"{r['statistic']}: difference [95% CI]"] = ci_text(
            r["difference"], r["lo"], r["hi"], signed=True
        )
    return pd.DataFrame(list(out.values()))


def headline(p: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The group whose |error| the studio shows first: the paper's protocol mixtures
    (pairs and Dirichlet draws) when there are any, else every mixture."""
    stats = p["fit_stats"]
    for group in ("pairs + Dirichlet", "pairs (paper's protocol)", "Dirichlet mixtures"):
        if group in stats:
            return group, stats[group]
    group = "all mixtures" if "all mixtures" in stats else next(iter(stats))
    return group, stats[group]


def _direction(lo: Any, hi: Any) -> str:
    a, b = _num(lo), _num(hi)
    if not (math.isfinite(a) and math.isfinite(b)):
        return "no interval (corpus-level metric)"
    if a > 0:
        return "higher (interval above zero)"
    if b < 0:
        return "lower (interval below zero)"
    return "not distinguishable from zero"


def verdicts(p: Mapping[str, Any]) -> list[str]:
    """What holds and what does not, read off the intervals (no claim beyond them):
    :func:`fit_verdicts` then :func:`optimizer_verdicts`."""
    return [*fit_verdicts(p), *optimizer_verdicts(p)]


def fit_verdicts(p: Mapping[str, Any]) -> list[str]:
    """The linear model's errors against the paper's, per protocol group and left out."""
    out = []
    paper_mean = p["paper"]["mean_abs_error"]
    for group in ("pairs (paper's protocol)", "Dirichlet mixtures", "pairs + Dirichlet"):
        s = p["fit_stats"].get(group)
        if not s:
            continue
        lo, hi = _num(s["mean_lo"]), _num(s["mean_hi"])
        if math.isfinite(lo) and lo > paper_mean:
            where = f"above the paper's {paper_mean}: the linear model fits worse here"
        elif math.isfinite(hi) and hi < paper_mean:
            where = f"below the paper's {paper_mean}"
        elif math.isfinite(lo):
            where = f"an interval that contains the paper's {paper_mean}"
        else:
            where = "no interval"
        out.append(
            f"{group}: mean |error| {ci_text(s['mean_abs_error'], s['mean_lo'], s['mean_hi'], digits=2)} "
            f"points over {s['cells']} cells, {where}; {s['excluding_zero']} of {s['cells']} "
            "cells have an error whose 95% interval excludes zero (there the observed "
            "mixture differs from the linear prediction by more than sampling noise)."
        )
    s = p.get("loo_stats")
    if s:
        out.append(
            f"Leave-one-out: predicting each mixture from a matrix fitted without it gives "
            f"mean |error| {ci_text(s['mean_abs_error'], s['mean_lo'], s['mean_hi'], digits=2)} "
            f"points over {s['cells']} cells."
        )
    return out


def optimizer_verdicts(p: Mapping[str, Any]) -> list[str]:
    """Each optimized mixture against each alternative, on the average and worst task."""
    out = []
    for r in p["optimized"]:
        out.append(
            f"{r['optimized']} vs {r['against']}, {r['statistic']} "
            f"{'over tasks' if r['statistic'] == 'average' else 'task'}: "
            f"{ci_text(r['difference'], r['lo'], r['hi'], signed=True)} points: "
            f"{_direction(r['lo'], r['hi'])}."
        )
    return out
