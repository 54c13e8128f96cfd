"""The Datasets page under AppTest: empty state, generating a weighted mixture as a real
job from the page, browsing its manifest and samples, and bad input kept on the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cookbook_core.jobs import store as jobs

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "datasets.py")


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace for this test only."""
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def test_empty_workspace_says_what_to_do(fresh_home: Path) -> None:
    at = page()
    assert not at.exception, at.exception
    assert at.multiselect(key="ds_templates").value == ["document_qa"]
    assert any("No datasets yet" in i.value and "Generate" in i.value for i in at.info)


def test_generate_a_mixture_then_browse_it(fresh_home: Path) -> None:
    at = page()
    at.multiselect(key="ds_templates").set_value(["document_qa", "last_word"]).run()
    at.slider(key="ds_w::last_word").set_value(0.5).run()
    at.number_input(key="ds_n").set_value(30).run()
    assert any("document_qa 20 (67%)" in c.value for c in at.caption)
    at.button(key="ds_go").click().run()
    assert not at.exception, at.exception
    job_id = at.session_state["ds_job"]
    job = jobs.wait(job_id, timeout=120)
    assert job.state == "succeeded", jobs.read_log(job_id)
    at.run()  # the progress panel sees the end and selects the new dataset
    assert not at.exception, at.exception
    assert any("Wrote 30 samples" in s.value for s in at.success)
    assert at.selectbox(key="ds_pick").value == "document_qa+last_word-n30-s0"
    assert at.metric[0].value == "30"
    table = at.dataframe[0].value
    assert list(table["template"]) == ["document_qa", "last_word"]
    assert list(table["samples"]) == [20, 10]
    assert sum(c.value.startswith("Document:") for c in at.code) >= 1
    at.selectbox(key="ds_only::document_qa+last_word-n30-s0").set_value("last_word").run()
    samples = [m.value for m in at.markdown if m.value.startswith("**#")]
    assert len(samples) == 5 and all("`last_word`" in s for s in samples)

    # the same name again: a clear message, and the user's choices stay
    at.button(key="ds_go").click().run()
    assert any("already exists" in e.value for e in at.error)
    assert at.number_input(key="ds_n").value == 30
    assert at.slider(key="ds_w::last_word").value == 0.5


def test_zero_weights_are_refused(fresh_home: Path) -> None:
    at = page()
    at.slider(key="ds_w::document_qa").set_value(0.0).run()
    at.button(key="ds_go").click().run()
    assert not at.exception
    assert any("weight above 0" in e.value for e in at.error)
    assert jobs.list_jobs(refresh=False) == []
