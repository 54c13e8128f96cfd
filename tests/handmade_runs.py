"""Evaluation runs and Cookbook-Mix cells written by hand, in the formats the library writes.

A run folder is what :func:`cookbook_core.eval.evaluation.evaluate` writes
(``summary.json`` with per-task metrics and bootstrap intervals, ``records/<task>.jsonl``);
a cell folder is what :func:`cookbook_core.mix.cells.run` writes (``cell.json``,
``train/config.json`` and ``train/adapter/adapter_config.json`` for a fine-tune, and
``evals/<settings key>/000/`` holding a run).  The records are chosen by the tests, so
what the comparison and the matrix must say about them is known exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cookbook_core.eval import scoring, tasks
from cookbook_core.mix import cells

CHOICES = [" a", " b", " c"]


def arc_record(
    example_id: str, pick: int, gold: int = 0, pick_norm: int | None = None
) -> dict[str, Any]:
    """A multiple-choice (arc_easy) record whose raw argmax is ``pick`` and whose
    length-normalized choice is ``pick_norm`` (default: the same)."""
    pick_norm = pick if pick_norm is None else pick_norm
    lls = [-5.0, -5.0, -5.0]
    lls[pick] = -1.0
    return {
        "id": example_id,
        "prompt": f"Question: {example_id}?\nAnswer:",
        "continuations": list(CHOICES),
        "loglikelihoods": lls,
        "is_greedy": [i == pick for i in range(3)],
        "n_tokens": [1, 1, 1],
        "gold": gold,
        "truncated": False,
        "scores": {
            "pred": pick,
            "acc": float(pick == gold),
            "pred_norm": pick_norm,
            "acc_norm": float(pick_norm == gold),
        },
    }


def squad_record(example_id: str, answer: str, golds: Sequence[str]) -> dict[str, Any]:
    """An extractive-QA (squad) record: the generation ``answer`` scored against ``golds``."""
    return {
        "id": example_id,
        "prompt": f"Context: ...\nQuestion: {example_id}?",
        "generation": answer,
        "finish": "stop",
        "n_tokens": 2,
        "prompt_truncated": False,
        "gold": list(golds),
        "scores": {
            "exact_match": scoring.max_over_golds(scoring.exact_match, answer, list(golds)),
            "f1": scoring.max_over_golds(scoring.token_f1, answer, list(golds)),
        },
    }


def em_record(example_id: str, pred: str, gold: str) -> dict[str, Any]:
    """An entity-matching (em_*) record: the parsed answer ``pred`` against ``gold``."""
    return {
        "id": example_id,
        "prompt": f"Entity A: ...\nEntity B: ...\n{example_id}?",
        "generation": pred.capitalize(),
        "finish": "stop",
        "n_tokens": 1,
        "prompt_truncated": False,
        "gold": gold.capitalize(),
        "scores": {"pred": pred, "gold": gold, "accuracy": float(pred == gold)},
    }


def write_run(
    run_dir: Path,
    records: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    adapter: str | None = None,
    created: str = "2026-01-01T00:00:00",
) -> Path:
    """A completed run folder with ``records`` (task -> records); each task's metrics are
    the means of the records' scores, with seeded bootstrap intervals."""
    (run_dir / "records").mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "run_id": run_dir.name,
        "status": "completed",
        "created": created,
        "model": "default",
        "model_display": "SmolLM2-135M-Instruct",
        "adapter": adapter,
        "tasks": {},
    }
    for task_name, recs in records.items():
        task = tasks.get(task_name)
        metrics = {}
        items = [r["scores"] for r in recs]
        for m in task.metrics:
            if task.is_mean(m):
                values = [float(i[task.metric(m).mean_of or m]) for i in items]
                lo, hi = scoring.bootstrap_mean_ci(values, n=200, seed=0)
            else:
                lo, hi = scoring.bootstrap_ci(items, task.aggregate(m), n=200, seed=0)
            metrics[m] = {"value": task.aggregate(m)(items), "ci95": [lo, hi]}
        summary["tasks"][task_name] = {
            "metrics": metrics,
            "n": len(recs),
            "method": task.method,
            "records": f"records/{task_name}.jsonl",
        }
        lines = "".join(json.dumps(r) + "\n" for r in recs)
        (run_dir / "records" / f"{task_name}.jsonl").write_text(lines)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def write_cell(
    spec: cells.CellSpec,
    settings: cells.EvalSettings,
    records: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    created: str = "2026-01-01T00:00:00",
) -> Path:
    """A finished cell folder where :func:`cells.cell_dir` looks for it: its spec, (for a
    fine-tune) a training config and adapter config, and one evaluation run."""
    cdir = cells.cell_dir(spec)
    cdir.mkdir(parents=True, exist_ok=True)
    (cdir / "cell.json").write_text(json.dumps(spec.to_dict()))
    adapter = None
    if not spec.is_base:
        train = cdir / "train"
        (train / "adapter").mkdir(parents=True, exist_ok=True)
        cfg = {"data": str(cdir / "dataset"), "model": spec.model, **spec.train}
        (train / "config.json").write_text(json.dumps(cfg))
        (train / "result.json").write_text(json.dumps({"status": "completed"}))
        (train / "adapter" / "adapter_config.json").write_text(
            json.dumps({"base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"})
        )
        adapter = str(train / "adapter")
    write_run(cdir / "evals" / settings.key() / "000", records, adapter=adapter, created=created)
    return cdir
