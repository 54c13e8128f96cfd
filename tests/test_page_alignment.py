"""The Alignment page: gold alignment on real rows, filters, example picker, highlighting."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "alignment.py")


def test_gold_alignment_and_inspector(shared_data: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    at.sidebar.text_input(key="al_data").set_value(str(shared_data)).run()
    at.sidebar.selectbox(key="al_template").set_value("document_qa").run()
    at.sidebar.selectbox(key="al_task").set_value("squad").run()
    assert not at.exception, at.exception
    assert at.metric[0].value == "100"
    assert at.metric[1].value.endswith("%")
    html = " ".join(h.proto.body for h in at.get("html"))
    assert "<mark" in html
    at.radio(key="al_filter").set_value("gold aligned").run()
    assert "gold follows the rule" in " ".join(m.value for m in at.markdown)
    at.number_input(key="al_idx").set_value(1).run()
    assert not at.exception


def test_missing_data_folder_tells_what_to_do(tmp_path: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.sidebar.text_input(key="al_data").set_value(str(tmp_path / "nope")).run()
    assert any("COOKBOOK_EVAL_DATA" in i.value for i in at.info)


def _squad_run(root: Path, name: str, shared: Path, answers: list[str]) -> None:
    """A run folder in evaluation's format: SQuAD records of the given answers."""
    squad = shared / "squad_v1_1_dev"
    rows = [json.loads(line) for line in (squad / "public_500.jsonl").read_text().splitlines()]
    run = root / name
    (run / "records").mkdir(parents=True)
    n = len(answers)
    summary = {"run_id": name, "tasks": {"squad": {"source": str(squad), "n": n}}}
    (run / "summary.json").write_text(json.dumps(summary))
    with open(run / "records" / "squad.jsonl", "w") as fh:
        for row, ans in zip(rows, answers, strict=False):
            ok = float(ans in row["answers"])
            rec = {"id": row["id"], "generation": ans, "scores": {"exact_match": ok}}
            fh.write(json.dumps(rec) + "\n")


def test_all_runs_table(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path))
    squad = shared_data / "squad_v1_1_dev" / "public_500.jsonl"
    golds = [json.loads(line)["answers"][0] for line in squad.read_text().splitlines()[:6]]
    _squad_run(tmp_path / "evals", "run-right", shared_data, golds)
    _squad_run(tmp_path / "evals", "run-wrong", shared_data, ["zzz"] * 6)
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.run()
    at.sidebar.text_input(key="al_data").set_value(str(shared_data)).run()
    at.sidebar.selectbox(key="al_template").set_value("document_qa").run()
    at.sidebar.selectbox(key="al_task").set_value("squad").run()
    assert not at.exception, at.exception
    assert "All evaluation runs" in [s.value for s in at.subheader]
    table = at.dataframe[0].value.set_index("run")  # the first table on the page
    assert set(table.index) == {"run-right", "run-wrong"}
    assert table.loc["run-right", "accuracy"] == 100.0
    assert table.loc["run-wrong", "accuracy"] == 0.0
    assert table.loc["run-wrong", "generation_alignment"] == 0.0


def test_live_section_offers_to_start_a_server(
    shared_data: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path))  # no server in this workspace
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.run()
    at.sidebar.text_input(key="al_data").set_value(str(shared_data)).run()
    assert not at.exception, at.exception
    assert at.button(key="al_serve_start").label == "Start the server"
    assert "Ask the models now" in " ".join(m.value for m in at.markdown)
