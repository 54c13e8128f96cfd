"""The studio's job helpers: configs from widget values, status lines, tables, failure
details and the loss figure, on real jobs and runs where it matters."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cookbook_core import dataset_io
from cookbook_core.errors import BadInput
from cookbook_core.jobs import store as jobs
from cookbook_core.studio import jobs as studio_jobs


def _job(**kw: object) -> jobs.Job:
    base: dict[str, object] = {
        "id": "20260101-000000-train-abcd",
        "kind": "train",
        "state": "running",
        "queue": "device",
        "config": {"steps": 10},
        "run_dir": Path("/nonexistent"),
        "created": 1000.0,
        "started": 1000.0,
    }
    base.update(kw)
    return jobs.Job(**base)  # type: ignore[arg-type]


def test_generate_config_drops_zero_weights_and_names_the_folder() -> None:
    cfg = studio_jobs.generate_config({"document_qa": 2.0, "last_word": 0.0}, 100, seed=3)
    assert [s["template"] for s in cfg["config"]["sources"]] == ["document_qa"]
    assert cfg["out"] == str(dataset_io.datasets_root() / "document_qa-n100-s3")
    assert cfg["config"]["n"] == 100 and cfg["config"]["seed"] == 3
    assert studio_jobs.planned_counts({"a": 2.0, "b": 1.0, "c": 0.0}, 10) == {"a": 7, "b": 3}


@pytest.mark.parametrize(
    ("weights", "name", "message"),
    [
        ({}, None, "at least one template"),
        ({"document_qa": 0.0}, None, "weight above 0"),
        ({"document_qa": -1.0}, None, ">= 0"),
        ({"document_qa": 1.0}, "../escape", "letters, digits"),
        ({"document_qa": 1.0}, "has space", "letters, digits"),
    ],
)
def test_generate_config_bad_input(
    weights: dict[str, float], name: str | None, message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        studio_jobs.generate_config(weights, 10, name=name)


def test_generate_config_refuses_to_replace_unless_asked() -> None:
    folder = dataset_io.datasets_root() / "studio-exists"
    folder.mkdir(parents=True, exist_ok=True)
    with pytest.raises(BadInput, match="already exists"):
        studio_jobs.generate_config({"document_qa": 1.0}, 10, name="studio-exists")
    cfg = studio_jobs.generate_config(
        {"document_qa": 1.0}, 10, name="studio-exists", overwrite=True
    )
    assert cfg["overwrite"] is True


def test_submitted_generate_config_runs_as_a_job() -> None:
    cfg = studio_jobs.generate_config({"document_qa": 1.0, "last_word": 1.0}, 40, name="studio-gen")
    job = jobs.wait(jobs.submit("generate", cfg).id, timeout=120)
    assert job.state == "succeeded", jobs.read_log(job.id)
    manifest = dataset_io.read_manifest(cfg["out"])
    assert [t["count"] for t in manifest["templates"]] == [20, 20]
    line = studio_jobs.status_line(job)
    assert "succeeded" in line and "40 / 40 samples" in line
    assert studio_jobs.progress_fraction(job) == 1.0


def test_train_config_checks_names() -> None:
    cfg = studio_jobs.train_config("/data/x", steps=5, lr=1e-3)
    assert cfg["steps"] == 5 and cfg["data"] == "/data/x" and cfg["method"] == "lora"
    with pytest.raises(BadInput, match="unknown training option"):
        studio_jobs.train_config("/data/x", stepz=5)
    with pytest.raises(BadInput, match="choose a dataset"):
        studio_jobs.train_config(" ")


def test_status_line_and_progress() -> None:
    job = _job(
        progress={"done": 3, "total": 10, "unit": "steps", "loss": 1.23456, "eta": 70},
    )
    line = studio_jobs.status_line(job, now=1065.0)
    assert line == "▶ running · 3 / 10 steps · loss 1.2346 · ETA 1 min 10 s · elapsed 1 min 05 s"
    assert studio_jobs.progress_fraction(job) == pytest.approx(0.3)
    starting = _job(progress={})
    assert studio_jobs.progress_fraction(starting) is None
    assert "starting" in studio_jobs.status_line(starting, now=1001.0)


def test_jobs_frame_columns() -> None:
    frame = studio_jobs.jobs_frame(
        [_job(), _job(id="b", state="failed", reason="boom", finished=1030.0)], now=2000.0
    )
    assert list(frame["state"]) == ["▶ running", "✗ failed"]
    assert list(frame["duration"]) == ["16 min 40 s", "30 s"]
    assert frame.loc[1, "reason"] == "boom"
    assert studio_jobs.jobs_frame([]).empty


def test_failure_details_adds_the_error_lines_of_the_log() -> None:
    log = (
        "[10:00:00] job x (train) started\nTraceback (most recent call last):\n"
        '  File "a.py", line 1\ntorch.OutOfMemoryError: CUDA out of memory\n'
    )
    job = _job(state="failed", reason="RuntimeError: step failed")
    details = studio_jobs.failure_details(job, log)
    assert details is not None
    assert details.startswith("RuntimeError: step failed")
    assert "torch.OutOfMemoryError: CUDA out of memory" in details
    assert studio_jobs.failure_details(_job(state="succeeded"), log) is None


def test_loss_figure_has_loss_and_lr() -> None:
    metrics = [{"step": i, "loss": 3.0 - i / 10, "lr": 1e-3 * (1 - i / 5)} for i in range(1, 5)]
    fig = studio_jobs.loss_figure(metrics)
    assert [t.name for t in fig.data] == ["loss", "learning rate"]
    assert list(fig.data[0].y) == [m["loss"] for m in metrics]
    assert fig.layout.yaxis2.overlaying == "y"
    assert len(studio_jobs.loss_figure([]).data) == 1  # an empty curve, not an error


def test_durations() -> None:
    job = _job(state="succeeded", finished=1000.0 + 2 * 3600 + 5 * 60)
    assert "elapsed 2 h 05 min" in studio_jobs.status_line(job, now=time.time())


def test_log_tail_keeps_the_last_state_of_progress_bars(tmp_path: Path) -> None:
    job = _job(run_dir=tmp_path)
    assert studio_jobs.log_tail(job) == ""
    bar = "".join(f"\rLoading: {i}/272" for i in range(0, 273, 17))
    (tmp_path / "log.txt").write_text(f"[10:00] started\n{bar}\nstep 1\n\n\nstep 2\n\n")
    assert studio_jobs.log_tail(job) == "[10:00] started\nLoading: 272/272\nstep 1\n\nstep 2"
    assert studio_jobs.log_tail(job, 2) == "\nstep 2"
