"""The paper's validation protocol (:mod:`cookbook_core.mix.protocol`) on hand-made cells.

A sweep of two templates on two tasks whose records are written by hand
(``tests/handmade_runs.py``), so every number is known exactly:

* arc_easy (40 examples): template A is right on e0-e19, B on e20-e39, their 50/50 pair
  on e0-e9 and e20-e29: predicted 50, observed 50, error 0 with an interval around 0;
* squad (20 examples): A right on q0-q9, B on none, the pair on all: predicted 25,
  observed 100, error +75 with an interval far from 0;
* an optimized mixture (A 0.75, B 0.25) right on e0-e29 and q0-q14, the uniform
  mixture (the pair's cell), and the base model (e0-e9, no squad): the differences on
  the average and the worst task are known, and the one against the uniform mixture's
  average (+25 on arc, -25 on squad) is zero with an interval that contains it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cookbook_core.mix import mixing, protocol, sweep
from tests.handmade_runs import arc_record, squad_record, write_cell

A, B = "yes_no_qa", "multiple_choice_qa"
PAIR = f"{A}+{B}"
ARC = [f"e{i}" for i in range(40)]
SQ = [f"q{i}" for i in range(20)]
# which examples each cell gets right
RIGHT = {
    "base": (range(0, 10), range(0)),
    A: (range(0, 20), range(0, 10)),
    B: (range(20, 40), range(0)),
    PAIR: ([*range(0, 10), *range(20, 30)], range(0, 20)),
    "opt-mean": (range(0, 30), range(0, 15)),
}


def _records(name: str) -> dict[str, list[dict]]:
    arc_ok, sq_ok = (set(r) for r in RIGHT[name])
    return {
        "arc_easy": [arc_record(e, 0 if i in arc_ok else 1) for i, e in enumerate(ARC)],
        "squad": [
            squad_record(q, "Paris" if i in sq_ok else "nope", ["Paris"]) for i, q in enumerate(SQ)
        ],
    }


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sweep.SweepConfig:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    cfg = sweep.new("proto", [A, B], ["arc_easy", "squad"], n=8, train={"steps": 1}, pairs=True)
    sweep.save(cfg)
    sweep.add_mixture(cfg, "opt-mean", {A: 0.75, B: 0.25}, "optimized")
    sweep.add_mixture(cfg, "uniform", {A: 0.5, B: 0.5}, "uniform")
    st = sweep.settings(cfg)
    for spec in sweep.plan(cfg):
        write_cell(spec, st, _records(PAIR if spec.name == "uniform" else spec.name))
    return cfg


def test_pair_prediction_observation_and_intervals(cfg: sweep.SweepConfig) -> None:
    p = protocol.run(cfg, n_boot=400)
    fit = pd.DataFrame(p["fit"]).set_index(["mixture", "task"])
    arc = fit.loc[(PAIR, "arc_easy")]
    assert arc["predicted"] == pytest.approx(0.5) and arc["observed"] == pytest.approx(0.5)
    assert arc["error_points"] == pytest.approx(0.0)
    assert arc["error_lo"] < 0 < arc["error_hi"] and not arc["excludes_zero"]
    sq = fit.loc[(PAIR, "squad")]
    assert sq["predicted"] == pytest.approx(0.25) and sq["observed"] == pytest.approx(1.0)
    assert sq["error_points"] == pytest.approx(75.0)
    assert 50 < sq["error_lo"] < 75 < sq["error_hi"] < 100 and sq["excludes_zero"]
    assert p["rows"] == {"arc_easy": 40, "squad": 20}
    # the same prediction as the library's linear model
    A_ = sweep.complete_matrix(cfg)
    assert sq["predicted"] == pytest.approx(mixing.predict(A_, {A: 0.5, B: 0.5})["squad"])
    # the paper's protocol group holds the pair only: mean = median = (0 + 75) / 2
    s = p["fit_stats"]["pairs (paper's protocol)"]
    assert s["cells"] == 2 and s["mixtures"] == 1 and s["excluding_zero"] == 1
    assert s["mean_abs_error"] == pytest.approx(37.5)
    assert s["median_abs_error"] == pytest.approx(37.5)
    assert s["mean_lo"] <= 37.5 <= s["mean_hi"]
    assert p["paper"] == {"mean_abs_error": 1.4, "median_abs_error": 0.4}
    assert "all mixtures" in p["fit_stats"]  # pairs + optimized + uniform


def test_leave_one_out_matches_the_refit(cfg: sweep.SweepConfig) -> None:
    p = protocol.run(cfg, n_boot=200)
    loo = pd.DataFrame(p["loo"])
    assert set(loo["mixture"]) == {PAIR, "opt-mean", "uniform"}  # mixtures only
    A_ = sweep.complete_matrix(cfg)
    runs = [mixing.Run(t, {t: 1.0}, A_.loc[t].to_dict()) for t in (A, B)]
    runs += [mixing.Run(r.name, r.weights, r.observed) for r in sweep.validation_runs(cfg)]
    ref = mixing.leave_one_out(runs, [A, B], ["arc_easy", "squad"])
    ref = ref[ref["held_out"].isin([PAIR, "opt-mean", "uniform"])]
    got = loo.set_index(["mixture", "task"])["error_points"]
    for r in ref.itertuples():
        assert got[(r.held_out, r.task)] == pytest.approx(r.error_points)
    assert (loo["error_lo"] <= loo["error_points"] + 1e-9).all()
    assert (loo["error_points"] <= loo["error_hi"] + 1e-9).all()
    assert p["loo_stats"]["cells"] == 6


def test_optimizer_against_the_alternatives(cfg: sweep.SweepConfig) -> None:
    p = protocol.run(cfg, n_boot=400)
    assert p["best_single"] == A  # average 50 vs 25
    models = {r["model"]: r for r in p["models"]}
    assert set(models) == {
        "base model",
        "uniform mixture",
        f"best single template ({A})",
        "optimized (mean)",
    }
    assert models["optimized (mean)"]["averagevalue"] == pytest.approx(75.0)
    assert models["optimized (mean)"]["worstvalue"] == pytest.approx(75.0)
    assert models["base model"]["worstvalue"] == pytest.approx(0.0)
    assert models["uniform mixture"]["squadvalue"] == pytest.approx(100.0)
    d = {(r["against"], r["statistic"]): r for r in p["optimized"]}
    expected = {
        ("base model", "average"): 62.5,
        ("base model", "worst"): 75.0,
        ("uniform mixture", "average"): 0.0,
        ("uniform mixture", "worst"): 25.0,
        (f"best single template ({A})", "average"): 25.0,
        (f"best single template ({A})", "worst"): 25.0,
    }
    for key, value in expected.items():
        assert d[key]["difference"] == pytest.approx(value), key
        assert d[key]["lo"] <= value <= d[key]["hi"], key
    assert d[("base model", "average")]["lo"] > 0  # excludes zero
    uni = d[("uniform mixture", "average")]
    assert uni["lo"] < 0 < uni["hi"]  # +25 on arc, -25 on squad: contains zero
    text = "\n".join(protocol.verdicts(p))
    assert "optimized (mean) vs base model, average over tasks: +62.5" in text
    assert "optimized (mean) vs uniform mixture, average over tasks: +0.0" in text
    assert "not distinguishable from zero" in text
    # the display tables carry the same numbers
    assert "+62.5 [" in protocol.optimized_frame(p).to_string()
    st = protocol.stats_frame(p)
    assert st["mixtures"].iloc[-1].startswith("paper") and "1.40" in st.to_string()
    fit = protocol.fit_frame(p)
    assert "+75.0 [" in " ".join(fit["observed - predicted [95% CI]"])
    pair_rows = fit[fit["role"] == "pair"]
    assert len(pair_rows) and set(pair_rows["weights"]) == {f"{B} 0.50, {A} 0.50"}


def test_same_replicates_make_the_run_reproducible(cfg: sweep.SweepConfig) -> None:
    a = protocol.run(cfg, n_boot=100, seed=3)
    b = protocol.run(cfg, n_boot=100, seed=3)
    assert a == b
    sc = protocol.collect_scores(cfg, n_boot=50)
    assert sc.reps.shape == (50, len(sc.names), 2)
    # the pair and the uniform mixture share their cell: identical replicates
    assert np.array_equal(sc.reps[:, sc.at(PAIR)], sc.reps[:, sc.at("uniform")])


def test_no_mixture_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home2"))
    cfg = sweep.new("solo", [A, B], ["arc_easy", "squad"], n=8, train={"steps": 1})
    st = sweep.settings(cfg)
    for spec in sweep.plan(cfg):
        write_cell(spec, st, _records(spec.name))
    with pytest.raises(sweep.SweepError, match="no finished mixture"):
        protocol.run(cfg, n_boot=10)


def test_mix_result_and_results_page_show_the_protocol(
    cfg: sweep.SweepConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cookbook_core.experiments import core as experiments
    from cookbook_core.experiments import report
    from cookbook_core.studio import figures_experiments

    mcfg = experiments.MixConfig(
        templates=[A, B], tasks=["arc_easy", "squad"], objective="mean", pairs=True, name="proto"
    )
    assert mcfg.objectives() == ["mean"]
    assert experiments.MixConfig(templates=[A, B], objective="both").objectives() == [
        "mean",
        "maxmin",
    ]
    res = experiments.summarize_mix(mcfg)
    p = res["protocol"]
    both = experiments.MixConfig(templates=[A, B], tasks=["arc_easy"], objective="both")
    experiments.check("mix", both)  # accepted: trains opt-mean and opt-maxmin
    assert "--objective both" in experiments.mix_command(both)
    with pytest.raises(experiments.ExperimentError, match="unknown objective"):
        experiments.check("mix", experiments.MixConfig(templates=[A, B], objective="best"))
    assert p["fit_stats"]["pairs (paper's protocol)"]["mean_abs_error"] == pytest.approx(37.5)
    assert res["comparison"]["optimized (mean)"]["average"] == pytest.approx(75.0)
    c = report.collect()
    text = report.render(c)
    assert "#### The paper's validation protocol, with intervals" in text
    assert "| paper (6 uniform pairs, GPT4All) |" in text
    assert "+75.0 [" in text  # the pair's squad error with its interval
    assert "optimized (mean) vs base model, average over tasks: +62.5" in text
    figs = figures_experiments.report_figures(c)
    fit = figs["proto_fit"]
    bars = [t for t in fit.data if getattr(t, "error_y", None) and t.error_y.array is not None]
    assert bars  # the predicted-vs-observed points carry their interval bars
    comp = figs["proto_comparison"]
    assert {t.name for t in comp.data} == {
        "base model",
        "uniform mixture",
        f"best single template ({A})",
        "optimized (mean)",
    }
    assert all(t.error_y.array is not None for t in comp.data)
    from cookbook_core.cli.main import main

    assert main(["experiment", "show", "proto"]) == 0
    out = capsys.readouterr().out
    assert "paper's validation protocol" in out and "vs base model, average over tasks" in out
    path = report.write_report(tmp_path / "docs", collected=c)
    assert "The paper's validation protocol" in path.read_text()
    # the Experiments page shows the same protocol tables and sentences
    from streamlit.testing.v1 import AppTest

    page = Path(__file__).resolve().parent.parent / "pages" / "experiments.py"
    at = AppTest.from_file(str(page), default_timeout=120).run()
    assert not at.exception, at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert "The paper's validation protocol" in shown
    assert "optimized (mean) vs uniform mixture, average over tasks: +0.0" in shown


def test_mixing_page_shows_the_protocol_with_interval_bars(cfg: sweep.SweepConfig) -> None:
    from streamlit.testing.v1 import AppTest

    sweep.matrix(cfg)  # writes mixing/proto.csv, which the page lists
    page = Path(__file__).resolve().parent.parent / "pages" / "mixing.py"
    at = AppTest.from_file(str(page), default_timeout=120).run()
    at.selectbox[0].set_value("proto.csv").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["mean |error|"] == "37.50 pts"  # the pair: (0 + 75) / 2
    assert metrics["median |error|"] == "37.50 pts"
    assert "leave-one-out mean |error|" in metrics
    text = " ".join(m.value for m in at.markdown)
    assert "optimized (mean) vs base model, average over tasks: +62.5" in text
    tables = [d.value for d in at.dataframe]
    assert any("observed - predicted [95% CI]" in t.columns for t in tables)
    assert any(str(t.iloc[-1, 0]).startswith("paper") for t in tables)
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("paired 95% interval" in s and '"error_y"' in s for s in specs)


def test_set_level_metric_gets_paired_intervals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entity matching's F1 has no per-example value: the protocol and the single-template
    gains recompute it on each resample of the shared examples (paired), instead of
    dropping the interval or failing."""
    from cookbook_core.experiments import core as experiments
    from cookbook_core.experiments import report
    from tests.handmade_runs import em_record

    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    E = "entity_matching"
    ids = [f"m{i}" for i in range(40)]
    gold = ["yes" if i < 10 else "no" for i in range(40)]
    says_yes = {"base": set(), E: set(range(8)) | {30}, A: set(), f"{A}+{E}": set(range(4))}
    c = sweep.new("emset", [A, E], ["em_abt_buy"], n=8, train={"steps": 1}, pairs=True)
    sweep.save(c)
    st = sweep.settings(c)
    for spec in sweep.plan(c):
        yes = says_yes[spec.name]
        recs = [
            em_record(e, "yes" if i in yes else "no", g)
            for i, (e, g) in enumerate(zip(ids, gold, strict=True))
        ]
        write_cell(spec, st, {"em_abt_buy": recs})
    scores = protocol.collect_scores(c, n_boot=200)
    j = scores.tasks.index("em_abt_buy")
    # F1 of "yes": 8 true positives, 1 false positive, 2 missed -> 16/19
    assert scores.point[scores.at(E), j] == pytest.approx(16 / 19)
    assert scores.point[scores.at("base"), j] == 0.0
    assert not np.isnan(scores.reps[:, :, j]).any()
    res = protocol.run(c, n_boot=200)
    pair = next(r for r in res["fit"] if r["mixture"] == f"{A}+{E}")
    # predicted (0 + 16/19) / 2, observed F1 8/14 (4 true positives, 6 missed)
    assert pair["error_points"] == pytest.approx(100 * (8 / 14 - 8 / 19))
    assert pair["error_lo"] <= pair["error_points"] <= pair["error_hi"]
    # `cookbook mix validate` reads the same interval (it had none for F1 before)
    v = sweep.validation(c, n_boot=200)["table"]
    vrow = v[(v.mixture == f"{A}+{E}") & (v.task == "em_abt_buy")].iloc[0]
    assert (vrow.error_lo, vrow.error_hi) == (pair["error_lo"], pair["error_hi"])
    g = experiments.paired_metric_gain(
        "em_abt_buy",
        "f1",
        sweep_items(c, "base"),
        sweep_items(c, E),
        n_boot=500,
    )
    assert g["gain"] == pytest.approx(100 * 16 / 19)
    assert 0 < g["lo"] <= g["gain"] <= g["hi"]
    # the results page's single-template rows read it too (no per-example value needed)
    mres = {"name": "emset", "sweep": c.to_dict(), "seconds": {}}
    rows = report.sweep_single_rows([mres])
    row = rows[(rows.template == E) & (rows.task == "em_abt_buy")].iloc[0]
    assert row["gain"] == pytest.approx(100 * 16 / 19) and row["gain_ci"][0] > 0


