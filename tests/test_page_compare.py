"""The Compare page and the Mixing page's links and metric choice, under AppTest, on runs and
cells written by hand in the library's formats (``tests/handmade_runs.py``):

* with fewer than two runs the page says how to get some;
* a Mixing-page link (``?sweep=&cell=&task=``) preselects the base row's and the
  template's runs and task; the page shows the mixture weights, the per-task bars, the
  paired differences and exactly the disagreeing examples, with both outputs;
* in the full app the Mixing page links each matrix cell to the Compare page, and a
  metric picked for a task changes the matrix shown and, once recorded, the sweep's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cookbook_core.mix import cells, sweep
from tests.handmade_runs import squad_record, write_cell

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "compare.py")
APP = str(ROOT / "app.py")
GOLD = [["Paris"], ["Rome"], ["Oslo"], ["Lima"]]
ANSWERS = {
    "base": ["Paris", "x", "y", "Lima"],
    "document_qa": ["Paris", "Rome", "Oslo city", "w"],  # q2: no exact match, F1 2/3
    "retrieval": ["Paris", "Rome", "Oslo", "Lima"],
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def qa_sweep(home: Path) -> sweep.SweepConfig:
    """A saved sweep (base + document_qa + retrieval on squad) with its cells on disk."""
    cfg = sweep.new("qa", ["document_qa", "retrieval"], ["squad"], n=8, train={"steps": 1})
    sweep.save(cfg)
    for spec in sweep.plan(cfg):
        recs = [
            squad_record(f"q{i}", a, g)
            for i, (a, g) in enumerate(zip(ANSWERS[spec.name], GOLD, strict=True))
        ]
        write_cell(spec, sweep.settings(cfg), {"squad": recs})
    sweep.matrix(cfg)  # writes mixing/qa.csv as a finished sweep does
    return cfg


def _run_of(cfg: sweep.SweepConfig, name: str) -> str:
    spec = next(s for s in sweep.plan(cfg) if s.name == name)
    return cells.results(spec, sweep.settings(cfg))["squad"]["run_dir"]


def test_too_few_runs_says_what_to_do(home: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("at least two evaluation runs" in i.value for i in at.info)


def test_a_matrix_link_preselects_and_lists_disagreements(qa_sweep: sweep.SweepConfig) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"sweep": "qa", "cell": "document_qa", "task": "squad"})
    at.run()
    assert not at.exception, at.exception
    base, dqa = _run_of(qa_sweep, "base"), _run_of(qa_sweep, "document_qa")
    assert at.multiselect(key="cmp_runs").value == [base, dqa]
    models = at.dataframe[0].value
    assert list(models["model"]) == ["A", "B"]
    assert list(models["weights"]) == ["—", "document_qa 1.00"]
    bars = at.get("plotly_chart")
    assert any('"barmode":"group"' in c.proto.spec.replace(" ", "") for c in bars)
    assert at.selectbox(key="cmp_task").value == "squad"
    diffs = at.dataframe[2].value.set_index("model")
    assert diffs.loc["B", "only B right"] == 1 and diffs.loc["B", "only A right"] == 1
    split = at.dataframe[3].value
    assert list(split["id"]) == ["q1", "q3"]  # q1: only B right; q3: only A right
    assert list(split["right"]) == ["B", "A"]
    assert any("2 disagreements" in m.value for m in at.markdown)
    outputs = [c.value for c in at.code]
    assert "x" in outputs and "Rome" in outputs  # q1: both models' outputs side by side
    at.selectbox(key="cmp_example").set_value("q3").run()
    outputs = [c.value for c in at.code]
    assert "Lima" in outputs and "w" in outputs
    assert any(":red[wrong]" in m.value for m in at.markdown)

    # a third model: the mixture row's weights and its figure
    at.multiselect(key="cmp_runs").set_value([base, dqa, _run_of(qa_sweep, "retrieval")]).run()
    assert not at.exception, at.exception
    assert list(at.dataframe[3].value["id"]) == ["q1", "q2", "q3"]


def test_mixing_links_cells_and_records_the_metric(qa_sweep: sweep.SweepConfig) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/mixing.py").run()
    assert not at.exception, at.exception
    assert any("squad **exact_match**" in c.value for c in at.caption)
    assert at.selectbox(key="mix_compare_cell").options == [
        "base × squad",
        "document_qa × squad",
        "retrieval × squad",
    ]
    at.selectbox(key="mix_compare_cell").set_value(1).run()  # document_qa × squad
    link = at.get("page_link")[0].proto
    assert link.query_string == "sweep=qa&cell=document_qa&task=squad"
    assert "66.7" not in at.get("plotly_chart")[0].proto.spec  # exact match: 50, 50, 100

    at.selectbox(key="mix_metric::squad").set_value("f1").run()
    assert not at.exception, at.exception
    assert any("squad f1" in w.value and "not recorded" in w.value for w in at.warning)
    assert "66.7" in at.get("plotly_chart")[0].proto.spec  # document_qa's token F1
    assert sweep.load("qa").metrics == {}  # only shown so far
    at.button(key="mix_metric_record").click().run()
    assert not at.exception, at.exception
    assert sweep.load("qa").metrics == {"squad": "f1"}
    assert any("squad **f1**" in c.value for c in at.caption)
    assert not any("not recorded" in w.value for w in at.warning)
    assert "66.7" in at.get("plotly_chart")[0].proto.spec  # now from the rewritten CSV


def test_mixing_page_on_its_own_still_links(qa_sweep: sweep.SweepConfig) -> None:
    """Run alone (no navigation registers the Compare page) the link is a plain one."""
    at = AppTest.from_file(str(ROOT / "pages" / "mixing.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    links = [m.value for m in at.markdown if "Open in Compare" in m.value]
    assert links == ["[Open in Compare](compare?sweep=qa&cell=base&task=squad)"]
