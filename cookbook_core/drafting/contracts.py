"""Row contracts: how a task's real rows become the inputs a drafted template's checker reads.

A template's rule is code: its checker ``check(inputs, answer, params) -> bool``
reads the inputs the generator put in ``meta["parent"]`` and ``meta["child"]``.
To measure how often a *drafted* rule gives the real answer, the same checker must
be asked about real rows, so the drafting prompt fixes the input names per task
kind (a :class:`RowContract`), chosen to be those the shipped template for that
kind already uses (``document``/``question`` like ``document_qa``,
``passage``/``question`` like ``yes_no_qa``, ``left``/``right`` like
``entity_matching``, ``question``/``choices`` like ``multiple_choice_qa``,
``context`` like ``last_word``).  Because the names match, the shipped template's
own checker can be measured on the same rows in the same sandbox, which gives a
like-for-like baseline for a draft.

For every real row a contract gives: the checker's ``inputs``; the gold answers as
the template would write them (the answer text for QA, ``yes``/``no``, a choice
letter, the last word); and one *wrong* answer (another span of the context of the
gold's length, the other label, another choice letter, another word of the context)
so a rule that accepts everything is seen for what it is.

It also holds the built-in short task descriptions and the shipped template that
stands for each task, and (:func:`custom_rows`) turns a *new* task, one with no data
folder, into the same :class:`TaskRows`: a name, one of the contract kinds, a
description and a few pasted rows in that kind's row format (:data:`EXAMPLE_ROWS`).
What it does not do: run any template code (``checks``
sends the rows to the sandbox) or apply the hand-written natural-text rules of
``align.alignment`` (a higher part of the same layer; the CLI adds that column).
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookbook_core.errors import BadInput
from cookbook_core.eval import tasks as eval_tasks

MAX_GOLDS = 5  # gold answers asked about per row (SQuAD rows repeat the same answer)


class UnsupportedTask(BadInput):
    """A task whose rows have no contract for drafted checkers."""


@dataclass(frozen=True)
class RealRow:
    """One real row as the checker sees it: inputs, gold answers, one wrong answer."""

    id: str
    inputs: dict[str, Any]
    golds: tuple[str, ...]
    wrong: str | None


@dataclass(frozen=True)
class RowContract:
    """The checker's input names and answer format for one task kind."""

    kind: str
    family: str
    inputs: Mapping[str, str]  # input name -> what it holds (shown in the prompt)
    answer: str  # what the completion is, in words
    example_shipped: str  # the shipped template that reads the same inputs
    to_inputs: Callable[[Mapping[str, Any]], dict[str, Any]]
    to_golds: Callable[[Mapping[str, Any]], list[str]]
    to_wrong: Callable[[Mapping[str, Any], random.Random], str | None]

    def real_row(self, row: Mapping[str, Any]) -> RealRow:
        """The row as the checker reads it (a missing field is a clear error)."""
        try:
            golds = [g for g in dict.fromkeys(self.to_golds(row)) if g.strip()][:MAX_GOLDS]
            return RealRow(str(row.get("id", "?")), self.to_inputs(row), tuple(golds), None)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise eval_tasks.TaskDataError(
                f"row {row.get('id', '?')} cannot be read as {self.kind} inputs "
                f"({type(exc).__name__}: {exc})"
            ) from None

    def with_wrong(self, row: Mapping[str, Any], real: RealRow, rng: random.Random) -> RealRow:
        """``real`` with one wrong answer drawn by ``rng`` (None when none differs from gold)."""
        wrong = self.to_wrong(row, rng)
        if wrong is not None and wrong.strip().lower() in {g.strip().lower() for g in real.golds}:
            wrong = None
        return RealRow(real.id, real.inputs, real.golds, wrong)


# ----------------------------------------------------------------------------------
# Per kind


def _words(text: str) -> list[str]:
    return str(text).split()


def _qa_golds(row: Mapping[str, Any]) -> list[str]:
    answers = row.get("answers") or [row["answer"]]
    return [str(a).strip() for a in answers]


def _qa_wrong(row: Mapping[str, Any], rng: random.Random) -> str | None:
    """A span of the context as long (in words) as the first gold, sharing no gold word."""
    words = _words(row["context"])
    golds = _qa_golds(row)
    size = max(1, len(_words(golds[0])))
    gold_words = {w.lower().strip(string.punctuation) for g in golds for w in _words(g)}
    if len(words) <= size:
        return None
    for _ in range(50):
        start = rng.randrange(len(words) - size + 1)
        span = words[start : start + size]
        if not {w.lower().strip(string.punctuation) for w in span} & gold_words:
            return " ".join(span)
    return None