def sweep_items(c: sweep.SweepConfig, name: str) -> dict:
    from cookbook_core.mix import cells

    spec = next(s for s in sweep.plan(c) if s.name == name)
    return cells.example_items(spec, sweep.settings(c), "em_abt_buy")


def test_mix_experiment_metric_is_chosen_and_recorded(cfg: sweep.SweepConfig) -> None:
    """``--metric`` re-reads the same cells: the matrix holds squad's token F1 instead of
    exact match, and the result records each column's metric and the evaluation backend."""
    from cookbook_core.experiments import core as experiments
    from cookbook_core.experiments import report

    plain = experiments.MixConfig(
        templates=[A, B], tasks=["arc_easy", "squad"], objective="mean", pairs=True, name="proto"
    )
    res = experiments.summarize_mix(plain)
    assert res["metrics"] == {"arc_easy": "acc", "squad": "exact_match"}
    assert res["eval_backends"] == {"unknown": len(sweep.plan(cfg))}  # hand-made runs
    f1 = experiments.MixConfig(**{**plain.__dict__, "metrics": ["squad=f1"]})
    assert "--metric squad=f1" in experiments.mix_command(f1)
    res_f1 = experiments.summarize_mix(f1)
    assert res_f1["metrics"] == {"arc_easy": "acc", "squad": "f1"}
    # the hand-made answers are all-or-nothing, so F1 equals exact match here: same numbers
    assert res_f1["matrix"] == res["matrix"]
    text = report.render(report.collect())
    assert "Matrix metric per task: arc_easy acc, squad f1." in text
    with pytest.raises(sweep.SweepError, match="none of the sweep's tasks reports it"):
        experiments.summarize_mix(experiments.MixConfig(**{**plain.__dict__, "metrics": ["bleu"]}))
