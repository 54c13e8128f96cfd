"""The Mixing page: empty state, heatmap and optimizer on a matrix in the workspace,
what-if sliders change the prediction."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from cookbook_core import mixing

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "mixing.py")


def test_empty_state_says_what_to_do() -> None:
    root = mixing.matrices_root()
    for f in root.glob("*.csv") if root.is_dir() else []:
        f.unlink()
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("cookbook mix sweep" in i.value for i in at.info)


def test_matrix_optimizer_and_what_if() -> None:
    root = mixing.matrices_root()
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"squad": [0.10, 0.50, 0.20], "arc": [0.30, 0.25, 0.40]},
        index=pd.Index(["base", "document_qa", "multiple_choice_qa"], name="template"),
    ).to_csv(root / "demo.csv")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) >= 3  # heatmap, weights, what-if
    worst = [c.value for c in at.caption if "worst task" in c.value][0]
    assert "worst task 33.3 pts" in worst  # max-min equalizes the tasks at 1/3
    before = at.dataframe[0].value.copy()
    at.slider(key="w::document_qa").set_value(1.0).run()
    at.slider(key="w::multiple_choice_qa").set_value(0.0).run()
    after = at.dataframe[0].value
    assert after.loc["squad", "predicted"] == 50.0
    assert not before.equals(after)
    at.selectbox(key="mix_objective").set_value("mean").run()
    assert not at.exception
