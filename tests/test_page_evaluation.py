"""The Evaluation page under AppTest: empty state and data-folder hint, launching an
evaluation job from the page, comparing real runs (grouped bars with intervals), and the
per-example browser with its filters."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cookbook_core.eval import evaluation
from cookbook_core.jobs import store as jobs
from cookbook_core.studio import evaluation as studio_eval

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "evaluation.py")


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


@pytest.fixture(scope="module")
def two_runs(eval_backend, shared_data: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """Two real evaluation runs: 3 examples of arc_easy and squad zero-shot, and of
    arc_easy one-shot."""
    dirs = []
    for shots, names in ((0, ["arc_easy", "squad"]), (1, ["arc_easy"])):
        cfg = evaluation.EvalConfig(
            tasks=names,
            data_dir=str(shared_data),
            limit=3,
            max_new_tokens=8,
            num_fewshot=shots,
        )
        out = evaluation.evals_root() / f"studio-page-{shots}shot"
        evaluation.evaluate(cfg, out, backend=eval_backend)
        dirs.append(str(out))
    return dirs


def test_empty_workspace_and_missing_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    at = page()
    assert not at.exception, at.exception
    assert any("No evaluation runs yet" in i.value for i in at.info)
    at.text_input(key="ev_data").input(str(tmp_path / "nowhere")).run()
    assert any("normalized schema" in i.value and "hub" in i.value for i in at.info)
    at.button(key="ev_go").click().run()
    assert any("at least one task" in e.value for e in at.error)
    at.multiselect(key="ev_tasks").set_value(["squad"]).run()
    at.button(key="ev_go").click().run()
    assert any("does not exist" in e.value for e in at.error)
    assert at.multiselect(key="ev_tasks").value == ["squad"]  # the choice stays
    assert jobs.list_jobs(refresh=False) == []


def test_compare_runs_and_browse_examples(two_runs: list[str]) -> None:
    at = page()
    assert not at.exception, at.exception
    at.multiselect(key="ev_runs").set_value(two_runs).run()
    fig = at.get("plotly_chart")[0]
    assert '"barmode":"group"' in fig.proto.spec.replace(" ", "")
    table = at.dataframe[0].value
    assert list(table.index.get_level_values("task")) == ["arc_easy", "squad"]
    assert table.shape[1] == 2  # one column per run
    assert table.isna().sum().sum() == 1  # the one-shot run has no squad score
    summary = evaluation.read_summary(two_runs[0])
    acc = 100 * summary["tasks"]["arc_easy"]["metrics"]["acc"]["value"]
    column = studio_eval.run_label(summary)  # the zero-shot run's column
    assert table.index[0] == ("arc_easy", "acc")
    assert table[column].iloc[0] == pytest.approx(round(acc, 1))

    at.selectbox(key="ev_run").set_value(two_runs[0]).run()
    at.selectbox(key="ev_task").set_value("squad").run()
    records = evaluation.read_records(two_runs[0], "squad")
    n_right = sum(r["scores"]["exact_match"] >= 0.5 for r in records)
    assert any(f"{n_right}/3 correct" in c.value for c in at.caption)
    at.radio(key="ev_filter").set_value("incorrect").run()
    assert not at.exception, at.exception
    if n_right < 3:
        assert len(at.dataframe[1].value) == 3 - n_right
        assert any(":red[incorrect]" in m.value for m in at.markdown)
        assert any("Generation" in m.value for m in at.markdown)
    at.selectbox(key="ev_task").set_value("arc_easy").run()
    at.radio(key="ev_filter").set_value("all").run()
    at.number_input(key="ev_idx").set_value(2).run()
    assert not at.exception, at.exception
    choices = at.dataframe[-1].value
    assert list(choices.columns) == ["continuation", "log-likelihood", "greedy", "gold"]


def test_launch_an_evaluation_job(embedded_model: Path, shared_data: Path) -> None:
    at = page()
    at.text_input(key="ev_data").input(str(shared_data)).run()
    at.multiselect(key="ev_tasks").set_value(["arc_easy"]).run()
    at.number_input(key="ev_limit").set_value(2).run()
    at.button(key="ev_go").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    job = jobs.list_jobs(kind="eval", refresh=False)[0]
    assert job.config["limit"] == 2 and job.config["tasks"] == ["arc_easy"]
    job = jobs.wait(job.id, timeout=300)
    assert job.state == "succeeded", jobs.read_log(job.id, tail=40)
    at.run()
    short = studio_eval.short_id(job.id)
    assert any(short in label for label in at.multiselect(key="ev_runs").options)
