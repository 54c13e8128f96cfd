"""Fine-tuning: formatting, completion-only loss, a real LoRA run, resume, bad input.

Resume equivalence is checked to ``training.RESUME_RTOL`` (1e-4 relative) on CPU.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cookbook_core import dataset_io
from cookbook_core.errors import BadInput
from cookbook_core.train import training

FAST = dict(steps=4, batch_size=2, max_length=64, save_every=2, lr=1e-3, lora_r=4)


def _cfg(data: Path, **kw: object) -> training.TrainConfig:
    return training.TrainConfig(data=str(data), **{**FAST, **kw})  # type: ignore[arg-type]


def test_format_and_encode_mask_the_prompt(embedded_model: Path) -> None:
    from cookbook_core.train import models

    tok = models.load_tokenizer()
    text = training.format_prompt(tok, "Say hi")
    assert text.rstrip().endswith("<|im_start|>assistant")
    ex = training.encode_example(tok, "Say hi", "hello there", max_length=512)
    n_prompt = len(tok(text, add_special_tokens=False)["input_ids"])
    assert ex["labels"][:n_prompt] == [-100] * n_prompt
    assert ex["input_ids"][n_prompt:] == ex["labels"][n_prompt:]
    assert ex["input_ids"][-1] == tok.eos_token_id
    assert tok.decode(ex["input_ids"][n_prompt:-1]) == "hello there"
    cut = training.encode_example(tok, "word " * 300, "the answer", max_length=32)
    assert len(cut["input_ids"]) == 32 and tok.decode(cut["input_ids"][-3:-1]) == "the answer"


def test_natural_samples_are_mixed_in(
    embedded_model: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    from cookbook_core.train import models

    natural = tmp_path / "natural.jsonl"
    natural.write_text(
        "".join(
            json.dumps({"prompt": f"Name a colour ({i}).", "completion": "Blue."}) + "\n"
            for i in range(5)
        )
    )
    tok = models.load_tokenizer()
    base = training.build_examples(_cfg(tiny_dataset), tok)
    mixed = training.build_examples(_cfg(tiny_dataset, natural_data=str(natural), natural_n=3), tok)
    assert len(mixed) == len(base) + 3 and mixed[: len(base)] == base
    training.validate(_cfg(tiny_dataset, natural_data=str(natural)))


def test_split_by_length_covers_the_batch() -> None:
    import torch

    lengths = torch.tensor([5, 90, 12, 60, 61, 7])
    parts = training.split_by_length(lengths, 3)
    assert sorted(torch.cat(parts).tolist()) == list(range(6))
    assert [lengths[p].tolist() for p in parts] == [[5, 7], [12, 60], [61, 90]]
    assert 3 < len(training.split_by_length(lengths, 10)) <= 6
    assert len(training.split_by_length(torch.tensor([50, 52, 51, 50]), 4)) == 1  # not worth it


def test_sampler_is_deterministic_and_groups_by_length() -> None:
    lengths = [(i * 37) % 101 for i in range(64)]
    s = training.LengthGroupedSampler(lengths, batch_size=4, seed=3, mega=4)
    first = s.order(0)
    assert sorted(first) == list(range(64))
    assert first == training.LengthGroupedSampler(lengths, 4, 3, mega=4).order(0)
    assert first != s.order(1)
    grouped = sum(max(lengths[i] for i in first[k : k + 4]) for k in range(0, 64, 4))
    plain = training.LengthGroupedSampler(lengths, 4, 3, group=False).order(0)
    ungrouped = sum(max(lengths[i] for i in plain[k : k + 4]) for k in range(0, 64, 4))
    assert grouped < ungrouped  # less padding


def test_plain_order_is_the_trainer_default_order() -> None:
    """Ungrouped, our order is the permutation of transformers' default (accelerate's
    seedable) sampler with the same seed, so TRL/Trainer runs see the same batches."""
    from accelerate.data_loader import SeedableRandomSampler

    for seed in (0, 3):
        ref = SeedableRandomSampler(range(50), data_seed=seed)
        ours = training.LengthGroupedSampler([1] * 50, 8, seed, group=False)
        assert ours.order(0) == list(ref)  # first epoch
        assert ours.order(1) == list(ref)  # the reference advanced its epoch itself


def test_fast_loss_matches_the_model_loss(embedded_model: Path, tiny_dataset: Path) -> None:
    import torch

    cfg = _cfg(tiny_dataset)
    model, tok = training._build_model(cfg)
    model.eval()
    rows = list(dataset_io.iter_rows(tiny_dataset, limit=5))
    feats = [  # rows of different lengths, so the pieces differ in padding
        training.encode_example(tok, r["prompt"][: 20 + 15 * i], r["completion"], 64)
        for i, r in enumerate(rows)
    ]
    assert len({len(f["input_ids"]) for f in feats}) > 2
    batch = training.collate(feats, tok.pad_token_id)
    trainer_cls = training._make_trainer_class()
    with torch.no_grad():
        ref = float(model(**batch).loss)
        for pieces in (1, 2, 5):
            fake = type("T", (), {"tokens_seen": 0, "micro_batches": pieces})()
            fast = float(trainer_cls.compute_loss(fake, model, dict(batch)))
            assert abs(fast - ref) < 1e-4 * abs(ref), pieces


def test_lora_run_crash_resume_and_stop(
    embedded_model: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    cfg = _cfg(tiny_dataset, merge=True)
    seen: list[int] = []
    full = training.train(cfg, tmp_path / "full", progress=lambda s, t, info: seen.append(s))
    assert full["status"] == "completed" and full["step"] == 4 and seen == [1, 2, 3, 4]
    run = tmp_path / "full"
    assert training.config_from_dict(json.loads((run / "config.json").read_text())) == cfg
    metrics = training.read_metrics(run)
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert all(
        m["loss"] > 0 and m["tokens_per_s"] > 0 and "eta" in m and "lr" in m for m in metrics
    )
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert (run / "merged" / "model.safetensors").is_file()
    assert training.last_checkpoint(run) == run / "checkpoints" / "checkpoint-4"
    for f in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        assert (run / "checkpoints" / "checkpoint-2" / f).is_file()

    # A crash after the step-2 checkpoint: the checkpoint survives and resume matches.
    part = tmp_path / "part"

    def crash_at_3(step: int, total: int, info: dict[str, object]) -> None:
        if step == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        training.train(_cfg(tiny_dataset), part, progress=crash_at_3)
    assert training.last_checkpoint(part) == part / "checkpoints" / "checkpoint-2"
    resumed = training.train(_cfg(tiny_dataset), part, resume=True)
    assert resumed["status"] == "completed" and resumed["resumed_from"].endswith("checkpoint-2")
    assert [m["step"] for m in training.read_metrics(part)] == [1, 2, 3, 4]
    assert resumed["final_loss"] == pytest.approx(full["final_loss"], rel=training.RESUME_RTOL)

    # Stop on request (as a cancelled job does): a checkpoint at the current step, no outputs.
    stopped = training.train(_cfg(tiny_dataset), tmp_path / "stop", should_stop=lambda: True)
    assert stopped["status"] == "stopped" and stopped["step"] == 1
    assert not (tmp_path / "stop" / "adapter").exists()
    assert training.last_checkpoint(tmp_path / "stop") == tmp_path / "stop/checkpoints/checkpoint-1"


def test_load_trained_merged(embedded_model: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_dataset, steps=1, save_every=1, merge=True)
    training.train(cfg, tmp_path / "r")
    model, tok = training.load_trained(tmp_path / "r")
    assert model.config.model_type == "llama" and tok.chat_template


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(steps=0), "steps must be a positive integer"),
        (dict(steps=-3), "steps must be a positive integer"),
        (dict(lr=0.0), "learning rate must be > 0"),
        (dict(lr=-1e-4), "learning rate must be > 0"),
        (dict(batch_size=0), "batch_size"),
        (dict(method="qlora"), "method must be one of"),
        (dict(model="no/such-model-here"), "no/such-model-here"),
        (dict(model="/nonexistent/folder"), "unknown model"),
    ],
)
def test_bad_config_fails_before_work(
    tiny_dataset: Path, change: dict[str, object], message: str
) -> None:
    started = time.time()
    with pytest.raises(BadInput, match=message):
        training.train(_cfg(tiny_dataset, **change), Path("/nonexistent-run-dir"))
    assert time.time() - started < 5


def test_bad_datasets(tmp_path: Path) -> None:
    with pytest.raises(dataset_io.DatasetError, match="does not exist"):
        training.validate(_cfg(tmp_path / "missing"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(dataset_io.DatasetError, match="empty"):
        training.validate(_cfg(empty))
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(dataset_io.DatasetError, match="prompt"):
        training.validate(_cfg(wrong))


@pytest.mark.slow
def test_full_finetune_runs(embedded_model: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_dataset, method="full", steps=2, lr=1e-5, gradient_checkpointing=True)
    res = training.train(cfg, tmp_path / "f")
    assert res["status"] == "completed" and (tmp_path / "f" / "model" / "config.json").is_file()
