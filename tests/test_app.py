"""The studio renders with Streamlit's AppTest (no browser)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def test_overview_lists_templates() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Cookbook Studio"
    assert at.metric[0].value == "10" or int(at.metric[0].value) >= 10
    frame = at.dataframe[0].value
    assert "document_qa" in set(frame["template"])
