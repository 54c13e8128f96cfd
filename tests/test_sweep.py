"""Cells, sweeps and experiments end to end on tiny budgets with the embedded model.

One small sweep (base + two templates + one Dirichlet mixture, one LoRA step each,
three rows of two real tasks) is run once for the module, and the ``mix-mini``
experiment over it once (both module fixtures, so any test runs alone); the tests then
check the matrix, reuse of finished cells, the missing-cell listing, the linear-fit
validation, the experiment commands (which must reuse the same cells) and the results
page built from them.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cookbook_core.errors import BadInput
from cookbook_core.experiments import core as experiments
from cookbook_core.mix import cells, sweep

pytestmark = pytest.mark.slow

TEMPLATES = ["yes_no_qa", "multiple_choice_qa"]
TASKS = ["boolq", "arc_easy"]
TRAIN = {"steps": 1, "batch_size": 2, "max_length": 128}


@pytest.fixture(scope="module")
def mini(shared_data: Path, embedded_model: Path) -> sweep.SweepConfig:
    cfg = sweep.new(
        "mini",
        TEMPLATES,
        TASKS,
        n=32,
        train=dict(TRAIN),
        limit=3,
        data_dir=str(shared_data),
        dirichlet=1,
    )
    sweep.save(cfg)
    statuses = sweep.run_missing(cfg)
    assert set(statuses.values()) == {"completed"}
    return cfg


def test_matrix_from_stored_results(mini: sweep.SweepConfig) -> None:
    A = sweep.matrix(mini)
    assert list(A.index) == ["base", *TEMPLATES]
    assert list(A.columns) == TASKS
    assert ((A >= 0) & (A <= 1)).all().all()
    # every value is a multiple of 1/3: three rows were scored
    assert ((A * 3).round(6) % 1 == 0).all().all()
    from cookbook_core.mix import mixing

    csv = Path(mixing.matrices_root()) / "mini.csv"
    assert csv.is_file() and "yes_no_qa" in csv.read_text()
    assert sweep.missing(mini) == []


def test_rerun_reuses_finished_cells(mini: sweep.SweepConfig) -> None:
    spec = next(s for s in sweep.plan(mini) if s.name == "yes_no_qa")
    adapter = cells.cell_dir(spec) / "train" / "adapter" / "adapter_model.safetensors"
    before = adapter.stat().st_mtime_ns
    assert sweep.run_missing(mini) == {}
    assert adapter.stat().st_mtime_ns == before
    # a sweep with another name asking for the same cell finds it
    other = sweep.new(
        "mini-copy", ["yes_no_qa"], TASKS, n=32, train=dict(TRAIN), limit=3, data_dir=mini.data_dir
    )
    assert sweep.missing(other) == []


def test_missing_cells_are_listed(mini: sweep.SweepConfig) -> None:
    cfg = sweep.new(
        "mini-gap",
        [*TEMPLATES, "last_word"],
        TASKS,
        n=32,
        train=dict(TRAIN),
        limit=3,
        data_dir=mini.data_dir,
    )
    assert sweep.missing(cfg) == [("last_word", "boolq"), ("last_word", "arc_easy")]
    A = sweep.matrix(cfg, write=False)
    assert A.loc["last_word"].isna().all() and A.loc["yes_no_qa"].notna().all()
    with pytest.raises(sweep.SweepError, match=r"\(last_word, boolq\)"):
        sweep.complete_matrix(cfg)


def test_cell_key_tracks_what_determines_the_model() -> None:
    a = cells.CellSpec("a", {"yes_no_qa": 1.0}, train={"steps": 1})
    assert a.key() == cells.CellSpec("renamed", {"yes_no_qa": 2.0}, train={"steps": 1}).key()
    assert a.key() != cells.CellSpec("a", {"yes_no_qa": 1.0}, train={"steps": 2}).key()
    assert a.key() != cells.CellSpec("a", {"yes_no_qa": 1.0}, n=3, train={"steps": 1}).key()
    with pytest.raises(BadInput, match="unknown training option"):
        cells.CellSpec("a", {"yes_no_qa": 1.0}, train={"stpes": 1})
    with pytest.raises(BadInput, match="sweep name"):
        sweep.new("bad name!", TEMPLATES, TASKS)
    with pytest.raises(BadInput, match="unknown task"):
        sweep.new("x", TEMPLATES, ["boolqq"])


def test_validation_compares_mixture_with_linear_prediction(mini: sweep.SweepConfig) -> None:
    v = sweep.validation(mini, n_boot=200)
    table = v["table"]
    assert set(table["mixture"]) == {"dirichlet-0"}
    assert list(table["task"]) == TASKS
    A = sweep.complete_matrix(mini)
    w = next(s for s in sweep.plan(mini) if s.name == "dirichlet-0").normalized()
    for row in table.itertuples():
        expected = sum(w[t] * A.at[t, row.task] for t in w)
        assert row.predicted == pytest.approx(expected)
        assert row.error_lo <= row.error_points + 1e-9 <= row.error_hi + 2e-9
    assert v["stats"]["cells"] == 2
    assert len(v["loo"]) == 3 * len(TASKS)


def test_single_task_experiment_reuses_cells_and_reports_gain(mini: sweep.SweepConfig) -> None:
    cfg = experiments.SingleTaskConfig(
        template="yes_no_qa",
        tasks=["boolq"],
        n=32,
        steps=1,
        limit=3,
        data_dir=mini.data_dir,
        name="single-mini",
        train_extra={"batch_size": 2, "max_length": 128},
    )
    specs, _ = experiments.single_task_cells(cfg)
    sweep_cell = next(s for s in sweep.plan(mini) if s.name == "yes_no_qa")
    assert specs[1].key() == sweep_cell.key()  # the same model: nothing to train
    res = experiments.run_single_task(cfg)
    assert res["status"] == "completed"
    (row,) = res["rows"]
    assert row["tuned"] - row["base"] == pytest.approx(row["gain"])
    assert row["gain_ci95"][0] <= row["gain"] <= row["gain_ci95"][1]
    stored = cells.results(sweep_cell, sweep.settings(mini))["boolq"]["value"]
    assert row["tuned"] == pytest.approx(100 * stored)
    assert experiments.read("single-mini")["rows"][0]["gain"] == row["gain"]
    experiments.check("single-task", cfg)  # the same settings again: a rerun, allowed
    assert experiments.single_task_command(cfg).endswith("--name single-mini")
    other = dataclasses.replace(cfg, steps=2)
    with pytest.raises(experiments.ExperimentError, match="steps: 1 there, 2 now"):
        experiments.check("single-task", other)  # would replace the stored result
    experiments.check("single-task", dataclasses.replace(other, name="single-mini-2"))


def test_paired_gain_interval() -> None:
    before = {str(i): 0.0 for i in range(50)}
    after = {str(i): 1.0 if i < 25 else 0.0 for i in range(50)}
    g = experiments.paired_gain(before, after, n_boot=500)
    assert g["gain"] == pytest.approx(50.0)
    assert 30 < g["lo"] < 50 < g["hi"] < 70
    with pytest.raises(BadInput):
        experiments.paired_gain({"a": 1.0}, {"b": 1.0})


@pytest.fixture(scope="module")
def mix_mini(mini: sweep.SweepConfig) -> dict[str, Any]:
    """The ``mix-mini`` experiment, run once as a job over the module's sweep cells."""
    from cookbook_core.jobs import store as jobs

    cfg = experiments.MixConfig(
        templates=TEMPLATES,
        tasks=TASKS,
        n=32,
        steps=1,
        limit=3,
        dirichlet=1,
        data_dir=mini.data_dir,
        name="mix-mini",
        train_extra={"batch_size": 2, "max_length": 128},
    )
    job_id = experiments.submit("mix", cfg)
    job = jobs.wait(job_id, timeout=900)
    assert job.state == "succeeded", jobs.read_log(job_id, tail=40)
    return experiments.read("mix-mini")


