"""Multi-process (DDP) training: a run with ``nproc > 1`` is launched through torchrun.

:func:`cookbook_core.train.training.train` hands a config with ``nproc > 1`` to
:func:`launch`, which starts ``python -m torch.distributed.run --standalone
--nproc-per-node N -m cookbook_core.train.distributed RUN_DIR`` in its own process
group.  Every rank runs the ordinary :func:`~cookbook_core.train.training.train` on the
same saved ``config.json``; the Hugging Face ``Trainer`` (through accelerate) wraps the
model in ``DistributedDataParallel`` with the ``gloo`` backend on CPU and ``nccl`` on
CUDA (one GPU per rank, so the same command uses every GPU of a node).

* **Same batches, same loss.** ``batch_size`` stays the *global* batch: each rank
  gets ``batch_size / nproc`` rows, and accelerate deals the sampler's batches out so
  that one optimizer step sees exactly the rows a single process would.  The loss is
  normalised by the completion tokens of the whole global batch, so per-step losses
  match a single-process run (``tests/test_distributed.py``: within 1e-3 relative on
  CPU, with ``lora_dropout=0``; dropout masks are drawn per rank, so with dropout the
  runs agree only statistically).
* **One writer.** Rank 0 writes ``metrics.jsonl``, checkpoints, the adapter and
  ``result.json``; each rank saves its own RNG state in the checkpoint, so resuming
  with the same ``nproc`` continues exactly.
* **Progress and stopping.** The launcher follows ``metrics.jsonl`` for progress.  A
  stop request (a cancelled job, Ctrl-C) touches ``RUN_DIR/ddp-stop``; the ranks
  agree on it with an all-reduce after every step, write a checkpoint and return
  ``stopped``, so no rank is left waiting in a collective.  Ranks also stop (with a
  checkpoint) when the launching process has died.
* **Threads.** The launcher splits its CPU thread budget (``OMP_NUM_THREADS`` or the
  cores it may use) between the ranks.

What it does not do: span several machines (``torchrun --nnodes`` with a shared run
folder would, but nothing here starts or tests it), pick the backend by hand, or
change the single-process path (``nproc == 1`` never comes here).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cookbook_core import threads

OWNER_ENV = "COOKBOOK_DDP_OWNER"  # pid of the launching process, set for the ranks
STOP_FILE = "ddp-stop"  # touched in the run folder to ask every rank to stop
POLL_S = 0.5
STOP_GRACE_S = 120.0  # how long a stopping run may take to checkpoint before it is killed

Progress = Callable[[int, int, dict[str, Any]], None]


def world_size() -> int:
    """Processes in this run (1 outside torchrun)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))


def rank() -> int:
    """This process's global rank (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0") or 0)


def is_rank() -> bool:
    """True inside a rank started by :func:`launch` (so ``train`` must not launch again)."""
    return OWNER_ENV in os.environ and "LOCAL_RANK" in os.environ


def is_main() -> bool:
    """True in the process that writes the run's files (rank 0, or a single process)."""
    return rank() == 0


def check(nproc: int, batch_size: int) -> None:
    """Raise ``BadInput`` when ``nproc`` processes cannot share the run."""
    from cookbook_core.train.config import TrainConfigError

    if nproc < 1:
        raise TrainConfigError(f"nproc must be a positive integer, got {nproc}")
    if nproc > 1 and batch_size % nproc:
        raise TrainConfigError(
            f"batch size {batch_size} must be a multiple of nproc {nproc} "
            "(the batch is the global one, split evenly across the processes)"
        )


def _gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0


def sum_across(value: int) -> int:
    """``value`` summed over the ranks (itself outside a distributed run).  Collective:
    every rank must call it at the same point."""
    if world_size() == 1:
        return value
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.long, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(t.item())


def _device() -> str:
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return f"cuda:{torch.cuda.current_device()}"
    return "cpu"


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def collective_stop(run_dir: Path, inner: Callable[[], bool] | None = None) -> Callable[[], bool]:
    """A ``should_stop`` for the ranks: True on every rank as soon as any rank sees the
    stop file, a dead launcher, or ``inner()`` (an all-reduce of the flag)."""
    stop_file = Path(run_dir) / STOP_FILE
    owner = int(os.environ.get(OWNER_ENV, "0") or 0)

    def should_stop() -> bool:
        local = stop_file.exists() or (owner > 0 and not _owner_alive(owner))
        if inner is not None and inner():
            local = True
        return sum_across(int(local)) > 0

    return should_stop


