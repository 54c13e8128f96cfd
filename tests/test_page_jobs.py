"""The Jobs page under AppTest (in a workspace of its own): empty state; real jobs that
succeeded, failed and are running; the failure reason, log tail, cancel and the
no-resume note."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cookbook_core.eval import evaluation
from cookbook_core.jobs import store as jobs
from cookbook_core.studio import jobs as studio_jobs

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "jobs.py")


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def test_empty_workspace_says_what_to_do(fresh_home: Path) -> None:
    at = page()
    assert not at.exception, at.exception
    assert any("No jobs yet" in i.value and "Datasets" in i.value for i in at.info)


def test_succeeded_failed_and_cancelled_jobs(
    fresh_home: Path, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = jobs.submit(
        "generate",
        studio_jobs.generate_config({"document_qa": 1.0}, 20, name="jobs-page"),
        name="jobs-page",
    )
    assert jobs.wait(ok.id, timeout=120).state == "succeeded"
    # an evaluation whose data file vanishes between submission and start fails for real
    rows = tmp_path / "arc.jsonl"
    shutil.copy(next((shared_data / "arc_easy_test").glob("*.jsonl")), rows)
    cfg = evaluation.EvalConfig(tasks=["arc_easy"], data_files={"arc_easy": str(rows)}, limit=2)
    bad = jobs.submit("eval", cfg.to_dict(), name="doomed", start=False)
    rows.unlink()
    jobs.pump()
    bad = jobs.wait(bad.id, timeout=120)
    assert bad.state == "failed" and bad.reason

    at = page()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["✓ succeeded"] == "1" and metrics["✗ failed"] == "1"
    table = at.dataframe[0].value
    assert set(table["id"]) == {ok.id, bad.id}
    assert table.loc[table["id"] == bad.id, "reason"].item() == bad.reason

    at.selectbox(key="jb_pick").set_value(bad.id).run()
    errors = " ".join(e.value for e in at.error)
    assert bad.reason in errors and "does not exist" in errors
    assert any("cannot be resumed" in c.value for c in at.caption)
    assert "Traceback" in at.code[0].value  # the log tail

    at.multiselect(key="jb_states").set_value(["succeeded"]).run()
    assert list(at.dataframe[0].value["id"]) == [ok.id]
    at.selectbox(key="jb_pick").set_value(ok.id).run()
    assert any('"n": 20' in c.value for c in at.code)  # the result

    # cancel a long-running generation from the page
    monkeypatch.setenv("COOKBOOK_MAX_JOBS_CPU", "1")
    big = jobs.submit(
        "generate", studio_jobs.generate_config({"document_qa": 1.0}, 5_000_000, name="big")
    )
    at.multiselect(key="jb_states").set_value([]).run()
    at.selectbox(key="jb_pick").set_value(big.id).run()
    at.button(key="jb_cancel").click().run()
    assert not at.exception, at.exception
    deadline = time.time() + 60
    while jobs.get(big.id).state != "cancelled":
        assert time.time() < deadline, jobs.get(big.id)
        time.sleep(0.3)
    at.run()
    assert any("cancelled" in w.value for w in at.warning)
