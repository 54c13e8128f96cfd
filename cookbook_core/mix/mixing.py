"""Cookbook-Mix: the linear mixing model, its validation, and mixture optimizers.

The paper's assumption: a model fine-tuned on a mixture ``p`` of templates scores
``acc_task(p) = sum_t p_t * A[t, task]`` where ``A[t, task]`` is the accuracy of the
model fine-tuned on template ``t`` alone.  This module holds the math over an
accuracy matrix ``A`` (a DataFrame, templates x tasks, accuracies in [0, 1]):

* :func:`predict` / :func:`what_if`: predicted per-task accuracy of a mixture;
* :func:`optimize`: named objectives over the simplex with per-template bounds and
  per-task weights: ``mean`` (a linear program; lands on a vertex unless bounds
  stop it), ``maxmin`` (maximize the worst task; a linear program),
  ``entropy`` (mean plus ``temperature`` times the mixture's entropy);
* :func:`validation_table` / :func:`validation_stats`: predicted vs observed for
  trained mixtures (mean and median absolute error in points, as the paper
  reports); :func:`fit_matrix` and :func:`leave_one_out`: a least-squares A fitted
  from any set of runs, and the error on each run when it is held out (paired
  intervals of the errors: :mod:`cookbook_core.mix.protocol`).

Its Plotly figures are drawn by :mod:`cookbook_core.studio.figures_mix`.

It does not train or evaluate anything: sweeps that produce ``A`` live with the
jobs that run them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cookbook_core.errors import BadInput

OBJECTIVES = ("mean", "maxmin", "entropy")


class MixingError(BadInput):
    """An accuracy matrix, mixture or optimizer setting that cannot be used."""


@dataclass
class MixResult:
    """A mixture and how it was produced."""

    weights: dict[str, float]
    objective: str
    value: float
    predicted: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """What a mixed dataset's manifest records."""
        return {
            "weights": self.weights,
            "objective": self.objective,
            "objective_value": self.value,
            "predicted": self.predicted,
            **self.settings,
        }


# ----------------------------------------------------------------------------------
# Matrix and mixtures


_LISTED = 10  # cells named in one error message (then "and N more")


def _listing(items: Sequence[str]) -> str:
    more = f" and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return ", ".join(items[:_LISTED]) + more


def _cell_number(value: Any) -> float | None:
    """A cell as a float; NaN for an empty cell; None when it is not a number."""
    if value is None or isinstance(value, bool | np.bool_):
        return None if isinstance(value, bool | np.bool_) else math.nan
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "nan", "na", "n/a", "null", "none"):
            return math.nan
        try:
            return float(text)
        except ValueError:
            return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    return None


def check_matrix(A: pd.DataFrame) -> pd.DataFrame:
    """``A`` as floats, or a :class:`MixingError` naming the duplicated template rows or
    task columns, the cells that are not numbers, every missing (template, task), the
    cells that are not finite, or saying that an accuracy is outside [0, 1]."""
    if A.empty:
        raise MixingError("the accuracy matrix is empty")
    for axis, names in (("template row", A.index), ("task column", A.columns)):
        dup = [str(x) for x in names[names.duplicated()].unique()]
        if dup:
            raise MixingError(
                f"the accuracy matrix has duplicated {axis}(s): {_listing(dup)} "
                "(each template and each task once)"
            )
    values = np.empty(A.shape)
    bad: list[str] = []
    for i, t in enumerate(A.index):
        for j, k in enumerate(A.columns):
            raw = A.iat[i, j]
            number = _cell_number(raw)
            if number is None:
                bad.append(f"({t}, {k}) = {str(raw)[:20]!r}")
                number = math.nan
            values[i, j] = number
    if bad:
        raise MixingError(
            f"the accuracy matrix has {len(bad)} non-numeric cell(s): {_listing(bad)}"
        )
    infinite = [
        f"({t}, {k})"
        for i, t in enumerate(A.index)
        for j, k in enumerate(A.columns)
        if np.isinf(values[i, j])
    ]
    if infinite:
        raise MixingError(
            f"the accuracy matrix has {len(infinite)} infinite cell(s) (too large to be "
            f"an accuracy): {_listing(infinite)}"
        )
    A = pd.DataFrame(values, index=A.index, columns=A.columns)
    missing = [(t, k) for t in A.index for k in A.columns if not np.isfinite(A.at[t, k])]
    if missing:
        cells = _listing([f"({t}, {k})" for t, k in missing])
        raise MixingError(f"the accuracy matrix has {len(missing)} missing cell(s): {cells}")
    if ((A < 0) | (A > 1)).to_numpy().any():
        raise MixingError("accuracies must be in [0, 1]")
    return A


