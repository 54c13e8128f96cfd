"""Cells and generation on Ray against a real local cluster (``ray start --head`` on
127.0.0.1, 2 CPUs, started and stopped by the module's fixture).

A 3-cell mini sweep (base + two templates, one LoRA step on 3 rows, 3 evaluation rows)
run on Ray workers gives exactly the matrix and the cell folders of the local
executor; rerunning with either executor trains nothing; a cell whose Ray worker is
killed mid-training is left ``lost`` with its checkpoints, and the rerun resumes it.
A generation whose blocks are made by Ray tasks writes the local engine's bytes
(JSONL shards spliced, Parquet row groups), with one manifest, published atomically.
The fast tests check the resource requests and the option checks without a cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cookbook_core.errors import BadInput
from cookbook_core.mix import cells, ray_cells, sweep

pytest.importorskip("ray", reason="needs ray (make setup installs requirements-ray.txt)")

TEMPLATES = ["yes_no_qa", "multiple_choice_qa"]
TASKS = ["boolq"]
TRAIN = {"steps": 1, "batch_size": 2}  # what the CLI line below asks for too


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A one-node Ray cluster on 127.0.0.1 with 2 CPUs; its address.  Killed (its own
    process group) at the end.  Token authentication is off for this throwaway cluster
    (a driver reads RAY_AUTH_MODE when ray is imported, before any fixture runs)."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    port = _free_port()
    log = open(Path(temp) / "head.log", "wb")  # noqa: SIM115 - closed below
    cmd = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=2",
        "--num-gpus=0",
        f"--temp-dir={temp}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--dashboard-agent-listen-port={_free_port()}",
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    try:
        deadline = time.time() + 120
        while True:
            assert head.poll() is None, (Path(temp) / "head.log").read_text()[-3000:]
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.time() < deadline, "the Ray head did not start"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # --block: ray start stops what it started
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # a throwaway cluster: no need to wait longer
        head.wait(timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline:  # until every process of the group is gone
            try:
                os.killpg(head.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _home(root: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh workspace sharing the session's model cache (the converted model)."""
    root.mkdir(parents=True)
    (root / "cache").symlink_to(workspace / "cache", target_is_directory=True)
    monkeypatch.setenv("COOKBOOK_HOME", str(root))
    return root


def _files(home: Path) -> dict[str, int]:
    """Every file under the cells with its mtime (the Ray state files aside)."""
    return {
        str(p): p.stat().st_mtime_ns
        for p in (home / "cells").rglob("*")
        if p.is_file() and not p.name.startswith("ray")
    }


def _mini(data_dir: Path) -> sweep.SweepConfig:
    return sweep.new(
        "ray-mini", TEMPLATES, TASKS, n=3, train=dict(TRAIN), limit=3, data_dir=str(data_dir)
    )


# ----------------------------------------------------------------------------------
# Without a cluster


def test_resource_requests_follow_the_cell(tmp_path: Path) -> None:
    model = tmp_path / "model"  # a local model folder: only its sizes are read
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 1000})
    )
    weights = 50 * 2**20
    with open(model / "model.safetensors", "wb") as fh:
        fh.truncate(weights)
    st = cells.EvalSettings(tasks=TASKS, limit=3)
    m = str(model)
    base = cells.CellSpec(name="base", role="base", model=m)
    small = cells.CellSpec(name="s", weights={"yes_no_qa": 1.0}, model=m, train=dict(TRAIN))
    big = cells.CellSpec(name="b", weights={"yes_no_qa": 1.0}, model=m, train={"batch_size": 64})
    full = cells.CellSpec(name="f", weights={"yes_no_qa": 1.0}, model=m, train={"method": "full"})
    mem = {s.name: ray_cells.memory_bytes(s, st) for s in (base, small, big, full)}
    assert mem["base"] > weights + ray_cells.OVERHEAD_BYTES
    assert mem["s"] >= mem["base"] and mem["b"] > mem["s"]  # activations grow with the batch
    assert mem["f"] >= mem["s"] + 2 * weights  # gradients and Adam's moments
    opts = ray_cells.RayOptions()
    assert ray_cells.resources(small, st, opts, cluster_gpus=0)["num_gpus"] == 0
    assert ray_cells.resources(small, st, opts, cluster_gpus=4)["num_gpus"] == 1
    fixed = ray_cells.RayOptions(cpus=2, gpus=0, memory_gb=3)
    assert ray_cells.resources(small, st, fixed, cluster_gpus=4) == {
        "num_cpus": 2.0,
        "num_gpus": 0.0,
        "memory": float(3 * ray_cells.GIB),
    }
    node = {"Alive": True, "Resources": {"CPU": 2.0, "memory": 4.0 * ray_cells.GIB}}
    ray_cells._check_fits({"num_cpus": 1, "num_gpus": 0, "memory": 1e9}, [node], "s")
    with pytest.raises(BadInput, match="more than any node has"):
        ray_cells._check_fits({"num_cpus": 1, "num_gpus": 1, "memory": 1e9}, [node], "s")


