"""The SELF-GUIDE page: an empty workspace, then a run folder made by the real pipeline."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "selfguide.py")


def test_empty_workspace_shows_tasks_and_says_how_to_start(
    shared_data: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setenv("COOKBOOK_EVAL_DATA", str(shared_data))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("No SELF-GUIDE runs yet" in i.value for i in at.info)
    at.selectbox(key="sg_task").set_value("task738").run()
    assert not at.exception, at.exception
    assert [m.value for m in at.metric][:2] == ["classification", "exact_match"]
    assert "support" in " ".join(m.value for m in at.markdown)
    assert len(at.dataframe[0].value) == 2  # the two demonstrations


@pytest.mark.slow  # runs the tiny pipeline when the end-to-end tests have not
def test_populated_run_shows_funnel_pairs_and_metrics(
    selfguide_tiny_run: Callable[[str], Path],
) -> None:
    run_dir = selfguide_tiny_run("task1345")
    assert os.environ["COOKBOOK_HOME"] in str(run_dir)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    at.selectbox(key="sg_run").set_value("tiny-task1345").run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert any(lab.startswith("rouge_l ·") for lab in labels)
    assert any(lab.startswith("rouge_l_chars ·") for lab in labels)
    frames = [d.value for d in at.dataframe]
    funnel = next(f for f in frames if "entered" in f.columns)
    assert list(funnel["stage"])[0] == "generated" and list(funnel["stage"])[-1] == "trained"
    evals = next(f for f in frames if "fine-tuned rouge_l" in f.columns)
    assert len(evals) == 3 and evals["fine-tuned rouge_l"].between(0, 1).all()
    assert at.get("plotly_chart")
    at.radio(key="sg_inputs_show").set_value("dropped").run()
    assert not at.exception, at.exception