def mixture_vector(
    A: pd.DataFrame, weights: Mapping[str, float], *, normalize: bool = False
) -> np.ndarray:
    """Weights as a vector aligned with ``A``'s rows (missing templates get 0)."""
    unknown = [t for t in weights if t not in A.index]
    if unknown:
        raise MixingError(
            f"unknown template(s) {', '.join(map(repr, unknown))}; the matrix has "
            f"{', '.join(map(str, A.index))}"
        )
    p = np.array([float(weights.get(t, 0.0)) for t in A.index])
    if (p < 0).any() or not np.isfinite(p).all():
        raise MixingError("weights must be finite and >= 0")
    with np.errstate(over="ignore"):
        total = p.sum()
    if not np.isfinite(total):
        raise MixingError("the weights are too large: their sum overflows (use shares, e.g. 0.3)")
    if total <= 0:
        raise MixingError("at least one weight must be > 0")
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        if not normalize:
            raise MixingError(
                f"weights sum to {total:g}, not 1; pass normalize=True (--normalize) to "
                f"rescale them to {', '.join(f'{t}={w / total:.3f}' for t, w in zip(A.index, p, strict=True) if w)}"
            )
        p = p / total
    return p


def predict(A: pd.DataFrame, weights: Mapping[str, float], *, normalize: bool = False) -> pd.Series:
    """Predicted per-task accuracy of a mixture under the linear model."""
    A = check_matrix(A)
    p = mixture_vector(A, weights, normalize=normalize)
    return pd.Series(p @ A.to_numpy(), index=A.columns, name="predicted")


def what_if(
    A: pd.DataFrame,
    weights: Mapping[str, float],
    reference: Mapping[str, float] | pd.Series | None = None,
    *,
    normalize: bool = False,
) -> pd.DataFrame:
    """Predicted per-task accuracy of ``weights`` and its change against ``reference``
    (a per-task Series, e.g. the base model's row; default: the uniform mixture)."""
    pred = predict(A, weights, normalize=normalize)
    if reference is None:
        ref = predict(A, {t: 1 / len(A.index) for t in A.index})
    else:
        ref = pd.Series(reference, dtype=float).reindex(A.columns)
    return pd.DataFrame({"predicted": pred, "reference": ref, "change": pred - ref})


# ----------------------------------------------------------------------------------
# Optimizers


def _bounds(
    templates: Sequence[str], bounds: Mapping[str, tuple[float, float]] | None
) -> list[tuple[float, float]]:
    bounds = dict(bounds or {})
    unknown = [t for t in bounds if t not in templates]
    if unknown:
        raise MixingError(f"bounds name unknown template(s): {', '.join(unknown)}")
    out = []
    for t in templates:
        lo, hi = bounds.get(t, (0.0, 1.0))
        if not (0 <= lo <= hi <= 1):  # NaN fails every comparison
            raise MixingError(
                f"bounds for {t!r} must satisfy 0 <= low <= high <= 1, got ({lo}, {hi})"
            )
        out.append((float(lo), float(hi)))
    lo_sum = sum(b[0] for b in out)
    hi_sum = sum(b[1] for b in out)
    if lo_sum > 1 + 1e-9 or hi_sum < 1 - 1e-9:
        raise MixingError(
            f"infeasible bounds: lower bounds sum to {lo_sum:g} and upper bounds to {hi_sum:g}; "
            "a mixture needs lower sum <= 1 <= upper sum"
        )
    return out


