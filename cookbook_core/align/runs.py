"""Alignment over evaluation runs: per-example records and the statistics the paper uses.

Joins a template's rule verdicts (:mod:`cookbook_core.align.alignment`) on a task's real
rows with an evaluation run's per-example records (:mod:`cookbook_core.eval.evaluation`)
to say, per example, whether the gold answer agrees with the rule, whether the
model's answer follows the rule, and whether the model was right.  From those:

* per (task, template, run): gold alignment, generation alignment, accuracy, and
  accuracy on the aligned and the unaligned subsets;
* across runs against a base run: the change in generation alignment against the
  change in accuracy, with their correlation and a bootstrap interval.

The model's answer is its generation for generation tasks, its highest
log-likelihood choice for multiple-choice log-likelihood tasks, and for cloze tasks
(LAMBADA, one gold continuation) the first word of the greedy continuation that
evaluation records, since the gold word's log-likelihood only says whether the
model's answer is the gold word.  :func:`runs_table` lists every evaluation run of a
task in the workspace.  This module reads runs; it never runs a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cookbook_core.align import alignment
from cookbook_core.errors import BadInput
from cookbook_core.eval import tasks

PRIMARY_METRICS = ("exact_match", "acc", "accuracy", "f1")


CLOZE_FAMILIES = ("cloze_last_word",)


class MissingEvaluation(BadInput):
    """The run has no records for the task: evaluate it first."""


class MissingGreedy(MissingEvaluation):
    """A cloze run's records predate recording the greedy continuation."""


def resolve_run(run: str | Path) -> Path:
    """A run folder from a path or a run id (as listed by ``cookbook eval``/jobs)."""
    from cookbook_core.eval import evaluation

    path = Path(run)
    if (path / "summary.json").is_file():
        return path
    for s in evaluation.list_runs():
        if s.get("run_id") == str(run) or Path(s["run_dir"]).name == str(run):
            return Path(s["run_dir"])
    raise MissingEvaluation(f"no evaluation run {run!r}: run `cookbook eval ...` first")


def primary(scores: Mapping[str, Any]) -> float:
    """The example's main correctness score (exact match, else acc)."""
    for key in PRIMARY_METRICS:
        if key in scores and scores[key] is not None:
            return float(scores[key])
    if not scores:
        raise BadInput("record has no scores")
    return float(next(iter(scores.values())))


def model_answer(record: Mapping[str, Any], family: str) -> Any:
    """What the model answered: generation text, chosen index, or chosen label.

    For cloze rows (LAMBADA) it is the first word of the model's recorded greedy
    continuation: the log-likelihood of the single gold continuation says only
    whether the greedy answer is the gold word, so the argmax over "choices" would
    always be the gold word.  Records without it cannot say what the model answered.
    """
    if "generation" in record:
        return record["generation"]
    if family in CLOZE_FAMILIES:
        text = record.get("greedy_continuation")
        if text is None:
            raise MissingGreedy(
                f"record {record.get('id')} has no greedy continuation (evaluated before "
                "cloze runs recorded one): the model's answer is unknown"
            )
        words = alignment.tokenize(str(text))
        return words[0].text if words else ""
    lls = record.get("loglikelihoods")
    if not lls:
        raise BadInput(f"record {record.get('id')} has neither a generation nor log-likelihoods")
    best = int(np.argmax(lls))
    if family == "multiple_choice":
        return best
    return str(record["continuations"][best]).strip()


def gold_alignment(
    template: str,
    task_name: str,
    source: str | Path | None = None,
    *,
    limit: int | None = None,
    params: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], list[alignment.Verdict]]:
    """The task's rows and the template's verdict on each (no model needed)."""
    task = tasks.get(task_name)
    if source is not None and Path(source).is_dir() and Path(source).name == task.folder:
        source = Path(source).parent  # a run records the set's own folder
    rows = tasks.load(task, source, limit=limit).rows
    if not rows:
        raise BadInput(f"task {task_name} has no rows")
    alignment.rule(template, rows[0]["task"])  # clear error if the rule does not apply
    return rows, alignment.apply_rule(template, rows, params)