def _rank_env(nproc: int) -> dict[str, str]:
    env = dict(os.environ)
    budget = int(env.get("OMP_NUM_THREADS") or 0) or threads.cpu_count()
    env["OMP_NUM_THREADS"] = str(max(1, budget // nproc))
    env.setdefault("OMP_WAIT_POLICY", threads.WAIT_POLICY)
    env[OWNER_ENV] = str(os.getpid())
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def command(run_dir: Path, nproc: int, *, resume: bool) -> list[str]:
    """The torchrun command line that runs ``run_dir``'s saved config on ``nproc`` ranks."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # one node, a free local port for the rendezvous
        f"--nproc-per-node={nproc}",
        "-m",
        "cookbook_core.train.distributed",
        str(run_dir),
    ]
    return cmd + (["--resume"] if resume else [])


def _report(run_dir: Path, seen: int, total: int, progress: Progress | None) -> int:
    from cookbook_core.train import training

    if progress is None:
        return seen
    for rec in training.read_metrics(run_dir):
        step = int(rec.get("step", 0))
        if step > seen:
            progress(step, total, rec)
            seen = step
    return seen


def _end(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Wait up to ``grace`` seconds, then SIGTERM and SIGKILL the rank group."""
    try:
        proc.wait(timeout=grace)
        return
    except subprocess.TimeoutExpired:
        pass
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 15.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def launch(
    cfg: Any,
    run_dir: Path | str,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run ``cfg`` (a ``TrainConfig`` with ``nproc > 1``) on ``cfg.nproc`` local ranks and
    return rank 0's result (``training.train``'s summary, plus ``nproc``)."""
    import json

    from cookbook_core.train import training

    nproc = int(cfg.nproc)
    check(nproc, cfg.batch_size)
    gpus = _gpus()
    if gpus and nproc > gpus:
        raise training.TrainConfigError(f"nproc {nproc} is more than the {gpus} visible GPU(s)")
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    training.save_config(cfg, run_dir)
    stop_file = run_dir / STOP_FILE
    stop_file.unlink(missing_ok=True)
    (run_dir / "result.json").unlink(missing_ok=True)  # never read a stale result as ours
    seen = 0
    if resume and (ckpt := training.last_checkpoint(run_dir)) is not None:
        seen = json.loads((ckpt / "trainer_state.json").read_text())["global_step"]
    proc = subprocess.Popen(
        command(run_dir, nproc, resume=resume),
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a SIGTERM to our group reaches us, not the ranks
        env=_rank_env(nproc),
        cwd=str(run_dir),
    )
    try:
        while proc.poll() is None:
            time.sleep(POLL_S)
            seen = _report(run_dir, seen, cfg.steps, progress)
            if should_stop is not None and not stop_file.exists() and should_stop():
                stop_file.touch()
    except BaseException:  # Ctrl-C, a cancelled job: ask for a checkpoint, then end the ranks
        stop_file.touch()
        _end(proc, STOP_GRACE_S)
        raise
    finally:
        if proc.poll() is None:
            _end(proc, 0)
    _report(run_dir, seen, cfg.steps, progress)
    stop_file.unlink(missing_ok=True)
    result_file = run_dir / "result.json"
    if proc.returncode != 0 or not result_file.is_file():
        raise training.TrainingError(
            f"distributed training ({nproc} processes) exited with code {proc.returncode}; "
            "the ranks' errors are in the log above; earlier checkpoints are kept"
        )
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result


def main(argv: list[str] | None = None) -> int:
    """One rank: ``python -m cookbook_core.train.distributed RUN_DIR [--resume]`` (torchrun
    starts it; see :func:`command`)."""
    import json

    from cookbook_core.train import training

    p = argparse.ArgumentParser(prog="cookbook_core.train.distributed")
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir)
    cfg = training.config_from_dict(json.loads((run_dir / "config.json").read_text()))
    res = training.train(cfg, run_dir, resume=args.resume, should_stop=collective_stop(run_dir))
    if is_main():
        print(f"rank 0: {res['status']} at step {res['step']}", flush=True)
    _leave_group()
    return 0


def _leave_group() -> None:
    """Wait for every rank (rank 0 may still be writing the adapter), then take the process
    group down.  A rank that exits while the group is up can abort in gloo's teardown
    ("terminate called without an active exception", SIGABRT), failing a finished run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