def _task_weights(A: pd.DataFrame, task_weights: Mapping[str, float] | None) -> np.ndarray:
    if not task_weights:
        return np.full(len(A.columns), 1 / len(A.columns))
    unknown = [k for k in task_weights if k not in A.columns]
    if unknown:
        raise MixingError(f"task weights name unknown task(s): {', '.join(unknown)}")
    w = np.array([float(task_weights.get(k, 0.0)) for k in A.columns])
    if not np.isfinite(w).all() or (w < 0).any():
        raise MixingError("task weights must be finite and >= 0")
    with np.errstate(over="ignore"):
        total = w.sum()
    if not np.isfinite(total):
        raise MixingError("the task weights are too large: their sum overflows")
    if total <= 0:
        raise MixingError("task weights must be >= 0 with a positive sum")
    return w / w.sum()


def optimize(
    A: pd.DataFrame,
    objective: str = "maxmin",
    *,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    task_weights: Mapping[str, float] | None = None,
    temperature: float = 0.01,
    exclude: Sequence[str] = ("base",),
) -> MixResult:
    """The mixture that maximizes ``objective`` under the linear model.

    Rows named in ``exclude`` (the base model's row) are not mixable.  ``mean``
    maximizes the (task-weighted) mean accuracy; ``maxmin`` the worst task's
    accuracy (ties broken towards a higher mean); ``entropy`` the mean plus
    ``temperature`` times the entropy of the mixture (natural log), which spreads
    weight across templates whose accuracies are close.
    """
    from scipy.optimize import linprog, minimize

    if objective not in OBJECTIVES:
        raise MixingError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    A = check_matrix(A.drop(index=[e for e in exclude if e in A.index]))
    templates = list(A.index)
    M = A.to_numpy()  # templates x tasks
    n_t, n_k = M.shape
    bnds = _bounds(templates, bounds)
    w = _task_weights(A, task_weights)
    gain = M @ w  # per-template weighted mean accuracy

    if objective == "mean":
        res = linprog(-gain, A_eq=np.ones((1, n_t)), b_eq=[1.0], bounds=bnds, method="highs")
        if not res.success:
            raise MixingError(f"optimizer failed: {res.message}")
        p = res.x
        value = float(gain @ p)
    elif objective == "maxmin":
        # variables: p (n_t) and z; maximize z s.t. M[:,k]·p >= z for tasks with weight > 0
        tasks = [k for k in range(n_k) if w[k] > 0]
        c = np.zeros(n_t + 1)
        c[-1] = -1.0
        A_ub = np.hstack([-M[:, tasks].T, np.ones((len(tasks), 1))])
        A_eq = np.hstack([np.ones((1, n_t)), np.zeros((1, 1))])
        res = linprog(
            c,
            A_ub=A_ub,
            b_ub=np.zeros(len(tasks)),
            A_eq=A_eq,
            b_eq=[1.0],
            bounds=bnds + [(None, None)],
            method="highs",
        )
        if not res.success:
            raise MixingError(f"optimizer failed: {res.message}")
        z = res.x[-1]
        # among max-min optima, take the best mean (second LP with z fixed)
        A_ub2 = -M[:, tasks].T
        res2 = linprog(
            -gain,
            A_ub=A_ub2,
            b_ub=-(z - 1e-9) * np.ones(len(tasks)),
            A_eq=np.ones((1, n_t)),
            b_eq=[1.0],
            bounds=bnds,
            method="highs",
        )
        p = res2.x if res2.success else res.x[:-1]
        value = float(min(M[:, k] @ p for k in tasks))
    else:
        if not (math.isfinite(temperature) and temperature > 0):
            raise MixingError(
                f"temperature must be a finite number > 0 for the entropy objective, "
                f"got {temperature!r}"
            )
        start = np.exp((gain - gain.max()) / temperature)
        start = start / start.sum()
        lo = np.array([b[0] for b in bnds])
        hi = np.array([b[1] for b in bnds])
        start = np.clip(start, lo, hi)
        start = start / start.sum() if start.sum() > 0 else np.full(n_t, 1 / n_t)

        def neg(p: np.ndarray) -> float:
            q = np.clip(p, 1e-12, 1)
            return -(gain @ p - temperature * float(np.sum(q * np.log(q))))

        res = minimize(
            neg,
            start,
            method="SLSQP",
            bounds=bnds,
            constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}],
            options={"ftol": 1e-12, "maxiter": 500},
        )
        if not res.success:
            raise MixingError(f"optimizer failed: {res.message}")
        p = res.x
        value = -float(res.fun)
    p = np.clip(p, 0, 1)
    p = p / p.sum()
    weights = {t: float(x) for t, x in zip(templates, p, strict=True)}
    predicted = dict(zip(A.columns, (p @ M).tolist(), strict=True))
    settings = {
        "bounds": {t: list(b) for t, b in zip(templates, bnds, strict=True)},
        "task_weights": dict(zip(A.columns, w.tolist(), strict=True)),
    }
    if objective == "entropy":
        settings["temperature"] = temperature
    return MixResult(weights, objective, value, predicted, settings)