def _label_golds(row: Mapping[str, Any]) -> list[str]:
    return [str(row["answer"]).strip().lower()]


def _em_golds(row: Mapping[str, Any]) -> list[str]:
    label = row.get("label")
    if label is not None and str(label) != "":
        return ["yes" if int(label) == 1 else "no"]
    return [str(row["answer"]).strip().lower()]


def _flip(labels: Sequence[str]) -> Callable[[Mapping[str, Any], random.Random], str | None]:
    def wrong(row: Mapping[str, Any], rng: random.Random) -> str | None:
        gold = str(row["answer"]).strip().lower()
        if "label" in row and row.get("label") not in (None, ""):
            gold = "yes" if int(row["label"]) == 1 else "no"
        others = [x for x in labels if x != gold]
        return rng.choice(others) if others else None

    return wrong


def _record(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        value = json.loads(value)
    return {str(k): "" if v is None else str(v) for k, v in dict(value).items()}


def _em_inputs(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "left": _record(row["left"]),
        "right": _record(row["right"]),
        "left_text": str(row["left_text"]),
        "right_text": str(row["right_text"]),
    }


def _mc_inputs(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"question": str(row["question"]), "choices": [str(c) for c in row["choices"]]}


def _mc_golds(row: Mapping[str, Any]) -> list[str]:
    return [string.ascii_uppercase[int(row["answer_index"])]]


def _mc_wrong(row: Mapping[str, Any], rng: random.Random) -> str | None:
    gold = int(row["answer_index"])
    others = [i for i in range(len(row["choices"])) if i != gold]
    return string.ascii_uppercase[rng.choice(others)] if others else None


def _cloze_wrong(row: Mapping[str, Any], rng: random.Random) -> str | None:
    gold = str(row["answer"]).strip().lower()
    words = {w.strip(string.punctuation + "“”‘’") for w in _words(row["context"])}
    pool = sorted(w for w in words if w and w.lower() != gold)
    return rng.choice(pool) if pool else None


CONTRACTS: dict[str, RowContract] = {
    c.kind: c
    for c in [
        RowContract(
            "extractive_qa",
            "search",
            {"document": "str, the context passage", "question": "str, the question"},
            "a short span copied from the document (a few words)",
            "document_qa",
            lambda r: {"document": str(r["context"]), "question": str(r["question"]).strip()},
            _qa_golds,
            _qa_wrong,
        ),
        RowContract(
            "yes_no",
            "comparison",
            {"passage": "str, the passage", "question": "str, a yes/no question"},
            '"yes" or "no"',
            "yes_no_qa",
            lambda r: {"passage": str(r["context"]), "question": str(r["question"]).strip()},
            _label_golds,
            _flip(("yes", "no")),
        ),
        RowContract(
            "yes_no_maybe",
            "comparison",
            {"passage": "str, the passage", "question": "str, a question"},
            '"yes", "no" or "maybe"',
            "yes_no_qa",
            lambda r: {"passage": str(r["context"]), "question": str(r["question"]).strip()},
            _label_golds,
            _flip(("yes", "no", "maybe")),
        ),
        RowContract(
            "entity_matching",
            "comparison",
            {
                "left": "dict[str, str], record A (attribute name -> value)",
                "right": "dict[str, str], record B (same attribute names)",
                "left_text": "str, record A serialized as 'COL name VAL value ...'",
                "right_text": "str, record B serialized the same way",
            },
            '"yes" (same entity) or "no"',
            "entity_matching",
            _em_inputs,
            _em_golds,
            _flip(("yes", "no")),
        ),
        RowContract(
            "multiple_choice",
            "selection",
            {"question": "str, the question", "choices": "list[str], the answer options"},
            'the letter of the right choice ("A" for choices[0], "B" for choices[1], ...)',
            "multiple_choice_qa",
            _mc_inputs,
            _mc_golds,
            _mc_wrong,
        ),
        RowContract(
            "cloze",
            "search",
            {"context": "str, a passage whose last word is missing"},
            "one word: the missing last word",
            "last_word",
            lambda r: {"context": str(r["context"])},
            lambda r: [str(r["answer"]).strip()],
            _cloze_wrong,
        ),
    ]
}

# The shipped template that stands for a task and reads the contract's inputs.
SHIPPED_FOR_TASK: dict[str, str] = {
    "squad": "document_qa",
    "tydiqa_goldp_en": "document_qa",
    "xquad_en": "document_qa",
    "boolq": "yes_no_qa",
    "arc_easy": "multiple_choice_qa",
    "arc_challenge": "multiple_choice_qa",
    "openbookqa": "multiple_choice_qa",
    "commonsense_qa": "multiple_choice_qa",
    "lambada": "last_word",
    **{s: "entity_matching" for s in eval_tasks.EM_SETS},
}

_KIND_TEXT: dict[str, str] = {
    "extractive_qa": (
        "Extractive question answering: given a document and a question, the answer is a "
        "short span copied from the document, usually found next to where the question's "
        "words occur in it."
    ),
    "yes_no": (
        "Yes/no questions about a passage: answer yes when the passage states what the "
        "question asks (its words occur in the passage), else no."
    ),
    "yes_no_maybe": (
        "Questions about a passage answered yes, no or maybe, depending on whether the "
        "passage supports, contradicts or leaves open the question's claim."
    ),
    "entity_matching": (
        "Entity matching: two records (attribute/value pairs) describe the same real-world "
        "entity (yes) or not (no); matching records share most of their value words."
    ),
    "multiple_choice": (
        "Multiple-choice questions: pick the one choice that answers the question; the "
        "right choice tends to share words with the question."
    ),
    "cloze": (
        "Last-word prediction: predict the missing last word of a passage; it is usually a "
        "word that already occurred earlier in the passage."
    ),
}


def contract_for(task: eval_tasks.Task) -> RowContract:
    """The contract for a task's kind, or :class:`UnsupportedTask` naming the kinds."""
    c = CONTRACTS.get(task.kind)
    if c is None or task.name == "winogrande":
        raise UnsupportedTask(
            f"drafting has no row contract for task {task.name!r} (kind {task.kind}); "
            f"supported kinds: {', '.join(sorted(CONTRACTS))} (winogrande excepted)"
        )
    return c


def describe_task(task: eval_tasks.Task) -> str:
    """The built-in short description of a task (its kind's text plus its name)."""
    return f"{_KIND_TEXT[contract_for(task).kind]} Real task: {task.description}."


def read_description(text: str | None, task: eval_tasks.Task) -> str:
    """``--description TEXT|FILE``: a file's contents when ``text`` names a file, the
    text itself otherwise, the built-in description when None."""
    if text is None or not text.strip():
        return describe_task(task)
    path = Path(text).expanduser()
    if len(text) < 4096 and "\n" not in text and path.is_file():
        try:
            return path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read the description file {path}: {exc}") from None
    return text.strip()


@dataclass(frozen=True)
class TaskRows:
    """A task's rows split in two: shown in the prompt, and used to measure alignment."""

    task: eval_tasks.Task
    contract: RowContract
    shown: list[dict[str, Any]]
    measured: list[RealRow]
    source: str
    measured_raw: list[dict[str, Any]]  # the rows behind ``measured``, as loaded


def load_rows(
    task_name: str,
    data_dir: str | Path | None = None,
    *,
    examples: int = 3,
    align_rows: int = 200,
    seed: int = 0,
) -> TaskRows:
    """The first ``examples`` rows (for the prompt) and the next ``align_rows`` rows as
    checker inputs (for alignment): the rows a draft is measured on are never shown."""
    if examples < 0 or align_rows < 1:
        raise BadInput(f"need examples >= 0 and align rows >= 1, got {examples}, {align_rows}")
    task = eval_tasks.get(task_name)
    contract = contract_for(task)
    loaded = eval_tasks.load(task, data_dir, limit=examples + align_rows)
    rows = loaded.rows
    if len(rows) <= examples:
        raise eval_tasks.TaskDataError(
            f"task {task.name} has {len(rows)} rows: not enough to show {examples} and "
            "measure alignment on the rest"
        )
    rng = random.Random(f"drafting:{task.name}:{seed}")
    measured, raw = [], []
    for row in rows[examples:]:
        real = contract.real_row(row)
        if real.golds:
            measured.append(contract.with_wrong(row, real, rng))
            raw.append(row)
    if not measured:
        raise eval_tasks.TaskDataError(f"task {task.name}: no row with a gold answer to measure")
    return TaskRows(task, contract, rows[:examples], measured, loaded.source, raw)


# ----------------------------------------------------------------------------------
# A new task: a name, a kind, a description and pasted rows (no data folder)

# One row per kind in the format a pasted row must have (the fields the kind's contract
# reads; the same format as the real data files).
EXAMPLE_ROWS: dict[str, dict[str, Any]] = {
    "extractive_qa": {
        "context": "The Amazon is the largest rainforest on Earth.",
        "question": "What is the largest rainforest?",
        "answer": "The Amazon",
    },
    "yes_no": {
        "context": "Water boils at 100 degrees Celsius at sea level.",
        "question": "does water boil at 100 degrees at sea level",
        "answer": "yes",
    },
    "yes_no_maybe": {
        "context": "The trial found no effect of the drug on blood pressure.",
        "question": "Does the drug lower blood pressure?",
        "answer": "no",
    },
    "entity_matching": {
        "left": {"title": "sony bravia 40 inch lcd tv"},
        "right": {"title": "Sony BRAVIA KDL-40 LCD television"},
        "left_text": "COL title VAL sony bravia 40 inch lcd tv",
        "right_text": "COL title VAL Sony BRAVIA KDL-40 LCD television",
        "answer": "yes",
    },
    "multiple_choice": {
        "question": "Which gas do plants take in for photosynthesis?",
        "choices": ["oxygen", "carbon dioxide", "helium", "nitrogen"],
        "answer_index": 1,
    },
    "cloze": {"context": "She poured the tea into her favourite", "answer": "cup"},
}
_TASK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_PASTED_ROWS = 500


def custom_task(name: str, kind: str, description: str) -> eval_tasks.Task:
    """A task that exists only for drafting: ``name`` (a lower-case identifier, so that
    ``<name>_draft`` is a template name), one of the contract kinds, a description."""
    if not _TASK_NAME.match(name or ""):
        raise BadInput(
            f"task name {name!r}: use lower-case letters, digits and _ (start with a letter, "
            "at most 40 characters)"
        )
    try:
        eval_tasks.get(name)
    except eval_tasks.UnknownTask:
        pass
    else:
        raise BadInput(f"{name!r} is a known task: pick it from the list, or choose another name")
    if kind not in CONTRACTS:
        raise UnsupportedTask(f"unknown task kind {kind!r} (kinds: {', '.join(sorted(CONTRACTS))})")
    if not (description or "").strip():
        raise BadInput("describe the new task: what is given, and what the answer is")
    return eval_tasks.Task(
        name=name, folder="", kind=kind, description=" ".join(description.split())[:300]
    )


def parse_rows(text: str) -> list[dict[str, Any]]:
    """Pasted rows: one JSON object per line, or one JSON list of objects; each error
    names its line."""
    text = (text or "").strip()
    if not text:
        raise BadInput("paste a few rows of the task (one JSON object per line)")
    if text.startswith("["):
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise BadInput(f"the pasted rows are not a JSON list: {exc}") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise BadInput("the pasted JSON list must hold objects (one per row)")
    else:
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise BadInput(f"pasted row on line {i} is not JSON: {exc}") from None
            if not isinstance(row, dict):
                raise BadInput(f"pasted row on line {i} is not a JSON object")
            rows.append(row)
    if len(rows) > MAX_PASTED_ROWS:
        raise BadInput(f"{len(rows)} pasted rows: at most {MAX_PASTED_ROWS}")
    return rows


def custom_rows(
    task: eval_tasks.Task,
    rows: Sequence[Mapping[str, Any]],
    *,
    examples: int = 2,
    seed: int = 0,
) -> TaskRows:
    """A new task's pasted rows split like :func:`load_rows`: the first ``examples``
    shown in the prompt, the rest measured (so at least ``examples + 1`` rows)."""
    contract = contract_for(task)
    if examples < 0:
        raise BadInput(f"examples must be >= 0, got {examples}")
    if len(rows) <= examples:
        raise BadInput(
            f"{len(rows)} pasted rows: paste more than the {examples} shown in the prompt "
            "(the rest measure the drafted rule)"
        )
    named = [{"id": f"{task.name}-{i}", **dict(r)} for i, r in enumerate(rows, 1)]
    rng = random.Random(f"drafting:{task.name}:{seed}")
    measured, raw = [], []
    for i, row in enumerate(named, 1):
        try:
            real = contract.real_row(row)
            if i <= examples:
                continue
            if real.golds:
                measured.append(contract.with_wrong(row, real, rng))
                raw.append(row)
        except eval_tasks.TaskDataError as exc:
            want = ", ".join(EXAMPLE_ROWS[contract.kind])
            raise BadInput(f"pasted row {i}: {exc}; a {contract.kind} row has {want}") from None
    if not measured:
        raise BadInput("no pasted row past the shown ones has a gold answer to measure the rule on")
    return TaskRows(task, contract, named[:examples], measured, "pasted rows", raw)


def supported_tasks() -> list[str]:
    """Names of the known tasks drafting has a row contract for."""
    out = []
    for t in eval_tasks.TASKS.values():
        try:
            contract_for(t)
        except UnsupportedTask:
            continue
        out.append(t.name)
    return out
