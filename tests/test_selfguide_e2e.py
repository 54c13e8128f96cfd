"""SELF-GUIDE end to end with the embedded model on real tasks from the shared pack:
one classification task (task738) and one generation task (task1345), tiny budgets.

The tiny runs come from the ``selfguide_tiny_run`` fixture (tests/conftest.py), shared with
the page test: the pipeline runs once per task per session, in whichever test comes first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cookbook_core import dataset_io
from cookbook_core.errors import BadInput
from cookbook_core.jobs import store as jobs
from cookbook_core.selfguide import pipeline as selfguide
from cookbook_core.train import training


def _check_run(run_dir: Path, family: str) -> dict[str, Any]:
    tiny = json.loads((run_dir / "config.json").read_text())  # the budgets it ran with
    state = selfguide.read_state(run_dir)
    assert state["completed"] == list(selfguide.STAGES)
    raw = selfguide.read_jsonl(run_dir / "inputs_raw.jsonl")
    kept = selfguide.read_jsonl(run_dir / "inputs_kept.jsonl")
    outs = selfguide.read_jsonl(run_dir / "outputs_raw.jsonl")
    pairs = selfguide.read_jsonl(run_dir / "pairs.jsonl")
    assert len(raw) == tiny["n_inputs"]
    assert len(kept) == sum(r["kept"] for r in raw) == len(outs)
    assert all(len(o["samples"]) == tiny["n_outputs"] for o in outs)
    assert 1 <= len(pairs) <= len(outs)
    # the funnel adds up stage by stage, from generated to trained
    funnel = selfguide.read_funnel(run_dir)["stages"]
    assert funnel[0]["stage"] == "generated" and funnel[0]["entered"] == len(raw)
    for a, b in zip(funnel[1:], funnel[2:], strict=False):
        if b["stage"] not in ("balance", "trained"):
            assert b["entered"] == a["kept"], (a, b)
    by_stage = {s["stage"]: s for s in funnel}
    assert by_stage["duplicate"]["kept"] == len(kept)
    assert by_stage["trained"]["entered"] == len(pairs)
    # training saw exactly the pairs, with the evaluation prompt
    rows = list(dataset_io.iter_rows(run_dir / "dataset"))
    assert [r["completion"] for r in rows] == [p["completion"] for p in pairs]
    manifest = dataset_io.read_manifest(run_dir / "dataset")
    assert manifest["n"] == len(pairs) and manifest["templates"][0]["name"].startswith("selfguide:")
    task = selfguide.load_task(json.loads((run_dir / "config.json").read_text())["task"])
    assert rows[0]["prompt"] == selfguide.task_prompt(task, pairs[0]["meta"]["input"])
    assert training.read_metrics(run_dir / "train")[-1]["step"] == tiny["steps"]
    assert (run_dir / "train" / "adapter").is_dir()
    # per-example evaluation of both models on the same rows
    base = selfguide.read_jsonl(run_dir / "eval_baseline.jsonl")
    tuned = selfguide.read_jsonl(run_dir / "eval_finetuned.jsonl")
    assert [r["id"] for r in base] == [r["id"] for r in tuned] and len(base) == tiny["eval_limit"]
    ev = selfguide.read_eval(run_dir)
    metrics = ["exact_match"] if family == "classification" else ["rouge_l", "rouge_l_chars"]
    for which, recs in (("baseline", base), ("finetuned", tuned)):
        for m in metrics:
            mean = sum(r["scores"][m] for r in recs) / len(recs)
            assert ev[which][m]["value"] == pytest.approx(mean)
            assert 0.0 <= mean <= 1.0
    return {"pairs": pairs, "outs": outs, "ev": ev}


@pytest.mark.slow
def test_classification_task_end_to_end(
    selfguide_tiny_run: Callable[[str], Path], eval_backend: Any
) -> None:
    run_dir = selfguide_tiny_run("task738")
    got = _check_run(run_dir, "classification")
    labels = {"support", "undermine"}
    assert {p["completion"] for p in got["pairs"]} <= labels  # exact labels only
    counts: dict[str, int] = {}
    for p in got["pairs"]:
        counts[p["completion"]] = counts.get(p["completion"], 0) + 1
    assert len(set(counts.values())) == 1  # balanced
    for o in got["outs"]:
        assert o["answer"] is None or o["answer"] in labels
    # resuming a completed run does nothing and changes nothing
    before = (run_dir / "pairs.jsonl").read_text()
    cfg = selfguide.config_from_dict(json.loads((run_dir / "config.json").read_text()))
    result = selfguide.run(cfg, run_dir, backend=eval_backend)
    assert result["status"] == "completed" and result["seconds"] < 5
    assert (run_dir / "pairs.jsonl").read_text() == before


@pytest.mark.slow
def test_generation_task_end_to_end(selfguide_tiny_run: Callable[[str], Path]) -> None:
    run_dir = selfguide_tiny_run("task1345")
    got = _check_run(run_dir, "generation")
    assert all(p["completion"].strip() for p in got["pairs"])
    assert "rouge_l_chars" in got["ev"]["finetuned"]


@pytest.mark.slow
def test_stop_then_continue_and_empty_vote(
    selfguide_tiny_config: Callable[..., Any], eval_backend: Any, tmp_path: Path
) -> None:
    """A run stopped after its first stage continues from there; a vote that keeps
    nothing (min share 100% of 3 samples at temperature 5) fails with the funnel."""
    cfg = selfguide_tiny_config(
        "task1345",
        # a seed whose inputs partly pass the input filters (the vote is what must fail);
        # sampled text depends on the seed and on how the backend batches rows
        seed=3,
        n_inputs=3,
        round_size=3,
        n_outputs=3,
        output_temperature=5.0,
        output_top_k=0,
        min_share=1.0,
    )
    seen: list[str] = []

    def progress(stage: str, done: int, total: int, **info: Any) -> None:
        seen.append(stage)

    result = selfguide.run(
        cfg,
        tmp_path,
        backend=eval_backend,
        progress=progress,
        should_stop=lambda: "outputs" in seen,
    )
    assert result["status"] == "stopped" and result["completed"] == ["inputs"]
    raw_before = (tmp_path / "inputs_raw.jsonl").read_text()
    with pytest.raises(selfguide.EmptyVote, match="shows where everything was dropped") as exc:
        selfguide.run(cfg, tmp_path, backend=eval_backend)
    assert (tmp_path / "inputs_raw.jsonl").read_text() == raw_before  # not generated again
    assert "vote_majority" in str(exc.value)
    funnel = selfguide.read_funnel(tmp_path)
    assert funnel["stages"][-1]["kept"] == 0
    assert funnel["vote_reasons"].get("kept", 0) == 0
    assert not (tmp_path / "pairs.jsonl").exists()
    # a different config on the same folder is refused
    with pytest.raises(BadInput, match="other settings"):
        selfguide.run(selfguide_tiny_config("task1345", seed=2), tmp_path)


def test_bad_requests_fail_before_any_model_loads(
    shared_data: Path, selfguide_tiny_config: Callable[..., Any]
) -> None:
    tiny_config = selfguide_tiny_config
    with pytest.raises(BadInput, match="n_inputs must be a positive integer"):
        selfguide.validate(tiny_config("task738", n_inputs=0))
    with pytest.raises(BadInput, match="min_share"):
        selfguide.validate(tiny_config("task738", min_share=1.5))
    with pytest.raises(BadInput, match="no validation rows"):
        selfguide.validate(tiny_config("task1345", eval_split="validation"))
    with pytest.raises(BadInput, match="did you mean 'task1345'"):
        selfguide.validate(tiny_config("task1345x"))
    cfg = selfguide.validate(selfguide.SelfGuideConfig(task="task738", data_dir=str(shared_data)))
    assert cfg.input_temperature == 0.7 and cfg.input_length_filter is True
    assert cfg.output_length_filter is False
    cfg = selfguide.validate(selfguide.SelfGuideConfig(task="task1345", data_dir=str(shared_data)))
    assert cfg.input_temperature == 0.9 and cfg.output_length_filter is True
    with pytest.raises(BadInput, match="unknown SELF-GUIDE option"):
        jobs.submit("selfguide", {"task": "task738", "bogus": 1})
    kind = jobs.get_kind("selfguide")
    assert kind.resumable and kind.runner == "cookbook_core.selfguide.pipeline:run_job"


@pytest.mark.slow  # runs the tiny pipeline when no earlier test did
def test_cli_run_show_and_list(
    shared_data: Path, selfguide_tiny_run: Callable[[str], Path], capsys: Any
) -> None:
    from cookbook_core.cli import main as cli

    run_dir = selfguide_tiny_run("task1345")
    assert cli.main(["selfguide", "show", str(run_dir), "--examples", "1"]) == 0
    out = capsys.readouterr().out
    assert "generated" in out and "trained" in out and "rouge_l" in out and "output:" in out
    assert cli.main(["selfguide", "list"]) == 0
    assert "tiny-task1345" in capsys.readouterr().out
    assert cli.main(["selfguide", "run", "--task", "task9999", "--data-dir", str(shared_data)]) == 2
    assert "unknown SELF-GUIDE task" in capsys.readouterr().err


def test_backend_sampling_is_seeded_and_returns_n_per_prompt(eval_backend: Any) -> None:
    from cookbook_core.eval.inference import Sampling

    prompts = ["Name a colour:", "Name a fruit:"]
    s = Sampling(temperature=1.0, top_k=40, n=3, seed=5)
    a = eval_backend.sample(prompts, sampling=s, max_new_tokens=6)
    b = eval_backend.sample(prompts, sampling=s, max_new_tokens=6)
    assert [len(r) for r in a] == [3, 3]
    assert [[g.text for g in r] for r in a] == [[g.text for g in r] for r in b]
    assert all(g.n_tokens <= 6 for r in a for g in r)
    with pytest.raises(BadInput, match="temperature must be > 0"):
        eval_backend.sample(prompts, sampling=Sampling(temperature=0.0), max_new_tokens=4)


def test_chunks_of_equal_prompts_draw_different_samples(
    eval_backend: Any, selfguide_tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    """The first round of inputs sends one prompt ``n_inputs`` times, in chunks of
    ``CHUNK`` calls; each chunk must get its own seed, or every chunk repeats the first
    (a served run once kept 1 of 16 inputs that way), and the whole stays reproducible."""
    from cookbook_core.eval.inference import Sampling

    cfg = selfguide_tiny_config("task1345")
    runner = selfguide._Runner(cfg, tmp_path, eval_backend, None, None)
    n = 2 * selfguide.CHUNK
    s = Sampling(temperature=1.0, top_k=40, n=1, seed=3)
    first = runner.sample("inputs", ["Write one short question:"] * n, s, 8, n, 0)
    again = runner.sample("inputs", ["Write one short question:"] * n, s, 8, n, 0)
    texts = [r[0].text for r in first]
    assert texts == [r[0].text for r in again]
    assert texts[: selfguide.CHUNK] != texts[selfguide.CHUNK :], texts


def test_derived_seeds_are_distinct_31_bit_and_stable() -> None:
    from cookbook_core.eval.backends.base import derive_seed

    seeds = {derive_seed(s, i) for s in range(60) for i in range(60)}
    assert len(seeds) == 3600 and all(0 <= x < 2**31 for x in seeds)
    assert derive_seed(7, 3) == derive_seed(7, 3) != derive_seed(8, 2)
