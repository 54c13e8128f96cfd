"""Does alignment explain the gain? (:mod:`cookbook_core.align.gain`) on hand-made records.

Per-example frames (and run folders) are written by hand, so which examples follow the
rule, which are right and therefore every count, gain and contribution is known
exactly; the bootstrap intervals must contain or exclude zero where the records say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cookbook_core.align import gain
from cookbook_core.align import runs as alignment_runs
from cookbook_core.errors import BadInput
from cookbook_core.studio.figures_align import gain_split_figure


def _frame(n: int, follows: set[int], correct: set[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"x{i:02d}" for i in range(n)],
            "follows_rule": [i in follows for i in range(n)],
            "correct": [float(i in correct) for i in range(n)],
        }
    )


def test_gain_mostly_on_answers_that_do_not_follow_the_rule() -> None:
    # 40 examples; base right on 0-1 and follows nothing; the tuned model follows the
    # rule on 0-4 (right on all five) and is right on 10-29 without following it
    base = _frame(40, set(), {0, 1})
    tuned = _frame(40, set(range(5)), set(range(5)) | set(range(10, 30)))
    s = gain.split_frames(base, tuned)
    assert (s.n, s.base_accuracy, s.tuned_accuracy) == (40, 5.0, 62.5)
    assert s.gain == pytest.approx(57.5) and s.lo > 0
    assert (s.base_alignment, s.tuned_alignment) == (0.0, 12.5)
    a, u = s.row(gain.FOLLOWS), s.row(gain.NOT_FOLLOWS)
    assert (a.n, a.base_accuracy, a.tuned_accuracy, a.gain) == (5, 40.0, 100.0, 60.0)
    assert a.contribution == pytest.approx(7.5)  # 3 new right answers / 40
    assert (u.n, u.base_accuracy, u.tuned_accuracy) == (35, 0.0, pytest.approx(100 * 20 / 35))
    assert u.contribution == pytest.approx(50.0)
    assert a.contribution + u.contribution == pytest.approx(s.gain)
    assert a.contribution_lo <= 0 < a.contribution_hi  # 3 examples: contains zero
    assert u.contribution_lo > 0  # excludes zero
    # the change split: nothing followed before, so five newly follow
    assert s.row("newly follows").n == 5 and s.row("follows in neither").n == 35
    assert s.row("follows in both runs").n == 0
    assert pd.isna(s.row("follows in both runs").gain)
    text = gain.explain(s)
    assert "on answers that do not follow the rule" in text
    assert "explains less than half of it" in text
    assert f"at most {a.contribution_hi:.1f} points" in text


def test_gain_carried_by_rule_following_answers() -> None:
    base = _frame(40, set(), set())
    tuned = _frame(40, set(range(20)), set(range(20)))
    s = gain.split_frames(base, tuned)
    a, u = s.row(gain.FOLLOWS), s.row(gain.NOT_FOLLOWS)
    assert a.contribution == pytest.approx(50.0) and a.contribution_lo > 0
    assert (u.contribution, u.contribution_lo, u.contribution_hi) == (0.0, 0.0, 0.0)
    assert "carried by rule-following answers" in gain.explain(s)


def test_no_gain_and_no_shared_examples() -> None:
    same = _frame(30, {1, 2}, set(range(0, 30, 2)))
    s = gain.split_frames(same, same)
    assert s.gain == 0.0 and s.lo == 0.0 and s.hi == 0.0
    assert "nothing to explain" in gain.explain(s)
    other = same.assign(id=[f"y{i}" for i in range(30)])
    with pytest.raises(BadInput, match="share no example"):
        gain.split_frames(same, other)


def test_only_shared_examples_count_and_tables_carry_the_numbers() -> None:
    base = _frame(10, set(), set())
    tuned = _frame(12, {0}, {0, 10, 11})  # x10, x11 were not scored by the base run
    s = gain.split_frames(base, tuned, n_boot=200)
    assert s.n == 10 and s.gain == pytest.approx(10.0)
    t = gain.table(s)
    assert list(t["examples"][:2]) == [gain.FOLLOWS, gain.NOT_FOLLOWS]
    assert t["contribution to the gain [95% CI]"].iloc[0].startswith("+10.0 [")
    long = gain.contributions_frame({"tuned": s})
    assert list(long["group"]) == ["total gain", gain.FOLLOWS, gain.NOT_FOLLOWS]
    fig = gain_split_figure(long)
    assert [b.name for b in fig.data] == ["total gain", gain.FOLLOWS, gain.NOT_FOLLOWS]
    assert fig.data[1].y[0] == pytest.approx(10.0)
    json.dumps(s.to_dict())  # plain JSON for the results page


def _squad_run(run: Path, source: Path, ids: list[str], answers: list[str]) -> Path:
    (run / "records").mkdir(parents=True)
    summary = {"run_id": run.name, "tasks": {"squad": {"source": str(source), "n": len(ids)}}}
    (run / "summary.json").write_text(json.dumps(summary))
    rows = {json.loads(x)["id"]: json.loads(x) for x in (source / "public_500.jsonl").open()}
    with open(run / "records" / "squad.jsonl", "w") as fh:
        for i, a in zip(ids, answers, strict=True):
            ok = float(a in rows[i]["answers"])
            fh.write(json.dumps({"id": i, "generation": a, "scores": {"exact_match": ok}}) + "\n")
    return run


def test_split_of_stored_runs_on_real_rows(shared_data: Path, tmp_path: Path) -> None:
    squad = shared_data / "squad_v1_1_dev"
    rows, verdicts = alignment_runs.gold_alignment("document_qa", "squad", shared_data, limit=60)
    aligned = [r["id"] for r, v in zip(rows, verdicts, strict=True) if v.gold_aligned]
    other = [r["id"] for r, v in zip(rows, verdicts, strict=True) if not v.gold_aligned]
    assert len(aligned) >= 3 and len(other) >= 10
    gold = {r["id"]: r["answers"][0] for r in rows}
    ids = [r["id"] for r in rows]
    # tuned: the gold answer on 3 rule-aligned rows (follows the rule, right) and on 10
    # rows the rule misses (right, not following it); base: wrong everywhere
    right = set(aligned[:3]) | set(other[:10])
    tuned = [gold[i] if i in right else "zzzz" for i in ids]
    b = _squad_run(tmp_path / "base", squad, ids, ["zzzz"] * len(ids))
    t = _squad_run(tmp_path / "tuned", squad, ids, tuned)
    s = gain.split_runs("document_qa", "squad", b, t)
    assert s.n == len(ids) and s.gain == pytest.approx(100 * 13 / len(ids))
    a, u = s.row(gain.FOLLOWS), s.row(gain.NOT_FOLLOWS)
    assert a.n == 3 and a.tuned_accuracy == 100.0
    assert a.contribution == pytest.approx(100 * 3 / len(ids))
    assert u.contribution == pytest.approx(100 * 10 / len(ids))
    assert s.tuned_alignment == pytest.approx(100 * 3 / len(ids))


def test_alignment_page_splits_the_gain(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path))
    squad = shared_data / "squad_v1_1_dev"
    rows = [json.loads(x) for x in (squad / "public_500.jsonl").read_text().splitlines()[:8]]
    ids = [r["id"] for r in rows]
    _squad_run(tmp_path / "evals" / "run-wrong", squad, ids, ["zzzz"] * 8)
    # right on the first four rows (the gold answer), wrong on the rest
    golds = [r["answers"][0] if i < 4 else "zzzz" for i, r in enumerate(rows)]
    _squad_run(tmp_path / "evals" / "run-right", squad, ids, golds)
    page = Path(__file__).resolve().parent.parent / "pages" / "alignment.py"
    at = AppTest.from_file(str(page), default_timeout=90).run()
    at.sidebar.text_input(key="al_data").set_value(str(shared_data)).run()
    at.sidebar.selectbox(key="al_template").set_value("document_qa").run()
    at.sidebar.selectbox(key="al_task").set_value("squad").run()
    at.selectbox(key="al_base").set_value("run-wrong").run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Does alignment explain the gain?" in text
    assert "Gain +50.0 [" in text and "over 8 examples" in text
    split = next(
        d.value for d in at.dataframe if "contribution to the gain [95% CI]" in d.value.columns
    )
    assert split["n"].iloc[0] + split["n"].iloc[1] == 8


def test_results_page_section_and_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cookbook_core.experiments import report
    from cookbook_core.studio import figures_experiments

    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path))
    s = gain.split_frames(
        _frame(40, set(), {0, 1}), _frame(40, set(range(5)), set(range(5)) | set(range(10, 30)))
    )
    trained = "document_qa (single-task experiment x)"
    c = {
        "single": [],
        "mixes": [],
        "single_table": pd.DataFrame(),
        "alignment_points": pd.DataFrame(),
        "alignment_table": pd.DataFrame(
            [
                {
                    "template": "document_qa",
                    "task": "squad",
                    "trained": trained,
                    "n": 40,
                    "gold_alignment": 20.0,
                    "gen_alignment_base": 0.0,
                    "gen_alignment_tuned": 12.5,
                    "accuracy_base": 5.0,
                    "accuracy_tuned": 62.5,
                    "note": "",
                }
            ]
        ),
        "gain_splits": [
            {
                "template": "document_qa",
                "task": "squad",
                "trained": trained,
                "split": s,
                "note": "",
            },
            {
                "template": "yes_no_qa",
                "task": "boolq",
                "trained": "y",
                "split": None,
                "note": "gone",
            },
        ],
    }
    text = report.render(c)
    assert "### Does alignment explain the gain?" in text
    assert "| document_qa | squad | " + trained + " | 40 | +57.5 [" in text
    assert "| 5, 40.0 -> 100.0 | +7.5 [" in text and "| 35, 0.0 -> 57.1 | +50.0 [" in text
    assert "on the 80.0% of rows whose gold answer does not follow the rule" in text
    assert "- yes_no_qa on boolq, y: not split (gone)" in text
    assert "![alignment gain](results/alignment_gain.png)" in text
    assert "alignment_gain" in report.figure_names(c)
    fig = figures_experiments.report_figures(c)["alignment_gain"]
    assert [b.name for b in fig.data] == ["total gain", gain.FOLLOWS, gain.NOT_FOLLOWS]
    assert fig.data[2].y[0] == pytest.approx(50.0)


def test_single_task_result_stores_the_split(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cookbook_core.experiments import core as experiments
    from tests.handmade_runs import squad_record, write_cell

    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path))
    monkeypatch.setenv("COOKBOOK_EVAL_DATA", str(shared_data))
    rows, verdicts = alignment_runs.gold_alignment("document_qa", "squad", shared_data, limit=20)
    cfg = experiments.SingleTaskConfig(
        template="document_qa", tasks=["squad"], n=8, steps=1, limit=20, name="single-hand"
    )
    (base, tuned), settings = experiments.single_task_cells(cfg)
    # the tuned model gives the gold answer on every row whose gold follows the rule
    aligned = [v.gold_aligned for v in verdicts]
    write_cell(
        base, settings, {"squad": [squad_record(r["id"], "zzzz", r["answers"]) for r in rows]}
    )
    answers = [r["answers"][0] if a else "zzzz" for r, a in zip(rows, aligned, strict=True)]
    recs = [squad_record(r["id"], x, r["answers"]) for r, x in zip(rows, answers, strict=True)]
    write_cell(tuned, settings, {"squad": recs})
    res = experiments.summarize_single_task(cfg)
    split = res["rows"][0]["gain_by_alignment"]
    k = sum(aligned)
    assert k >= 3  # the first 20 SQuAD rows hold a few whose gold follows the rule
    assert split["n"] == 20 and split["gain"] == pytest.approx(100 * k / 20)
    follows = next(g for g in split["groups"] if g["group"] == gain.FOLLOWS)
    assert follows["n"] == k and follows["contribution"] == pytest.approx(100 * k / 20)
    assert "carried by rule-following answers" in split["explanation"]
    json.dumps(res)