def test_executor_options_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    from cookbook_core.cli.main import main

    argv = ["mix", "sweep", "x", "--template", "yes_no_qa", "--task", "boolq"]
    assert main([*argv, "--executor", "ray", "--background"]) == 2
    assert "drop --background" in capsys.readouterr().err
    assert main(["experiment", "mix", "--template", "yes_no_qa", "--address", "auto"]) == 2
    assert "--address needs --executor ray" in capsys.readouterr().err
    assert "x" not in sweep.list_sweeps()  # nothing saved
    with pytest.raises(BadInput, match="must be >= 0"):
        ray_cells.RayOptions(cpus=-1).check()
    assert ray_cells.shown_state({"state": "running", "updated": 0.0}, now=1e6) == "lost"
    assert ray_cells.shown_state({"state": "completed", "updated": 0.0}, now=1e6) == "completed"


# ----------------------------------------------------------------------------------
# On a real local cluster


@pytest.mark.slow
def test_ray_sweep_equals_local_and_reruns_train_nothing(
    ray_head: str,
    shared_data: Path,
    embedded_model: Path,
    _workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from cookbook_core.cli.main import main

    local = _home(tmp_path / "local", _workspace, monkeypatch)
    cfg = _mini(shared_data)
    sweep.save(cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the Ray tasks run with one thread each (--cpus-per-cell 1)
    try:
        t0 = time.time()
        assert set(sweep.run_missing(cfg).values()) == {"completed"}
        local_s = time.time() - t0
    finally:
        torch.set_num_threads(threads)
    want = sweep.matrix(cfg)
    assert want.notna().all().all()

    remote = _home(tmp_path / "ray", _workspace, monkeypatch)
    argv = ["mix", "sweep", cfg.name, "--task", TASKS[0], "-n", "3", "--steps", "1"]
    argv += [f"--template={t}" for t in TEMPLATES]
    argv += ["--batch-size", "2", "--limit", "3", "--data-dir", str(shared_data), "--quiet"]
    t0 = time.time()
    assert main([*argv, "--executor", "ray", "--address", ray_head]) == 0
    ray_s = time.time() - t0
    got = sweep.matrix(sweep.load(cfg.name))
    print(f"3-cell mini sweep: local {local_s:.1f} s, ray {ray_s:.1f} s")
    names = sorted(p.name for p in (local / "cells").iterdir())
    assert sorted(p.name for p in (remote / "cells").iterdir()) == names  # same cell keys
    assert got.equals(want), (got, want)
    for d in (remote / "cells").iterdir():
        state = ray_cells.read_state(d)
        assert state is not None and state["state"] == "completed", (d, state)
        assert state["pid"] != os.getpid() and state["resources"]["num_cpus"] == 1
        assert (d / ray_cells.LOG_FILE).is_file()
    assert {s["cell"] for s in ray_cells.list_cells()} == {"base", *TEMPLATES}

    # Rerun with either executor, in either workspace: nothing is trained or evaluated.
    before = _files(remote)
    assert sweep.run_missing(sweep.load(cfg.name)) == {}
    assert main([*argv, "--executor", "ray", "--address", ray_head]) == 0
    assert _files(remote) == before
    monkeypatch.setenv("COOKBOOK_HOME", str(local))
    before = _files(local)
    specs = sweep.plan(cfg)
    opts = ray_cells.RayOptions(address=ray_head)
    assert ray_cells.run_all(specs, sweep.settings(cfg), options=opts) == {}
    assert _files(local) == before
    assert not any((d / ray_cells.STATE_FILE).exists() for d in (local / "cells").iterdir())


@pytest.mark.slow
def test_killed_ray_worker_leaves_the_cell_resumable(
    ray_head: str,
    shared_data: Path,
    embedded_model: Path,
    _workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _home(tmp_path / "kill", _workspace, monkeypatch)
    train = {**TRAIN, "steps": 8, "save_every": 1, "max_length": 128}
    spec = cells.CellSpec(name="kill", weights={"yes_no_qa": 1.0}, n=16, train=train)
    st = cells.EvalSettings(tasks=TASKS, limit=3, data_dir=str(shared_data))
    opts = ray_cells.RayOptions(address=ray_head, retries=0)
    outcome: dict[str, Any] = {}

    def drive() -> None:
        try:
            outcome["statuses"] = ray_cells.run_all([spec], st, options=opts)
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome["error"] = exc

    driver = threading.Thread(target=drive)
    driver.start()
    cdir = cells.cell_dir(spec)
    first = cdir / "train" / "checkpoints" / "checkpoint-1" / "trainer_state.json"
    deadline = time.time() + 300
    while not first.is_file():
        assert driver.is_alive(), outcome
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    pid = ray_cells.read_state(cdir)["pid"]  # type: ignore[index]
    os.kill(pid, signal.SIGKILL)  # the worker dies mid-training
    driver.join(timeout=120)
    assert not driver.is_alive()
    err = outcome.get("error")
    assert isinstance(err, ray_cells.CellsFailed), outcome
    assert err.statuses == {"kill": "lost"} and "rerun" in str(err)
    assert ray_cells.read_state(cdir)["state"] == "lost"  # type: ignore[index]
    assert cells.training_result(spec) is None  # not finished ...
    from cookbook_core.train import training

    kept = training.last_checkpoint(cdir / "train")
    assert kept is not None  # ... but its checkpoints are kept

    assert ray_cells.run_all([spec], st, options=opts) == {"kill": "completed"}
    res = cells.training_result(spec)
    assert res is not None and res["status"] == "completed" and res["step"] == 8
    assert res["resumed_from"] is not None  # continued, not restarted
    assert [m["step"] for m in training.read_metrics(cdir / "train")] == list(range(1, 9))
    assert cells.is_complete(spec, st)


@pytest.mark.slow
def test_a_stop_request_checkpoints_the_ray_cell(
    ray_head: str,
    shared_data: Path,
    embedded_model: Path,
    _workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the Jobs page's Stop does: the running task writes a checkpoint and returns
    ``stopped``; the next run continues from it."""
    _home(tmp_path / "stop", _workspace, monkeypatch)
    train = {**TRAIN, "steps": 8, "save_every": 4, "max_length": 128}
    spec = cells.CellSpec(name="stop", weights={"yes_no_qa": 1.0}, n=16, train=train)
    st = cells.EvalSettings(tasks=TASKS, limit=3, data_dir=str(shared_data))
    opts = ray_cells.RayOptions(address=ray_head, retries=0)
    outcome: dict[str, Any] = {}
    driver = threading.Thread(
        target=lambda: outcome.update(statuses=ray_cells.run_all([spec], st, options=opts))
    )
    driver.start()
    cdir = cells.cell_dir(spec)
    deadline = time.time() + 300
    while not (cdir / "train" / "metrics.jsonl").is_file():  # training has started
        assert driver.is_alive() and time.time() < deadline, outcome
        time.sleep(0.05)
    ray_cells.request_stop(cdir)
    driver.join(timeout=180)
    assert outcome["statuses"] == {"stop": "stopped"}
    assert ray_cells.read_state(cdir)["state"] == "stopped"  # type: ignore[index]
    from cookbook_core.train import training

    kept = training.last_checkpoint(cdir / "train")
    assert kept is not None and not (cdir / "train" / "adapter").exists()
    assert not (cdir / ray_cells.STOP_FILE).exists()
    assert ray_cells.run_all([spec], st, options=opts) == {"stop": "completed"}
    res = cells.training_result(spec)
    assert res is not None and res["step"] == 8 and res["resumed_from"] == str(kept)


def test_jobs_page_shows_ray_cells_and_stops_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    now = time.time()
    running = cells.cells_root() / "yes_no_qa-0123456789ab"
    dead = cells.cells_root() / "base-ba9876543210"
    for d, state in ((running, {"updated": now}), (dead, {"updated": now - 3600})):
        d.mkdir(parents=True)
        storage_state = {"state": "running", "cell": d.name.split("-")[0], "node": "n1", **state}
        storage_state.update(stage="train", done=1, total=4, pid=123)
        storage_state["resources"] = {"num_cpus": 1.0, "num_gpus": 0.0, "memory": 2.0 * 2**30}
        (d / ray_cells.STATE_FILE).write_text(json.dumps(storage_state))
    rows = {r["cell"]: r for r in ray_cells.table(ray_cells.list_cells(), now=now)}
    assert rows["yes_no_qa"]["state"] == "running" and rows["yes_no_qa"]["progress"] == 25.0
    assert rows["base"]["state"] == "lost"  # its state stopped moving an hour ago
    assert rows["yes_no_qa"]["memory GiB"] == 2.0

    page = Path(__file__).resolve().parent.parent / "pages" / "jobs.py"
    at = AppTest.from_file(str(page), default_timeout=60).run()
    assert not at.exception, at.exception
    shown = at.dataframe[0].value
    assert set(shown["cell"]) == {"yes_no_qa", "base"}
    at.button(key=f"jb_stop_ray::{running}").click().run()
    assert (running / ray_cells.STOP_FILE).is_file()
    assert not (dead / ray_cells.STOP_FILE).exists()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_generation_on_ray_writes_the_local_bytes(
    ray_head: str, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from cookbook_core import dataset_io, generate_ray
    from cookbook_core.cli.main import main
    from cookbook_core.generate import DATA_FILES, GenerateConfig, Source, generate

    sources = [Source("document_qa", 3), Source("retrieval", 1), Source("last_word", 1)]
    cfg = GenerateConfig(sources=sources, n=1500, block_size=128, format=fmt)
    local = generate(cfg, tmp_path / "local")
    opts = generate_ray.RayGenerate(address=ray_head)
    seen: list[int] = []
    on_ray = generate(cfg, tmp_path / "ray", ray=opts, progress=lambda d, t: seen.append(d))
    data = DATA_FILES[fmt]
    assert (tmp_path / "ray" / data).read_bytes() == (tmp_path / "local" / data).read_bytes()
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == [data, "manifest.json"]
    assert on_ray["executor"] == "ray" and "executor" not in local
    assert on_ray["templates"] == local["templates"] and on_ray["bytes"] == local["bytes"]
    assert seen == sorted(seen) and seen[-1] == 1500
    assert dataset_io.read_manifest(tmp_path / "ray")["n"] == 1500
    assert not list(tmp_path.glob(".ray*")), "a temporary folder was left behind"
    if fmt == "jsonl":  # and the same through the command line
        argv = ["generate", "-t", "document_qa:3", "-t", "retrieval", "-t", "last_word"]
        argv += ["-n", "1500", "--out", str(tmp_path / "cli"), "--executor", "ray"]
        assert main([*argv, "--address", ray_head]) == 0
        assert "wrote 1500 samples" in capsys.readouterr().out
        cli = (tmp_path / "cli" / data).read_bytes()
        default = generate(GenerateConfig(sources=sources, n=1500), tmp_path / "default")
        assert default["n"] == 1500
        assert cli == (tmp_path / "default" / data).read_bytes()
