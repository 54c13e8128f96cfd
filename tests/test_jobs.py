"""Background jobs: real worker processes, queue order, cancel, kill -9 + resume, failures."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from cookbook_core import generate as gen
from cookbook_core.errors import BadInput
from cookbook_core.jobs import store as jobs
from cookbook_core.train import training


def _gen_config(out: Path, n: int) -> dict[str, object]:
    cfg = gen.GenerateConfig(sources=[gen.Source("document_qa", params={"doc_len": 20})], n=n)
    return {"config": gen.config_to_dict(cfg), "out": str(out)}


def _wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_generate_job_succeeds(tmp_path: Path) -> None:
    job = jobs.submit("generate", _gen_config(tmp_path / "ds", 3000), name="small")
    assert job.state in ("running", "succeeded") and (job.run_dir / "job.json").is_file()
    job = jobs.wait(job.id, timeout=120)
    assert job.state == "succeeded", jobs.read_log(job.id)
    assert job.progress["done"] == job.progress["total"] == 3000
    assert (tmp_path / "ds" / "manifest.json").is_file()
    assert jobs.read_result(job)["n"] == 3000
    assert job.id in [j.id for j in jobs.list_jobs()]
    assert jobs.get(job.id[:-1]).id == job.id  # unique prefix


def test_queue_runs_in_order_within_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOKBOOK_MAX_JOBS_CPU", "1")
    ids = [jobs.submit("generate", _gen_config(tmp_path / f"d{i}", 20000)).id for i in range(3)]
    states = [jobs.get(i).state for i in ids]
    assert states[1:] == ["queued", "queued"] and states[0] in ("running", "succeeded")
    done = [jobs.wait(i, timeout=180) for i in ids]
    assert [j.state for j in done] == ["succeeded"] * 3
    for a, b in zip(done, done[1:], strict=False):
        assert a.started <= a.finished <= b.started  # one at a time, in submission order


def test_cancel_queued_and_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKBOOK_MAX_JOBS_CPU", "1")
    big = jobs.submit("generate", _gen_config(tmp_path / "big", 5_000_000))
    queued = jobs.submit("generate", _gen_config(tmp_path / "next", 100), start=False)
    assert jobs.cancel(queued.id).state == "cancelled"
    _wait_for(lambda: jobs.get(big.id).progress.get("done", 0) > 0, 60, "generation progress")
    jobs.cancel(big.id)
    job = jobs.wait(big.id, timeout=60)
    assert job.state == "cancelled"
    assert not (tmp_path / "big").exists()  # generation is atomic: nothing half-written
    with pytest.raises(jobs.JobStateError):
        jobs.cancel(big.id)
    with pytest.raises(jobs.JobStateError, match="cannot be resumed"):
        jobs.resume(big.id)


def test_worker_that_dies_after_a_cancel_request_is_cancelled(tmp_path: Path) -> None:
    # A SIGTERM that lands before the worker installs its handler ends the process without
    # a report; reconcile must still call that job cancelled and say so in the reason.
    job = jobs.submit("generate", _gen_config(tmp_path / "big", 5_000_000))
    _wait_for(lambda: jobs.get(job.id).pid is not None, 60, "the worker to start")
    with jobs.connect() as con:
        con.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job.id,))
    os.killpg(jobs.get(job.id).pid, signal.SIGKILL)
    _wait_for(lambda: not jobs.pid_alive(jobs.get(job.id).pid, None), 30, "the worker to die")
    assert job.id in jobs.reconcile()
    job = jobs.get(job.id)
    assert job.state == "cancelled" and job.reason.startswith("cancelled: worker process")


def test_bad_submissions_create_no_job(tmp_path: Path) -> None:
    before = len(jobs.list_jobs(refresh=False))
    with pytest.raises(BadInput, match="unknown job kind"):
        jobs.submit("nope", {})
    with pytest.raises(BadInput, match="steps"):
        jobs.submit("train", {"data": str(tmp_path), "steps": 0})
    with pytest.raises(BadInput, match="does not exist"):
        jobs.submit("train", {"data": str(tmp_path / "missing")})
    with pytest.raises(BadInput, match="unknown training option"):
        jobs.submit("train", {"data": str(tmp_path), "stepz": 3})
    assert len(jobs.list_jobs(refresh=False)) == before
    with pytest.raises(jobs.UnknownJob):
        jobs.get("no-such-job")


def test_pid_reuse_is_not_alive() -> None:
    me = os.getpid()
    start = jobs.proc_start_time(me)
    assert start is not None and jobs.pid_alive(me, start)
    assert not jobs.pid_alive(me, start + 1)  # same pid, another process
    assert not jobs.pid_alive(None, None)


def test_failed_job_keeps_its_reason(tiny_dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text((tiny_dataset / "data.jsonl").read_text())
    job = jobs.submit("train", {"data": str(data), "steps": 2}, start=False)
    data.unlink()  # the data vanishes after submission
    jobs.pump()
    job = jobs.wait(job.id, timeout=120)
    assert job.state == "failed"
    assert "DatasetError" in job.reason and "does not exist" in job.reason
    assert "Traceback" in jobs.read_log(job.id)


def test_train_job_kill9_lost_resume_cancel_resume(
    embedded_model: Path, tiny_dataset: Path
) -> None:
    config = {
        "data": str(tiny_dataset),
        "steps": 8,
        "batch_size": 2,
        "max_length": 64,
        "save_every": 2,
        "lr": 1e-3,
        "lora_r": 4,
    }
    job = jobs.submit("train", config)
    ckpt = job.run_dir / "checkpoints" / "checkpoint-2"
    _wait_for(lambda: (ckpt / "trainer_state.json").is_file(), 240, "the first checkpoint")
    os.killpg(jobs.get(job.id).pid, signal.SIGKILL)
    _wait_for(
        lambda: jobs.get(job.id).pid is not None and not jobs.pid_alive(jobs.get(job.id).pid, None),
        30,
        "the worker to die",
    )
    jobs.reconcile()
    job = jobs.get(job.id)
    assert job.state == "lost" and "vanished" in job.reason
    assert (ckpt / "adapter_model.safetensors").is_file()  # earlier checkpoints intact

    # Resume; cancel once it has moved on; the cancelled worker checkpoints and exits.
    jobs.resume(job.id)
    _wait_for(
        lambda: jobs.get(job.id).progress.get("done", 0) >= 3 or not jobs.get(job.id).active,
        240,
        "progress after resume",
    )
    jobs.cancel(job.id)
    job = jobs.wait(job.id, timeout=120)
    assert job.state == "cancelled", jobs.read_log(job.id)
    stopped_at = training.last_checkpoint(job.run_dir)
    assert stopped_at is not None and 3 <= int(stopped_at.name.split("-")[1]) < 8
    assert "checkpoint" in job.reason
    jobs.resume(job.id)
    job = jobs.wait(job.id, timeout=240)
    assert job.state == "succeeded", jobs.read_log(job.id)
    assert job.attempts == 3
    assert [m["step"] for m in training.read_metrics(job.run_dir)] == list(range(1, 9))
    assert (job.run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert jobs.read_result(job)["resumed_from"]


# ----------------------------------------------------------------------------------
# The kind registry


def test_every_builtin_kind_is_declared_the_same_way() -> None:
    import importlib

    assert [k[0] for k in jobs.BUILTIN_KINDS] == [
        "generate",
        "train",
        "eval",
        "cell",
        "experiment",
        "selfguide",
        "draft",
    ]
    for name, module, queue, resumable in jobs.BUILTIN_KINDS:
        kind = jobs.get_kind(name)
        assert kind == jobs.JobKind(
            name, f"{module}:run_job", f"{module}:validate_job", queue, resumable
        )
        mod = importlib.import_module(module)
        assert callable(mod.run_job) and callable(mod.validate_job), name
    assert jobs.get_kind("train").resumable and not jobs.get_kind("generate").resumable
    assert jobs.get_kind("generate").queue == "cpu"


def test_unknown_kind_suggests_the_closest_name() -> None:
    with pytest.raises(BadInput, match=r"unknown job kind 'trian'; did you mean 'train'\?"):
        jobs.get_kind("trian")


def test_a_kind_whose_module_fails_to_import_reports_the_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kind_with_missing_dep.py").write_text(
        "import not_installed_dependency_xyz\n\ndef validate_job(c):\n    return c\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(jobs.KINDS, "broken", jobs.KINDS["generate"])  # restored after
    jobs.register_kind(
        "broken",
        "kind_with_missing_dep:run_job",
        validate="kind_with_missing_dep:validate_job",
        queue="cpu",
    )
    before = len(jobs.list_jobs(refresh=False))
    with pytest.raises(jobs.KindImportError) as exc:
        jobs.submit("broken", {})
    message = str(exc.value)
    assert "cannot import kind_with_missing_dep" in message
    assert "ModuleNotFoundError" in message and "not_installed_dependency_xyz" in message
    assert isinstance(exc.value.__cause__, ModuleNotFoundError)
    assert len(jobs.list_jobs(refresh=False)) == before

    jobs.register_kind("broken", "kind_with_missing_dep:run_job", validate="os.path:no_such_fn")
    with pytest.raises(jobs.KindImportError, match="os.path has no function 'no_such_fn'"):
        jobs.submit("broken", {})
