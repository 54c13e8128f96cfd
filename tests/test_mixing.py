"""Cookbook-Mix math: prediction, optimizers on the simplex with bounds, validation
statistics on hand-made numbers, recovering a planted matrix, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from cookbook_core.mix import mixing
from cookbook_core.mix.mixing import MixingError, Run

A = pd.DataFrame(
    {
        "squad": [0.10, 0.50, 0.20, 0.05],
        "arc": [0.30, 0.25, 0.40, 0.28],
        "boolq": [0.55, 0.45, 0.50, 0.60],
    },
    index=["base", "document_qa", "multiple_choice_qa", "yes_no_qa"],
)
T = ["document_qa", "multiple_choice_qa", "yes_no_qa"]


def test_predict_is_the_weighted_rows() -> None:
    pred = mixing.predict(A, {"document_qa": 0.5, "yes_no_qa": 0.5})
    assert pred["squad"] == pytest.approx(0.275)
    assert pred["arc"] == pytest.approx(0.265)
    assert pred["boolq"] == pytest.approx(0.525)


def test_weights_must_sum_to_one_or_be_normalized() -> None:
    with pytest.raises(MixingError, match=r"sum to 2.*normalize=True.*document_qa=0.500"):
        mixing.predict(A, {"document_qa": 1, "yes_no_qa": 1})
    pred = mixing.predict(A, {"document_qa": 1, "yes_no_qa": 1}, normalize=True)
    assert pred["squad"] == pytest.approx(0.275)


@pytest.mark.parametrize(
    "weights, needle",
    [({"nope": 1.0}, "unknown template"), ({"document_qa": -0.5, "yes_no_qa": 1.5}, ">= 0")],
)
def test_bad_weights(weights: dict, needle: str) -> None:
    with pytest.raises(MixingError, match=needle):
        mixing.predict(A, weights)


def test_missing_cells_are_listed() -> None:
    B = A.copy()
    B.loc["document_qa", "arc"] = np.nan
    B.loc["yes_no_qa", "squad"] = np.nan
    with pytest.raises(MixingError, match=r"2 missing.*\(document_qa, arc\).*\(yes_no_qa, squad\)"):
        mixing.predict(B, {"document_qa": 1.0})


@pytest.mark.parametrize("objective", mixing.OBJECTIVES)
@pytest.mark.parametrize(
    "bounds",
    [
        None,
        {"document_qa": (0.2, 0.6)},
        {"yes_no_qa": (0.0, 0.1), "multiple_choice_qa": (0.3, 1.0)},
    ],
)
def test_optimizers_return_points_on_the_simplex_within_bounds(objective: str, bounds) -> None:
    res = mixing.optimize(A, objective, bounds=bounds, temperature=0.05)
    assert set(res.weights) == set(T), "the base row is not mixable"
    p = np.array(list(res.weights.values()))
    assert p.sum() == pytest.approx(1.0) and (p >= -1e-9).all()
    for t, (lo, hi) in (bounds or {}).items():
        assert lo - 1e-6 <= res.weights[t] <= hi + 1e-6
    assert res.objective == objective


def test_mean_lands_on_a_vertex() -> None:
    res = mixing.optimize(A, "mean")
    assert max(res.weights.values()) == pytest.approx(1.0)
    best = A.loc[T].mean(axis=1).idxmax()
    assert res.weights[best] == pytest.approx(1.0)


def test_maxmin_is_no_worse_than_any_vertex_on_the_worst_task() -> None:
    rng = np.random.default_rng(0)
    for _ in range(25):
        M = pd.DataFrame(rng.uniform(0, 1, (4, 5)), index=list("abcd"), columns=list("vwxyz"))
        res = mixing.optimize(M, "maxmin")
        worst = min(res.predicted.values())
        assert worst == pytest.approx(res.value)
        for t in M.index:
            assert worst >= M.loc[t].min() - 1e-9
        # and no better point exists on a grid of the simplex
        for w in itertools.product(np.linspace(0, 1, 6), repeat=3):
            if sum(w) <= 1:
                p = np.array([*w, 1 - sum(w)])
                assert (p @ M.to_numpy()).min() <= worst + 1e-7


def test_entropy_spreads_weight_and_approaches_mean_when_cold() -> None:
    warm = mixing.optimize(A, "entropy", temperature=1.0)
    assert min(warm.weights.values()) > 0.2
    cold = mixing.optimize(A, "entropy", temperature=1e-4)
    best = A.loc[T].mean(axis=1).idxmax()
    assert cold.weights[best] > 0.99


def test_task_weights_steer_the_mean() -> None:
    res = mixing.optimize(A, "mean", task_weights={"squad": 1.0})
    assert res.weights["document_qa"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"bounds": {"document_qa": (0.6, 1.0), "yes_no_qa": (0.6, 1.0)}}, "infeasible bounds"),
        ({"bounds": {"document_qa": (0.5, 0.2)}}, "0 <= low <= high <= 1"),
        ({"bounds": {"nope": (0, 1)}}, "unknown template"),
        ({"task_weights": {"mmlu": 1}}, "unknown task"),
        ({"objective": "median"}, "unknown objective"),
    ],
)
def test_optimizer_bad_input(kwargs: dict, needle: str) -> None:
    objective = kwargs.pop("objective", "maxmin")
    with pytest.raises(MixingError, match=needle):
        mixing.optimize(A, objective, **kwargs)


def test_validation_statistics_on_a_hand_made_example() -> None:
    runs = [
        Run(
            "dqa+mcq",
            {"document_qa": 0.5, "multiple_choice_qa": 0.5},
            {"squad": 0.36, "arc": 0.33, "boolq": 0.47},
        ),
        Run(
            "dqa+yn",
            {"document_qa": 0.5, "yes_no_qa": 0.5},
            {"squad": 0.275, "arc": 0.265, "boolq": 0.525},
        ),
    ]
    table = mixing.validation_table(A, runs)
    # predictions: dqa+mcq -> squad .35, arc .325, boolq .475 ; dqa+yn exact
    assert table["error_points"].round(6).tolist() == [1.0, 0.5, -0.5, 0.0, 0.0, 0.0]
    stats = mixing.validation_stats(table)
    assert stats["mean_abs_error"] == pytest.approx(2.0 / 6)
    assert stats["median_abs_error"] == pytest.approx(0.25)
    assert stats["max_abs_error"] == pytest.approx(1.0)
    assert stats["cells"] == 6


def test_recovers_a_planted_matrix_from_synthetic_runs() -> None:
    rng = np.random.default_rng(1)
    planted = pd.DataFrame(rng.uniform(0.1, 0.9, (3, 4)), index=T, columns=list("wxyz"))
    runs = []
    for i in range(12):
        w = dict(zip(T, rng.dirichlet(np.ones(3)), strict=True))
        obs = mixing.predict(planted, w) + rng.normal(0, 0.002, 4)
        runs.append(Run(f"mix{i}", w, obs.to_dict()))
    fitted = mixing.fit_matrix(runs, T, list("wxyz"))
    assert np.abs(fitted.to_numpy() - planted.to_numpy()).max() < 0.02
    loo = mixing.leave_one_out(runs, T, list("wxyz"))
    assert loo["error_points"].abs().mean() < 1.0


def test_fit_needs_spanning_runs() -> None:
    runs = [
        Run("a", {"document_qa": 1.0}, {"squad": 0.5}),
        Run("b", {"document_qa": 1.0}, {"squad": 0.5}),
    ]
    with pytest.raises(MixingError, match="do not determine"):
        mixing.fit_matrix(runs, T, ["squad"])