# ----------------------------------------------------------------------------------
# Validation of the linear model


@dataclass
class Run:
    """One trained-and-evaluated model: its mixture and observed per-task accuracy."""

    name: str
    weights: dict[str, float]
    observed: dict[str, float]


def validation_table(A: pd.DataFrame, runs: Sequence[Run]) -> pd.DataFrame:
    """Predicted vs observed per (mixture, task), errors in accuracy points (x100)."""
    A = check_matrix(A)
    rows = []
    for run in runs:
        pred = predict(A, run.weights, normalize=True)
        for task, obs in run.observed.items():
            if task not in pred.index:
                raise MixingError(f"run {run.name!r} has task {task!r}, unknown to the matrix")
            rows.append(
                {
                    "mixture": run.name,
                    "task": task,
                    "predicted": float(pred[task]),
                    "observed": float(obs),
                    "error_points": 100 * (float(obs) - float(pred[task])),
                }
            )
    table = pd.DataFrame(rows, columns=["mixture", "task", "predicted", "observed", "error_points"])
    table["abs_error_points"] = table["error_points"].abs()
    return table


def validation_stats(table: pd.DataFrame) -> dict[str, float]:
    """Mean and median absolute error (points), with the count of cells."""
    if table.empty:
        raise MixingError("no validation runs: train and evaluate some mixtures first")
    err = table["abs_error_points"]
    return {
        "mean_abs_error": float(err.mean()),
        "median_abs_error": float(err.median()),
        "max_abs_error": float(err.max()),
        "cells": int(len(err)),
    }


def fit_matrix(runs: Sequence[Run], templates: Sequence[str], tasks: Sequence[str]) -> pd.DataFrame:
    """The matrix that best explains ``runs`` (least squares, clipped to [0, 1])."""
    P = np.array([[r.weights.get(t, 0.0) for t in templates] for r in runs], dtype=float)
    P = P / P.sum(axis=1, keepdims=True)
    Y = np.array([[r.observed[k] for k in tasks] for r in runs], dtype=float)
    if np.linalg.matrix_rank(P) < len(templates):
        raise MixingError(
            f"{len(runs)} runs do not determine {len(templates)} templates' rows "
            "(need mixtures that span every template)"
        )
    X, *_ = np.linalg.lstsq(P, Y, rcond=None)
    return pd.DataFrame(np.clip(X, 0, 1), index=list(templates), columns=list(tasks))


def leave_one_out(
    runs: Sequence[Run], templates: Sequence[str], tasks: Sequence[str]
) -> pd.DataFrame:
    """For each run: fit A on the others, predict it; errors in points per task.

    Runs whose removal leaves the matrix undetermined are skipped (listed with NaN).
    """
    rows = []
    for i, held in enumerate(runs):
        rest = [r for j, r in enumerate(runs) if j != i]
        try:
            A = fit_matrix(rest, templates, tasks)
        except MixingError:
            rows += [{"held_out": held.name, "task": k, "error_points": np.nan} for k in tasks]
            continue
        pred = predict(A, held.weights, normalize=True)
        rows += [
            {"held_out": held.name, "task": k, "error_points": 100 * (held.observed[k] - pred[k])}
            for k in tasks
        ]
    return pd.DataFrame(rows, columns=["held_out", "task", "error_points"])


# ----------------------------------------------------------------------------------
# Where matrices live


def matrices_root() -> Any:
    """``<home>/mixing``: accuracy matrices (CSV) that sweeps write and the studio lists."""
    from cookbook_core import paths

    return paths.home() / "mixing"
