"""Evaluation runs: real rows through the embedded model, outputs, bad input, adapters, jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cookbook_core.cli.main import main
from cookbook_core.eval import evaluation
from cookbook_core.jobs import store as jobs


def test_real_evaluation_of_the_embedded_model(
    eval_backend: object, shared_data: Path, tmp_path: Path
) -> None:
    cfg = evaluation.EvalConfig(
        tasks=["squad", "arc_easy", "piqa"],
        data_dir=str(shared_data),
        limit=20,
        max_new_tokens=16,
    )
    summary = evaluation.evaluate(cfg, tmp_path / "run", backend=eval_backend)
    assert summary["status"] == "completed" and summary["backend"] == "transformers"
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["tasks"] == summary["tasks"]
    sq, arc, piqa = (summary["tasks"][t] for t in ("squad", "arc_easy", "piqa"))
    assert sq["prompt_format"] == "chat" and arc["prompt_format"] == "plain"
    assert set(sq["metrics"]) == {"exact_match", "f1"}
    assert set(arc["metrics"]) == set(piqa["metrics"]) == {"acc", "acc_norm"}
    for s in (sq, arc, piqa):
        assert s["n"] == 20 and s["examples_per_s"] > 0
        for m in s["metrics"].values():
            lo, hi = m["ci95"]
            assert 0.0 <= lo <= m["value"] <= hi <= 1.0
    # The 135M model is above chance on easy science questions, and finds some answers.
    assert sq["metrics"]["f1"]["value"] > 0.05
    records = evaluation.read_records(tmp_path / "run", "squad")
    r = records[0]
    assert r["prompt"].rstrip().endswith("<|im_start|>assistant")
    assert "Document: " in r["prompt"] and r["finish"] in ("eos", "stop", "length")
    assert r["gold"] and set(r["scores"]) == {"exact_match", "f1"}
    arc_records = evaluation.read_records(tmp_path / "run", "arc_easy")
    assert arc_records[0]["prompt"].startswith("Question: ")
    assert len(arc_records[0]["loglikelihoods"]) == len(arc_records[0]["continuations"]) == 4
    # Deterministic: the same request gives the same records and intervals.
    again = evaluation.evaluate(
        evaluation.EvalConfig(tasks=["arc_easy"], data_dir=str(shared_data), limit=20),
        tmp_path / "again",
        backend=eval_backend,
    )
    assert again["tasks"]["arc_easy"]["metrics"] == arc["metrics"]
    assert evaluation.read_records(tmp_path / "again", "arc_easy") == arc_records


def test_cli_bad_input_exits_2(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "--task", "hellaswg", "--data-dir", str(shared_data)]) == 2
    assert "did you mean 'hellaswag'" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"context": "c", "question": "q"}) + "\n")
    assert main(["eval", "--task", "squad", "--data", f"squad={bad}"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "line 1" in err and "'answers'" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["eval", "--task", "squad", "--data", f"squad={empty}"]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["eval"]) == 2
    assert main(["eval", "--list-tasks"]) == 0
    assert "gpt4all" in capsys.readouterr().out


def _fake_run(root: Path, model: str) -> Path:
    run = root / "run-x"
    (run / "adapter").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"data": "d", "model": model}))
    (run / "adapter" / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": model, "peft_type": "LORA"})
    )
    return run


def test_adapter_from_another_base_is_refused(embedded_model: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "config.json").write_text("{}")
    run = _fake_run(tmp_path, str(other))
    with pytest.raises(evaluation.AdapterMismatch, match="trained on base model"):
        evaluation.resolve_adapter(str(run), "default")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-0.5B"})
    )
    with pytest.raises(evaluation.AdapterMismatch, match="Qwen"):
        evaluation.resolve_adapter(str(bare), "default")
    assert main(["eval", "--task", "arc_easy", "--adapter", str(run)]) == 2
    with pytest.raises(evaluation.BadInput, match="not a training run id"):
        evaluation.resolve_adapter("no-such-run", "default")


def test_train_tiny_adapter_then_evaluate_it_as_a_job(
    embedded_model: Path, tiny_dataset: Path, shared_data: Path, tmp_path: Path
) -> None:
    from cookbook_core.train import training

    cfg = training.TrainConfig(
        data=str(tiny_dataset), steps=2, batch_size=2, max_length=64, save_every=2, lora_r=4
    )
    run = jobs.runs_root() / "tiny-lora-for-eval"
    result = training.train(cfg, run)
    assert result["status"] == "completed" and (run / "adapter").is_dir()
    assert (
        evaluation.resolve_adapter("tiny-lora-for-eval", "default") == (run / "adapter").resolve()
    )
    job = jobs.submit(
        "eval",
        evaluation.EvalConfig(
            tasks=["arc_easy", "squad"],
            adapter="tiny-lora-for-eval",
            data_dir=str(shared_data),
            limit=4,
            max_new_tokens=8,
        ).to_dict(),
    )
    job = jobs.wait(job.id, timeout=600)
    assert job.state == "succeeded", jobs.read_log(job.id, tail=30)
    summary = evaluation.read_summary(job.run_dir)
    assert summary["status"] == "completed"
    assert summary["adapter"] == str((run / "adapter").resolve())
    assert summary["tasks"]["arc_easy"]["n"] == 4 and summary["tasks"]["squad"]["n"] == 4
    result = jobs.read_result(job)
    assert result is not None and "acc" in result["metrics"]["arc_easy"]
    assert any(s["run_dir"] == str(job.run_dir) for s in evaluation.list_runs())
