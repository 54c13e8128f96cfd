"""The Alignment page: gold alignment on real rows, filters, example picker, highlighting."""

from __future__ import annotations

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