def run_frame(
    template: str,
    task_name: str,
    run: str | Path,
    *,
    params: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Per-example alignment records of one run on one task."""
    from cookbook_core.eval import evaluation

    run_dir = resolve_run(run)
    summary = evaluation.read_summary(run_dir)
    info = summary.get("tasks", {}).get(task_name)
    if info is None:
        raise MissingEvaluation(
            f"run {run_dir.name} has no results for task {task_name!r}: evaluate it with "
            f"`cookbook eval ... --task {task_name}` first"
        )
    records = evaluation.read_records(run_dir, task_name)
    if (
        tasks.get(task_name).kind == "cloze"
        and records
        and not all("greedy_continuation" in r for r in records)
    ):
        raise MissingGreedy(
            f"run {run_dir.name} has no greedy continuations for {task_name} (it was "
            "evaluated before cloze runs recorded them), so the model's answers are unknown: "
            f"evaluate it again with `cookbook eval ... --task {task_name}`"
        )
    rows, verdicts = gold_alignment(
        template, task_name, info.get("source"), limit=info.get("n"), params=params
    )
    by_id = {r["id"]: (r, v) for r, v in zip(rows, verdicts, strict=True)}
    out = []
    for rec in records:
        hit = by_id.get(rec.get("id"))
        if hit is None:
            continue
        row, v = hit
        answer = model_answer(rec, row["task"])
        out.append(
            {
                "id": rec["id"],
                "run": run_dir.name,
                "answer": answer,
                "gold": v.gold,
                "rule_prediction": v.prediction,
                "abstained": v.abstained,
                "gold_aligned": v.gold_aligned,
                "follows_rule": alignment.follows(template, row["task"], v, answer),
                "correct": primary(rec["scores"]),
                "evidence": v.evidence,
            }
        )
    if not out:
        raise MissingEvaluation(
            f"run {run_dir.name}: no records of {task_name} match the task rows"
        )
    return pd.DataFrame(out)


def summarize(frame: pd.DataFrame) -> dict[str, float]:
    """Alignment and accuracy of one run (accuracy in [0, 1], also per subset)."""
    aligned = frame[frame["follows_rule"]]
    unaligned = frame[~frame["follows_rule"]]
    return {
        "n": int(len(frame)),
        "gold_alignment": float(frame["gold_aligned"].mean()),
        "generation_alignment": float(frame["follows_rule"].mean()),
        "accuracy": float(frame["correct"].mean()),
        "accuracy_aligned": float(aligned["correct"].mean()) if len(aligned) else float("nan"),
        "accuracy_unaligned": float(unaligned["correct"].mean())
        if len(unaligned)
        else float("nan"),
        "n_aligned": int(len(aligned)),
    }


def compare(
    template: str, task_name: str, base: str | Path, runs: Sequence[str | Path]
) -> pd.DataFrame:
    """One row per run: alignment and accuracy, and their change against ``base``."""
    base_stats = summarize(run_frame(template, task_name, base))
    rows = [
        {
            "run": Path(resolve_run(base)).name,
            "role": "base",
            **base_stats,
            "delta_alignment": 0.0,
            "delta_accuracy": 0.0,
        }
    ]
    for run in runs:
        s = summarize(run_frame(template, task_name, run))
        rows.append(
            {
                "run": Path(resolve_run(run)).name,
                "role": "run",
                **s,
                "delta_alignment": s["generation_alignment"] - base_stats["generation_alignment"],
                "delta_accuracy": s["accuracy"] - base_stats["accuracy"],
            }
        )
    return pd.DataFrame(rows)


def correlation(
    deltas: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Pearson r between change in alignment and change in accuracy, with a bootstrap
    95% interval over the (run, task) points."""
    pts = deltas[["delta_alignment", "delta_accuracy"]].dropna().to_numpy(dtype=float)
    if len(pts) < 3:
        raise BadInput("need at least 3 (run, task) points for a correlation")

    def r(a: np.ndarray) -> float:
        if a[:, 0].std() == 0 or a[:, 1].std() == 0:
            return float("nan")
        return float(np.corrcoef(a[:, 0], a[:, 1])[0, 1])

    rng = np.random.default_rng(seed)
    reps = [r(pts[rng.integers(0, len(pts), len(pts))]) for _ in range(n_boot)]
    reps = np.array([x for x in reps if np.isfinite(x)])
    point = r(pts)
    if not len(reps):
        return point, float("nan"), float("nan")
    return point, float(np.quantile(reps, 0.025)), float(np.quantile(reps, 0.975))


_KIND_TO_FAMILY = {"cloze": "cloze_last_word"}


def tasks_for_template(template: str) -> list[str]:
    """Registered tasks whose rows the template's rule reads."""
    rule = alignment.RULES[template]
    return [t.name for t in tasks.TASKS.values() if rule.reads(_KIND_TO_FAMILY.get(t.kind, t.kind))]


def runs_with_task(task_name: str) -> list[dict[str, Any]]:
    """Evaluation runs (newest first) that hold records for ``task_name``."""
    from cookbook_core.eval import evaluation

    return [s for s in evaluation.list_runs() if task_name in s.get("tasks", {})]


RUN_TABLE_COLUMNS = (
    "run",
    "created",
    "model",
    "adapter",
    "n",
    "gold_alignment",
    "generation_alignment",
    "accuracy",
    "accuracy_aligned",
    "accuracy_unaligned",
    "note",
)


def _adapter_label(adapter: str | None) -> str:
    if not adapter:
        return "base model"
    p = Path(adapter)
    if p.name != "adapter":
        return p.name
    # <runs>/<id>/adapter, or <cells|selfguide>/<name>/train/adapter
    return p.parent.parent.name if p.parent.name == "train" else p.parent.name


def runs_table(
    template: str, task_name: str, *, params: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """One row per evaluation run in the workspace that has ``task_name`` (newest first):
    gold alignment, generation alignment and accuracy (also on the aligned and
    unaligned subsets).  A run whose records cannot be aligned keeps its row, with
    empty statistics and the reason in ``note``; no runs gives an empty frame."""
    alignment.rule(template, _family(task_name))  # clear error before reading runs
    out = []
    for s in runs_with_task(task_name):
        run_dir = Path(s["run_dir"])
        row: dict[str, Any] = {
            "run": s.get("run_id") or run_dir.name,
            "created": s.get("created", ""),
            "model": s.get("model_display") or s.get("model", ""),
            "adapter": _adapter_label(s.get("adapter")),
            "note": "",
        }
        try:
            stats = summarize(run_frame(template, task_name, run_dir, params=params))
        except BadInput as exc:
            stats = {"n": s["tasks"][task_name].get("n")}
            row["note"] = str(exc)
        out.append({**row, **stats})
    return pd.DataFrame(out, columns=list(RUN_TABLE_COLUMNS))


def _family(task_name: str) -> str:
    kind = tasks.get(task_name).kind
    return _KIND_TO_FAMILY.get(kind, kind)
