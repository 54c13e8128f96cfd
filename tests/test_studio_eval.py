"""The Evaluation page's helpers: eval job configs, the scores table and grouped-bar
figure with bootstrap intervals, and the per-example table with its filters."""

from __future__ import annotations

import json

import pytest

from cookbook_core.errors import BadInput
from cookbook_core.eval import tasks
from cookbook_core.jobs import store as jobs
from cookbook_core.studio import evaluation as studio_eval


def _summary(run_id: str, adapter: str | None, arc: float, squad: float) -> dict:
    return {
        "run_id": run_id,
        "run_dir": f"/runs/{run_id}",
        "model": "default",
        "model_display": "SmolLM2-135M-Instruct",
        "adapter": adapter,
        "tasks": {
            "arc_easy": {
                "n": 10,
                "metrics": {
                    "acc": {"value": arc, "ci95": [arc - 0.1, arc + 0.2]},
                    "acc_norm": {"value": 0.9, "ci95": [0.8, 1.0]},
                },
            },
            "squad": {
                "n": 10,
                "metrics": {
                    "exact_match": {"value": squad, "ci95": [None, None]},
                    "f1": {"value": 0.5, "ci95": [0.4, 0.6]},
                },
            },
        },
    }


def test_eval_config_expands_groups_and_takes_the_adapters_base(tmp_path) -> None:
    cfg = studio_eval.eval_config(["arc_easy"], ["mc"], limit=5, data_dir=" /d ")
    assert cfg["tasks"][0] == "arc_easy" and cfg["tasks"].count("arc_easy") == 1
    assert set(tasks.GROUPS["mc"]) <= set(cfg["tasks"])
    assert cfg["limit"] == 5 and cfg["data_dir"] == "/d" and cfg["adapter"] is None
    run = jobs.runs_root() / "studio-eval-adapter-run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({"model": "/models/base"}))
    cfg = studio_eval.eval_config(["squad"], adapter_run=run.name, model="ignored")
    assert cfg["model"] == "/models/base" and cfg["adapter"] == run.name
    with pytest.raises(BadInput, match="at least one task"):
        studio_eval.eval_config([], [])


def test_scores_frame_uses_each_tasks_main_metric() -> None:
    frame = studio_eval.scores_frame(
        [_summary("r1", None, 0.4, 0.2), _summary("r2", "/runs/train-1/adapter", 0.6, 0.3)]
    )
    assert list(frame["metric"]) == ["acc", "exact_match"] * 2
    assert list(frame["value"]) == [0.4, 0.2, 0.6, 0.3]
    assert frame.loc[0, "ci_low"] == pytest.approx(0.3)
    assert frame.loc[0, "ci_high"] == pytest.approx(0.6)
    assert frame.loc[0, "run"] == "base · run r1"
    assert frame.loc[2, "run"] == "tuned train-1 · run r2"
    other = {**_summary("20261121-201020-eval-squad-62b7", None, 0.1, 0.1), "model": "/m/qwen"}
    other["model_display"] = "qwen"
    assert studio_eval.run_label(other) == "base (qwen) · run 11-21 20:10:20 ·62b7"
    assert studio_eval.scores_frame([]).empty


def test_scores_figure_groups_runs_with_asymmetric_intervals() -> None:
    frame = studio_eval.scores_frame(
        [_summary("r1", None, 0.4, 0.2), _summary("r2", None, 0.6, 0.3)]
    )
    fig = studio_eval.scores_figure(frame)
    assert fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == list(frame["run"].unique())
    bar = fig.data[0]
    assert list(bar.y) == pytest.approx([40.0, 20.0])
    assert list(bar.error_y.array) == pytest.approx([20.0, 0.0])  # missing interval: no bar
    assert list(bar.error_y.arrayminus) == pytest.approx([10.0, 0.0])


def test_records_frame_and_filters() -> None:
    records = [
        {
            "id": "q1",
            "prompt": "Question: ?",
            "continuations": [" a", " b"],
            "loglikelihoods": [-1.0, -2.0],
            "gold": 0,
            "scores": {"pred": 0, "acc": 1.0},
        },
        {
            "id": "q2",
            "prompt": "Question: ?",
            "continuations": [" a", " b"],
            "loglikelihoods": [-1.0, -0.5],
            "gold": 0,
            "scores": {"pred": 1, "acc": 0.0},
        },
    ]
    frame = studio_eval.records_frame(records, "arc_easy")
    assert list(frame["correct"]) == [True, False]
    assert list(frame["answer"]) == ["0: a", "1: b"]
    assert list(frame["gold"]) == ["0: a", "0: a"]
    assert list(studio_eval.filter_records(frame, "incorrect")["id"]) == ["q2"]
    assert list(studio_eval.filter_records(frame, "correct")["id"]) == ["q1"]
    assert len(studio_eval.filter_records(frame, "all")) == 2
    with pytest.raises(BadInput, match="filter"):
        studio_eval.filter_records(frame, "maybe")
    gen = [
        {
            "id": "s1",
            "generation": "Paris",
            "gold": ["Paris", "Paris", "paris"],
            "scores": {"exact_match": 1.0},
        }
    ]
    assert studio_eval.records_frame(gen, "squad").loc[0, "answer"] == "Paris"
    assert studio_eval.records_frame(gen, "squad").loc[0, "gold"] == "Paris | paris"
