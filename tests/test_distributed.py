"""Multi-process training: ``nproc=2`` through torchrun with the gloo backend on CPU.

Two ranks with the global batch of 8 (4 rows each) must give the same per-step loss as
one process with a batch of 8 (within 1e-3 relative; LoRA dropout off, since each
rank draws its own dropout masks), and a run cut after its step-2 checkpoint resumes
on two ranks to the same losses.  ``cookbook train --nproc 2`` parses to such a config.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cookbook_core.errors import BadInput
from cookbook_core.train import distributed, training

DDP = dict(steps=4, batch_size=8, max_length=64, save_every=2, lr=1e-3, lora_r=4, lora_dropout=0.0)
DDP_RTOL = 1e-3


def _losses(run: Path) -> list[float]:
    return [m["loss"] for m in training.read_metrics(run)]


def test_nproc_checks_and_command(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="multiple of nproc"):
        distributed.check(3, 8)
    distributed.check(2, 8)
    cmd = distributed.command(tmp_path, 2, resume=True)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert "--nproc-per-node=2" in cmd and cmd[-2:] == [str(tmp_path), "--resume"]
    assert not distributed.is_rank() and distributed.world_size() == 1


def test_cli_train_nproc_flag(tiny_dataset: Path) -> None:
    from cookbook_core.cli.jobs import _train_config
    from cookbook_core.cli.main import build_parser

    args = build_parser().parse_args(
        ["train", "--data", str(tiny_dataset), "--nproc", "2", "--batch-size", "8"]
    )
    cfg = _train_config(args)
    assert cfg["nproc"] == 2 and cfg["batch_size"] == 8
    training.validate_job(cfg)
    with pytest.raises(BadInput, match="multiple of nproc"):
        training.validate_job({**cfg, "batch_size": 3})


@pytest.mark.slow
def test_two_ranks_match_one_process_and_resume(
    embedded_model: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    one = training.train(training.TrainConfig(data=str(tiny_dataset), **DDP), tmp_path / "one")
    assert one["status"] == "completed" and "nproc" not in one

    seen: list[int] = []
    cfg2 = training.TrainConfig(data=str(tiny_dataset), nproc=2, **DDP)
    two = training.train(cfg2, tmp_path / "two", progress=lambda s, t, info: seen.append(s))
    assert two["status"] == "completed" and two["nproc"] == 2 and two["step"] == 4
    assert seen == [1, 2, 3, 4]
    run = tmp_path / "two"
    assert [m["step"] for m in training.read_metrics(run)] == [1, 2, 3, 4]
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    ckpt2 = run / "checkpoints" / "checkpoint-2"
    assert (ckpt2 / "rng_state_0.pth").is_file() and (ckpt2 / "rng_state_1.pth").is_file()
    assert not (run / distributed.STOP_FILE).exists()
    pairs = list(zip(_losses(tmp_path / "one"), _losses(run), strict=True))
    worst = max(abs(b - a) / abs(a) for a, b in pairs)
    print(f"per-step losses, 1 process vs 2 ranks: {pairs}; worst relative gap {worst:.2e}")
    assert worst <= DDP_RTOL

    # A crash after the step-2 checkpoint: two ranks resume and reach the same losses.
    part = tmp_path / "part"
    shutil.copytree(run, part)
    for name in ("checkpoints/checkpoint-4", "adapter", "result.json"):
        shutil.rmtree(part / name) if (part / name).is_dir() else (part / name).unlink()
    lines = (part / "metrics.jsonl").read_text().splitlines()
    (part / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n")  # step 3 half-logged
    resumed = training.train(cfg2, part, resume=True)
    assert resumed["status"] == "completed" and resumed["resumed_from"].endswith("checkpoint-2")
    assert [m["step"] for m in training.read_metrics(part)] == [1, 2, 3, 4]
    for a, b in zip(_losses(run), _losses(part), strict=True):
        assert b == pytest.approx(a, rel=training.RESUME_RTOL)
    assert json.loads((part / "result.json").read_text())["nproc"] == 2


@pytest.mark.slow
def test_two_ranks_stop_together_with_a_checkpoint(
    embedded_model: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    """A stop request (a cancelled job) reaches every rank after the same step: a
    checkpoint, no adapter, status ``stopped``; resuming on two ranks finishes the run."""
    cfg = training.TrainConfig(data=str(tiny_dataset), nproc=2, **DDP)
    run = tmp_path / "stop"
    stopped = training.train(cfg, run, should_stop=lambda: True)
    assert stopped["status"] == "stopped" and stopped["step"] == 1
    assert training.last_checkpoint(run) == run / "checkpoints" / "checkpoint-1"
    assert not (run / "adapter").exists() and not (run / distributed.STOP_FILE).exists()
    done = training.train(cfg, run, resume=True)
    assert done["status"] == "completed" and done["step"] == 4
    assert done["resumed_from"].endswith("checkpoint-1")
    assert [m["step"] for m in training.read_metrics(run)] == [1, 2, 3, 4]
