"""Hugging Face hub loaders: each official benchmark's records in the project's row schema.

:data:`HUB_SOURCES` maps a task name to its dataset on the hub (path, config, split) and
a converter ``(record, index) -> row | None`` that turns one hub record into a row of the
normalized schema of ``../shared/data`` (``None`` skips a record, e.g. TyDi QA's
non-English ones).  :func:`convert` applies a task's converter to any iterable of
records, a downloaded ``datasets.Dataset`` or a small in-memory one alike, and checks
each row exactly as rows read from files are checked (:func:`tasks.checked_row`); a
record the converter cannot read is a :class:`~cookbook_core.eval.tasks.TaskDataError`
naming the dataset and row.  :func:`load_hub` downloads the dataset, then converts.

What it does not do: define tasks, prompts or scores (:mod:`cookbook_core.eval.tasks`
does), or touch the network anywhere but in :func:`load_hub`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cookbook_core.eval.tasks import Task, TaskDataError, checked_row


@dataclass(frozen=True)
class HubSource:
    """An official dataset on the hub and the function mapping its rows to the schema."""

    path: str
    name: str | None
    split: str
    convert: Callable[[dict[str, Any], int], dict[str, Any] | None]


def _hub_squad(r: dict[str, Any], i: int) -> dict[str, Any]:
    answers = list(r["answers"]["text"])
    return {
        "id": r["id"],
        "title": r.get("title", ""),
        "context": r["context"],
        "question": r["question"],
        "answers": answers,
        "answer": answers[0] if answers else "",
    }


def _hub_tydiqa(r: dict[str, Any], i: int) -> dict[str, Any] | None:
    if not str(r["id"]).startswith("english"):
        return None
    return _hub_squad(r, i)


def _hub_arc(r: dict[str, Any], i: int) -> dict[str, Any]:
    labels = list(r["choices"]["label"])
    return {
        "id": r["id"],
        "question": r["question"],
        "choices": list(r["choices"]["text"]),
        "labels": labels,
        "answer_index": labels.index(r["answerKey"]),
    }


def _hs_pre(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _hub_hellaswag(r: dict[str, Any], i: int) -> dict[str, Any]:
    ctx = r["ctx_a"] + " " + r["ctx_b"].capitalize()
    return {
        "id": f"hellaswag-{i}",
        "question": _hs_pre(r["activity_label"] + ": " + ctx),
        "choices": [_hs_pre(e) for e in r["endings"]],
        "answer_index": int(r["label"]),
    }


def _hub_piqa(r: dict[str, Any], i: int) -> dict[str, Any]:
    return {
        "id": f"piqa-{i}",
        "question": r["goal"],
        "choices": [r["sol1"], r["sol2"]],
        "answer_index": int(r["label"]),
    }


def _hub_obqa(r: dict[str, Any], i: int) -> dict[str, Any]:
    labels = list(r["choices"]["label"])
    return {
        "id": r["id"],
        "question": r["question_stem"],
        "choices": list(r["choices"]["text"]),
        "labels": labels,
        "answer_index": labels.index(r["answerKey"].lstrip()),
    }


def _hub_winogrande(r: dict[str, Any], i: int) -> dict[str, Any]:
    idx = r["sentence"].index("_")
    options = [r["option1"], r["option2"]]
    return {
        "id": f"winogrande-{i}",
        "question": r["sentence"],
        "choices": options,
        "context_options": [r["sentence"][:idx] + o for o in options],
        "continuation": r["sentence"][idx + 1 :].strip(),
        "answer_index": int(r["answer"]) - 1,
    }


def _hub_boolq(r: dict[str, Any], i: int) -> dict[str, Any]:
    yes = bool(r["label"]) if "label" in r else bool(r["answer"])
    return {
        "id": f"boolq-{i}",
        "context": r["passage"],
        "question": r["question"],
        "choices": ["yes", "no"],
        "answer": "yes" if yes else "no",
        "answer_index": 0 if yes else 1,
    }


_hub_csqa = _hub_arc  # CommonsenseQA's hub record has ARC's shape


def _hub_lambada(r: dict[str, Any], i: int) -> dict[str, Any]:
    words = r["text"].split(" ")
    return {"id": f"lambada-{i}", "context": " ".join(words[:-1]), "answer": words[-1]}


def _hub_pubmedqa(r: dict[str, Any], i: int) -> dict[str, Any]:
    return {
        "id": str(r["pubid"]),
        "context": "\n".join(r["context"]["contexts"]),
        "question": r["question"],
        "choices": ["yes", "no", "maybe"],
        "answer": r["final_decision"],
    }


HUB_SOURCES: dict[str, HubSource] = {
    "squad": HubSource("rajpurkar/squad", None, "validation", _hub_squad),
    "xquad_en": HubSource("google/xquad", "xquad.en", "validation", _hub_squad),
    "tydiqa_goldp_en": HubSource(
        "google-research-datasets/tydiqa", "secondary_task", "validation", _hub_tydiqa
    ),
    "arc_easy": HubSource("allenai/ai2_arc", "ARC-Easy", "test", _hub_arc),
    "arc_challenge": HubSource("allenai/ai2_arc", "ARC-Challenge", "test", _hub_arc),
    "hellaswag": HubSource("Rowan/hellaswag", None, "validation", _hub_hellaswag),
    "piqa": HubSource("baber/piqa", None, "validation", _hub_piqa),
    "openbookqa": HubSource("allenai/openbookqa", "main", "test", _hub_obqa),
    "winogrande": HubSource("allenai/winogrande", "winogrande_xl", "validation", _hub_winogrande),
    "boolq": HubSource("aps/super_glue", "boolq", "validation", _hub_boolq),
    "commonsense_qa": HubSource("tau/commonsense_qa", None, "validation", _hub_csqa),
    "lambada": HubSource("EleutherAI/lambada_openai", "default", "test", _hub_lambada),
    "pubmedqa": HubSource("qiaojin/PubMedQA", "pqa_labeled", "train", _hub_pubmedqa),
}


def source_for(task: Task) -> HubSource:
    """The hub dataset of ``task`` (:class:`TaskDataError` when it has none)."""
    src = HUB_SOURCES.get(task.name)
    if src is None:
        raise TaskDataError(
            f"task {task.name} has no Hugging Face hub source: pass --data-dir with a "
            f"{task.folder}/ subfolder"
        )
    return src


def convert(
    task: Task, records: Iterable[Mapping[str, Any]], *, limit: int | None = None
) -> list[dict[str, Any]]:
    """Rows of ``task`` from hub ``records`` (the first ``limit`` kept), converted and
    checked; :class:`TaskDataError` for a record that cannot be converted or checked, or
    when no row is left."""
    src = source_for(task)
    rows: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        try:
            row = src.convert(dict(record), i)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise TaskDataError(
                f"{src.path}, row {i}: cannot convert the hub record for task {task.name} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        if row is None:
            continue
        row.update(dataset=task.folder, task=task.kind)
        rows.append(checked_row(task, row, src.path, i, "row"))
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise TaskDataError(f"{src.path} gave no rows for task {task.name}")
    return rows


def load_hub(task: Task, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of ``task`` from its official hub dataset (downloaded by ``datasets``), mapped
    to the normalized schema."""
    src = source_for(task)
    try:
        import datasets
    except ImportError:
        raise TaskDataError("the `datasets` package is needed to read from the hub") from None
    try:
        ds = datasets.load_dataset(src.path, src.name, split=src.split)
    except Exception as exc:  # noqa: BLE001 - offline, unknown config, ...: say which
        raise TaskDataError(
            f"could not load {src.path} ({src.name or 'default'}/{src.split}) from the hub for "
            f"task {task.name}: {type(exc).__name__}: {exc}"
        ) from None
    return convert(task, ds, limit=limit)
