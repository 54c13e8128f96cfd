"""The Training page under AppTest: empty state, bad input, and a tiny real LoRA run
launched, cancelled, resumed and finished from the page, with its loss curve."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cookbook_core.jobs import store as jobs
from cookbook_core.train import training

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "training.py")


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def test_empty_workspace_and_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    at = page()
    assert not at.exception, at.exception
    infos = " ".join(i.value for i in at.info)
    assert "No generated datasets yet" in infos and "No training runs yet" in infos
    at.button(key="tr_go").click().run()
    assert any("choose a dataset" in e.value for e in at.error)
    at.text_input(key="tr_data_path").input(str(tmp_path / "missing.jsonl")).run()
    at.number_input(key="tr_steps").set_value(7).run()
    at.button(key="tr_go").click().run()
    assert any("does not exist" in e.value for e in at.error)
    assert at.number_input(key="tr_steps").value == 7  # the user's edits stay
    at.number_input(key="tr_nproc").set_value(3).run()  # DDP: 8 rows do not split 3 ways
    at.button(key="tr_go").click().run()
    assert any("multiple of nproc" in e.value for e in at.error)
    assert jobs.list_jobs(refresh=False) == []


def _wait(cond, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.3)


@pytest.mark.slow  # two worker starts and a model load: about a minute on 2 quiet cores
def test_launch_cancel_resume_and_finish(embedded_model: Path, tiny_dataset: Path) -> None:
    at = page()
    at.selectbox(key="tr_data").set_value(str(tiny_dataset)).run()
    at.number_input(key="tr_steps").set_value(2).run()
    at.number_input(key="tr_batch").set_value(2).run()
    at.number_input(key="tr_maxlen").set_value(64).run()
    at.number_input(key="tr_rank").set_value(4).run()
    at.number_input(key="tr_save").set_value(1).run()
    at.button(key="tr_go").click().run()
    assert not at.exception, at.exception
    job_id = at.session_state["tr_pick"]
    assert jobs.get(job_id).config["steps"] == 2

    at.button(key="tr_cancel").click().run()
    _wait(lambda: jobs.get(job_id).state == "cancelled", 120)
    at.run()
    assert any("Resume" in b.label for b in at.button)
    at.button(key="tr_resume").click().run()
    assert jobs.get(job_id).resume  # queued again as a resume (its state then races the worker)
    job = jobs.wait(job_id, timeout=300)
    assert job.state == "succeeded", jobs.read_log(job_id, tail=40)

    at.run()
    assert not at.exception, at.exception
    assert any("Finished 2 steps" in s.value for s in at.success)
    assert len(at.get("plotly_chart")) == 1  # the loss curve
    assert [m["step"] for m in training.read_metrics(job.run_dir)] == [1, 2]
    table = at.dataframe[0].value
    assert table.loc[table["id"] == job_id, "state"].item() == "✓ succeeded"


def test_natural_rows_go_into_the_job(tiny_dataset: Path, tmp_path: Path) -> None:
    """The natural-language inputs reach the ``train`` job's config (checked first: a
    missing file is an error and no job starts)."""
    import json

    at = page()
    at.selectbox(key="tr_data").set_value(str(tiny_dataset)).run()
    at.text_input(key="tr_natural").input(str(tmp_path / "missing.jsonl")).run()
    before = len(jobs.list_jobs(kind="train", refresh=False))
    at.button(key="tr_go").click().run()
    assert any("missing.jsonl" in e.value for e in at.error)
    assert len(jobs.list_jobs(kind="train", refresh=False)) == before

    natural = tmp_path / "natural.jsonl"
    natural.write_text(
        "".join(json.dumps({"prompt": f"Hi {i}", "completion": "Hello."}) + "\n" for i in range(4))
    )
    at.text_input(key="tr_natural").input(str(natural)).run()
    at.number_input(key="tr_natural_n").set_value(3).run()
    at.button(key="tr_go").click().run()
    assert not at.error, [e.value for e in at.error]
    job = jobs.get(at.session_state["tr_pick"])
    try:
        assert job.config["natural_data"] == str(natural.resolve())
        assert job.config["natural_n"] == 3
    finally:
        if jobs.get(job.id).active:
            jobs.cancel(job.id, force=True)
    # "sni": the SELF-GUIDE pack's held-in validation rows, written once as a file
    at.text_input(key="tr_natural").input("sni").run()
    at.button(key="tr_go").click().run()
    assert not at.error, [e.value for e in at.error]
    job = jobs.get(at.session_state["tr_pick"])
    try:
        assert job.config["natural_data"].endswith("natural/sni-validation-seed0.jsonl")
        assert Path(job.config["natural_data"]).is_file()
    finally:
        if jobs.get(job.id).active:
            jobs.cancel(job.id, force=True)