def test_mix_experiment_job_and_report(mix_mini: dict[str, Any], tmp_path: Path) -> None:
    from cookbook_core.experiments import report as results
    from cookbook_core.studio.figures_experiments import write_pngs

    res = mix_mini
    assert set(res["comparison"]) == {
        "base model",
        "best single template",
        "uniform mixture",
        "optimized (maxmin)",
    }
    assert res["best_single"] in TEMPLATES
    # the uniform mixture's observed numbers come from its own cell
    uni = next(s for s in sweep.plan(sweep.load("mix-mini")) if s.name == "uniform")
    obs = cells.results(uni, sweep.settings(sweep.load("mix-mini")))
    assert res["comparison"]["uniform mixture"]["boolq"] == pytest.approx(
        100 * obs["boolq"]["value"]
    )
    draw = write_pngs if shutil.which("chromium") else None
    path = results.write_report(tmp_path / "docs", draw=draw)
    text = path.read_text()
    assert "## Single-task" in text and "## Cookbook-Mix: `mix-mini`" in text
    assert f"{res['comparison']['uniform mixture']['average']:.1f}" in text
    assert "| 1 x 2, 0.0003 |" in text  # every single-task number states its budget
    if draw is not None:
        png = tmp_path / "docs" / "results" / "mix-mini_matrix.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(res)  # the stored result is plain JSON


def test_experiments_and_mixing_pages_show_the_results(mix_mini: dict[str, Any]) -> None:
    from streamlit.testing.v1 import AppTest

    pages = Path(__file__).resolve().parent.parent / "pages"
    at = AppTest.from_file(str(pages / "experiments.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert any("mix-mini" in s.value for s in at.subheader)
    assert len(at.get("plotly_chart")) >= 3
    at = AppTest.from_file(str(pages / "mixing.py"), default_timeout=120)
    at.run()
    at.selectbox[0].set_value("mini.csv").run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert "mean |error|" in labels and "leave-one-out mean |error|" in labels
