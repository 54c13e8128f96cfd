"""The Mixing page: empty state, heatmap and optimizer on a matrix in the workspace,
what-if sliders change the prediction."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from cookbook_core.mix import mixing

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


def test_unmeasured_cells_are_listed_and_complete_rows_still_optimize() -> None:
    root = mixing.matrices_root()
    for f in root.glob("*.csv"):
        f.unlink()
    pd.DataFrame(
        {"squad": [0.10, 0.50, 0.20, None], "arc": [0.30, 0.25, 0.40, 0.5]},
        index=pd.Index(["base", "document_qa", "multiple_choice_qa", "last_word"], name="t"),
    ).to_csv(root / "gappy.csv")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("(last_word, squad)" in w.value for w in at.warning)
    assert "w::last_word" not in [s.key for s in at.slider]
    assert "w::document_qa" in [s.key for s in at.slider]


def test_build_button_queues_a_generate_job_that_writes_the_mixture() -> None:
    import json

    from cookbook_core.jobs import store as jobs

    root = mixing.matrices_root()
    for f in root.glob("*.csv"):
        f.unlink()
    pd.DataFrame(
        {"squad": [0.10, 0.50, 0.20], "arc": [0.30, 0.25, 0.40]},
        index=pd.Index(["base", "document_qa", "multiple_choice_qa"], name="template"),
    ).to_csv(root / "demo.csv")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.slider(key="w::document_qa").set_value(0.75).run()
    at.slider(key="w::multiple_choice_qa").set_value(0.25).run()
    at.number_input(key="build_n").set_value(40).run()
    at.number_input(key="build_seed").set_value(3).run()
    at.button[-1].click().run()
    assert not at.exception, at.exception
    msg = [s.value for s in at.success]
    assert msg and "Queued job" in msg[0]
    job_id = msg[0].split("`")[1]
    assert jobs.wait(job_id, timeout=120).state == "succeeded"
    manifest = json.loads((Path(jobs.get(job_id).config["out"]) / "manifest.json").read_text())
    counts = {t["name"]: t["count"] for t in manifest["templates"]}
    assert counts == {"document_qa": 30, "multiple_choice_qa": 10}
    assert manifest["extra"]["mixture"]["weights"]["document_qa"] == 0.75
