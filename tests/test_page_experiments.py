"""The Experiments page: empty state and the forms' bad-input messages (the populated
page is checked in test_sweep.py, on a real tiny experiment made by its fixture)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from cookbook_core.jobs import store as jobs

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "experiments.py")


def test_empty_state_and_mix_form_needs_two_templates(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("cookbook experiment single-task" in i.value for i in at.info)
    at.multiselect(key="mix_templates").set_value(["document_qa"]).run()
    at.button[1].click().run()  # "Queue mix experiment"
    assert not at.exception
    assert any("at least two templates" in e.value for e in at.error)
    assert len(at.success) == 0
    assert jobs.list_jobs(refresh=False) == []  # nothing was queued
