"""Benchmark: an 8-cell tiny sweep on the local executor vs a local Ray cluster, and the
per-step / per-example costs that docs/SCALING.md scales up.

Usage: ``python benchmarks/scaling.py [--data-dir ../shared/data] [--skip-sweep]
[--skip-costs] [--json OUT]``.

* **Sweep** (``cookbook mix sweep`` in a fresh process each time, as a user runs it): base
  + 4 single-template cells + 3 Dirichlet mixtures = 8 cells, each 1 LoRA step of
  batch 2 on 3 rows and 3 BoolQ rows evaluated, in a fresh workspace per executor
  (the converted model cache shared):

  - ``local``: the default executor (the cells one after another in the command's
    process);
  - ``ray (own cluster)``: ``--executor ray`` with no address: the command starts a
    private local Ray cluster (2 CPUs), runs the cells as tasks, stops it;
  - ``ray (running cluster)``: ``--executor ray --address`` to a cluster started
    beforehand with ``ray start --head --num-cpus 2`` (its start is not counted).

  Reported: wall seconds of the command, seconds per cell, the mean task time of a cell
  on Ray (from each cell's ``ray.json``) and the Ray overhead per cell: wall minus the
  cells' task time spread over the 2 slots, per cell (driver, connection, scheduling,
  worker start).  The matrices of the three runs are compared (they must be equal).
* **Costs** (in this process, 2 threads): seconds per LoRA step of the embedded model at
  batch 8, max length 512 on template data (mean of steps 2-6, tokens counted), and
  seconds per evaluation example for a log-likelihood task (BoolQ) and a generation
  task (SQuAD), from their run summaries.

Numbers are measurements on a shared machine; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cookbook_core import threads  # noqa: E402 - after the path fix; imports nothing heavy

threads.configure_process()  # sleep-waiting OpenMP, as the cookbook command (before torch)

TEMPLATES = ["yes_no_qa", "multiple_choice_qa", "commonsense_selection", "last_word"]
COOKBOOK = [sys.executable, "-m", "cookbook_core.cli.main"]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workspace(root: Path, name: str, cache: Path) -> dict[str, str]:
    home = root / name
    home.mkdir()
    (home / "cache").symlink_to(cache, target_is_directory=True)
    env = {**os.environ, "COOKBOOK_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env["TRANSFORMERS_OFFLINE"] = "1"
    return env


def _sweep(env: dict[str, str], data_dir: str, extra: list[str]) -> float:
    argv = [*COOKBOOK, "mix", "sweep", "bench8", "--task", "boolq", "-n", "3", "--steps", "1"]
    argv += [f"--template={t}" for t in TEMPLATES]
    argv += ["--batch-size", "2", "--limit", "3", "--dirichlet", "3", "--data-dir", data_dir]
    t0 = time.time()
    subprocess.run([*argv, "--quiet", *extra], env=env, check=True, capture_output=True)
    return time.time() - t0


def _cell_stats(home: Path) -> tuple[int, list[float]]:
    dirs = [d for d in (home / "cells").iterdir() if d.is_dir()]
    secs = []
    for d in dirs:
        f = d / "ray.json"
        if f.is_file():
            secs.append(float(json.loads(f.read_text()).get("seconds") or 0))
    return len(dirs), secs


def _matrix(home: Path) -> str:
    return (home / "mixing" / "bench8.csv").read_text()


def sweep_bench(data_dir: str, cache: Path) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="scal", dir="/tmp"))
    out: dict[str, Any] = {"load_before": _load()}
    try:
        env = _workspace(root, "local", cache)
        wall = _sweep(env, data_dir, [])
        n, _ = _cell_stats(root / "local")
        out["local"] = {"wall_s": round(wall, 1), "cells": n, "per_cell_s": round(wall / n, 2)}
        print(f"local: {wall:.1f} s for {n} cells (load {_load()})", flush=True)

        env = _workspace(root, "ray_own", cache)
        wall = _sweep(env, data_dir, ["--executor", "ray"])
        n, secs = _cell_stats(root / "ray_own")
        out["ray_own_cluster"] = _ray_row(wall, n, secs)
        print(f"ray (own cluster): {out['ray_own_cluster']} (load {_load()})", flush=True)

        temp = tempfile.mkdtemp(prefix="rayb", dir="/tmp")
        port = _free_port()
        head_env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block"]
        cmd += ["--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2"]
        cmd += ["--num-gpus=0", f"--temp-dir={temp}", "--include-dashboard=false"]
        cmd += ["--disable-usage-stats", f"--dashboard-agent-listen-port={_free_port()}"]
        t0 = time.time()
        head = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=head_env,
        )
        try:
            while True:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.2)
            out["ray_start_s"] = round(time.time() - t0, 1)
            env = _workspace(root, "ray_running", cache)
            env["RAY_AUTH_MODE"] = "disabled"
            wall = _sweep(env, data_dir, ["--executor", "ray", "--address", f"127.0.0.1:{port}"])
            n, secs = _cell_stats(root / "ray_running")
            out["ray_running_cluster"] = _ray_row(wall, n, secs)
            print(f"ray (running cluster): {out['ray_running_cluster']}", flush=True)
        finally:
            os.killpg(head.pid, signal.SIGTERM)
            try:
                head.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
                head.wait(timeout=30)
            shutil.rmtree(temp, ignore_errors=True)
        mats = {_matrix(root / n) for n in ("local", "ray_own", "ray_running")}
        out["matrices_equal"] = len(mats) == 1
        out["load_after"] = _load()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def _ray_row(wall: float, n: int, secs: list[float]) -> dict[str, Any]:
    task = sum(secs) / len(secs) if secs else float("nan")
    overhead = (wall - sum(secs) / 2) / n
    return {
        "wall_s": round(wall, 1),
        "cells": n,
        "per_cell_s": round(wall / n, 2),
        "task_mean_s": round(task, 2),
        "overhead_per_cell_s": round(overhead, 2),
    }


def costs(data_dir: str) -> dict[str, Any]:
    """Per-step and per-example costs of the embedded model on this machine."""
    import torch

    from cookbook_core.eval import evaluation
    from cookbook_core.generate import GenerateConfig, Source, generate
    from cookbook_core.train import training

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="cost", dir="/tmp"))
    out: dict[str, Any] = {"load_before": _load(), "threads": 2}
    try:
        data = work / "data"
        srcs = [Source(t) for t in TEMPLATES]
        generate(GenerateConfig(sources=srcs, n=256, seed=0), data)
        cfg = training.TrainConfig(data=str(data), steps=6, batch_size=8, max_length=512)
        training.train(cfg, work / "run")
        m = training.read_metrics(work / "run")
        steps = m[1:]  # step 1 includes warm-up
        dt = (steps[-1]["elapsed"] - m[0]["elapsed"]) / len(steps)
        tokens = (steps[-1]["tokens"] - m[0]["tokens"]) / len(steps)
        out["train"] = {
            "s_per_step": round(dt, 3),
            "tokens_per_step": round(tokens),
            "batch": 8,
            "max_length": 512,
        }
        print(f"train: {out['train']}", flush=True)
        for task, limit in (("boolq", 40), ("squad", 20)):
            ecfg = evaluation.EvalConfig(tasks=[task], limit=limit, data_dir=data_dir)
            summary = evaluation.evaluate(ecfg, work / f"eval-{task}")
            secs = float(summary.get("seconds") or 0)
            out[f"eval_{task}"] = {"rows": limit, "s_per_example": round(secs / limit, 3)}
            print(f"eval {task}: {out[f'eval_{task}']}", flush=True)
        out["load_after"] = _load()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--skip-sweep", action="store_true")
    p.add_argument("--skip-costs", action="store_true")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args()
    from cookbook_core.train import models

    cache = models.ensure_embedded().parent.parent  # <home>/cache: the converted model
    result: dict[str, Any] = {"cpus": os.cpu_count()}
    if not args.skip_sweep:
        result["sweep"] = sweep_bench(args.data_dir, cache)
    if not args.skip_costs:
        result["costs"] = costs(args.data_dir)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
