"""Evaluation tasks: a registry of real benchmarks, each with its loader, prompts and scorer.

A :class:`Task` knows

* where its rows come from: the folder name of its set in a data folder laid out
  like ``../shared/data`` (``squad`` reads ``squad_v1_1_dev/*.jsonl``), a single
  JSONL file in the normalized schema, a Parquet/CSV file plus a field mapping, or
  the Hugging Face hub through ``datasets`` when online (each official dataset's
  fields mapped to the same schema; see :data:`HUB_SOURCES`);
* how to prompt: log-likelihood tasks build ``(context, continuation)`` pairs
  exactly as lm-evaluation-harness does (plain text, ``target_delimiter`` " ",
  few-shot examples joined by a blank line); generation tasks build a user prompt
  that the evaluator wraps in the model's chat template (the same
  ``training.format_prompt`` that fine-tuning uses) or leaves plain;
* how to score one example (:meth:`Task.score`) and which aggregate metrics it reports.

Prompt choices for generation tasks follow the shipped templates, so that what a
model learns from template data transfers: extractive QA uses document_qa's
``"Document: {context}\\n\\nQuestion: {question}\\n\\nAnswer:"``; entity matching
uses entity_matching's ``"Entity A: ...\\nEntity B: ...\\n\\nAre Entity A and Entity B
the same? Yes or No?\\n\\nAnswer:"``; PubMedQA uses yes_no_qa's passage/question form.

Groups: ``gpt4all`` (the Cookbook paper's 8 tasks), ``em`` (the 8 entity-matching
sets), ``mc`` (all log-likelihood multiple-choice tasks).  This module never loads a
model; the hub loader imports ``datasets`` only when used (and is untested offline).
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cookbook_core import storage
from cookbook_core.errors import BadInput
from cookbook_core.eval import scoring

DATA_DIR_ENV = "COOKBOOK_EVAL_DATA"  # default data folder when --data-dir is not given
FEWSHOT_DELIMITER = "\n\n"
TARGET_DELIMITER = " "


class UnknownTask(BadInput):
    """A task or group name that is not in the registry."""


class TaskDataError(BadInput):
    """Task data that is missing, empty, or has a row without a needed field."""


@dataclass(frozen=True)
class LoglikDoc:
    """One log-likelihood example: a context per choice and a continuation per choice.

    ``choices`` are the texts whose character length ``acc_norm`` divides by (for
    WinoGrande, the filled-in contexts, as in lm-evaluation-harness).
    """

    contexts: list[str]
    continuations: list[str]
    choices: list[str]
    gold: int


@dataclass(frozen=True)
class Task:
    """A benchmark: its data folder, required fields, prompting and metrics."""

    name: str
    folder: str
    kind: str  # extractive_qa | multiple_choice | yes_no | cloze | entity_matching | yes_no_maybe
    method: str  # "loglikelihood" or "generate"
    metrics: tuple[str, ...]
    required: tuple[str, ...]
    description: str
    default_format: str = "plain"  # "plain" or "chat"
    max_new_tokens: int = 32
    stop: tuple[str, ...] = ("\n",)
    aliases: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    # -- prompts --------------------------------------------------------------------

    def loglik_doc(self, row: Mapping[str, Any]) -> LoglikDoc:
        """Contexts, continuations, choices and gold index for a log-likelihood task."""
        return _LOGLIK_BUILDERS[self.extra.get("builder", self.kind)](row)

    def loglik_requests(
        self,
        row: Mapping[str, Any],
        shots: Sequence[Mapping[str, Any]] = (),
        chat: Callable[[str], str] | None = None,
    ) -> tuple[LoglikDoc, list[tuple[str, str]]]:
        """``(doc, [(context, continuation) per choice])``.

        Plain (``chat`` None): lm-evaluation-harness's text, few-shot examples
        (context + " " + gold continuation) joined by a blank line before the context.
        Chat: the same text wrapped by ``chat`` (the model's chat template with the
        generation prompt); the continuation loses its leading space.
        """
        doc = self.loglik_doc(row)
        prefix = ""
        for s in shots:
            sd = self.loglik_doc(s)
            prefix += sd.contexts[sd.gold] + sd.continuations[sd.gold] + FEWSHOT_DELIMITER
        pairs = []
        for ctx, cont in zip(doc.contexts, doc.continuations, strict=True):
            text = prefix + ctx
            if chat is not None:
                pairs.append((chat(text), cont.lstrip(" ")))
            else:
                pairs.append((text, cont))
        return doc, pairs

    def prompt(self, row: Mapping[str, Any], shots: Sequence[Mapping[str, Any]] = ()) -> str:
        """The user prompt of a generation task (few-shot examples answered inline)."""
        build = _PROMPT_BUILDERS[self.kind]
        parts = [build(s) + " " + self.gold_text(s) for s in shots]
        return FEWSHOT_DELIMITER.join([*parts, build(row)])

    def gold_text(self, row: Mapping[str, Any]) -> str:
        """The reference answer as text (the first gold for QA)."""
        if self.kind == "extractive_qa":
            return str(row["answers"][0] if row.get("answers") else row["answer"])
        if self.kind == "entity_matching":
            return "Yes" if _em_label(row) == "yes" else "No"
        return str(row["answer"])

    # -- scoring --------------------------------------------------------------------

    def score_generation(self, row: Mapping[str, Any], text: str) -> dict[str, Any]:
        """Per-example scores of a generated answer (metric name -> value, plus parse)."""
        if self.kind == "extractive_qa":
            golds = [str(a) for a in (row.get("answers") or [row["answer"]])]
            answer = text.strip()
            return {
                "exact_match": scoring.max_over_golds(scoring.exact_match, answer, golds),
                "f1": scoring.max_over_golds(scoring.token_f1, answer, golds),
            }
        if self.kind == "entity_matching":
            pred = scoring.parse_label(text, ("yes", "no"))
            gold = _em_label(row)
            return {"pred": pred, "gold": gold, "accuracy": float(pred == gold)}
        if self.kind == "yes_no_maybe":
            pred = scoring.parse_label(text, ("yes", "no", "maybe"))
            gold = str(row["answer"]).lower()
            return {"pred": pred, "gold": gold, "accuracy": float(pred == gold)}
        raise ValueError(f"{self.name} is not a generation task")

    def score_loglik(self, doc: LoglikDoc, results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
        """Per-example scores from ``(loglikelihood, is_greedy)`` per choice."""
        lls = [r[0] for r in results]
        if self.kind == "cloze":
            return {"accuracy": float(results[0][1]), "loglikelihood": lls[0]}
        pred, pred_norm = scoring.mc_predictions(lls, doc.choices)
        out: dict[str, Any] = {"pred": pred, "acc": float(pred == doc.gold)}
        if "acc_norm" in self.metrics:
            out["pred_norm"] = pred_norm
            out["acc_norm"] = float(pred_norm == doc.gold)
        return out

    def aggregate(self, metric: str) -> Callable[[Sequence[dict[str, Any]]], float]:
        """The function turning per-example score dicts into the task's ``metric``."""
        if metric == "perplexity":
            return lambda items: scoring.perplexity([i["loglikelihood"] for i in items])
        if metric == "f1" and self.kind == "entity_matching":
            return lambda items: scoring.f1_positive(
                [i["pred"] for i in items], [i["gold"] for i in items], "yes"
            )
        if metric == "macro_f1":
            return lambda items: scoring.macro_f1(
                [i["pred"] for i in items], [i["gold"] for i in items], ("yes", "no", "maybe")
            )
        return lambda items: sum(float(i[metric]) for i in items) / len(items) if items else 0.0

    def is_mean(self, metric: str) -> bool:
        """True when ``metric`` is a plain mean of a per-example value."""
        return not (
            metric in ("perplexity", "macro_f1")
            or (metric == "f1" and self.kind == "entity_matching")
        )


# ----------------------------------------------------------------------------------
# Prompt builders (lm-evaluation-harness conventions for the log-likelihood tasks)


def _mc_question(row: Mapping[str, Any]) -> LoglikDoc:  # ARC, PIQA
    choices = [str(c) for c in row["choices"]]
    return LoglikDoc(
        contexts=[f"Question: {row['question']}\nAnswer:"] * len(choices),
        continuations=[TARGET_DELIMITER + c for c in choices],
        choices=choices,
        gold=int(row["answer_index"]),
    )


def _mc_bare(row: Mapping[str, Any]) -> LoglikDoc:  # HellaSwag (query), OpenBookQA (stem)
    choices = [str(c) for c in row["choices"]]
    return LoglikDoc(
        contexts=[str(row["question"])] * len(choices),
        continuations=[TARGET_DELIMITER + c for c in choices],
        choices=choices,
        gold=int(row["answer_index"]),
    )


def _mc_lettered(row: Mapping[str, Any]) -> LoglikDoc:  # CommonsenseQA (lm-eval's format)
    choices = [str(c) for c in row["choices"]]
    labels = [str(x) for x in row.get("labels") or "ABCDEFGHIJ"[: len(choices)]]
    listing = "\n".join(f"{lab}. {c}" for lab, c in zip(labels, choices, strict=True))
    ctx = f"Question: {str(row['question']).strip()}\n{listing}\nAnswer:"
    return LoglikDoc(
        contexts=[ctx] * len(choices),
        continuations=[TARGET_DELIMITER + lab for lab in labels],
        choices=labels,
        gold=int(row["answer_index"]),
    )


def _winogrande(row: Mapping[str, Any]) -> LoglikDoc:  # partial scoring
    options = [str(c) for c in row["context_options"]]
    cont = TARGET_DELIMITER + str(row["continuation"]).strip()
    return LoglikDoc(
        contexts=options,
        continuations=[cont] * len(options),
        choices=options,
        gold=int(row["answer_index"]),
    )


def _boolq(row: Mapping[str, Any]) -> LoglikDoc:  # choices in lm-eval's order: no, yes
    ctx = f"{row['context']}\nQuestion: {row['question']}?\nAnswer:"
    choices = ["no", "yes"]
    gold = choices.index(str(row["answer"]).strip().lower())
    return LoglikDoc([ctx, ctx], [" no", " yes"], choices, gold)


def _lambada(row: Mapping[str, Any]) -> LoglikDoc:
    word = str(row["answer"])
    return LoglikDoc([str(row["context"])], [TARGET_DELIMITER + word], [word], 0)


_LOGLIK_BUILDERS: dict[str, Callable[[Mapping[str, Any]], LoglikDoc]] = {
    "mc_question": _mc_question,
    "mc_bare": _mc_bare,
    "mc_lettered": _mc_lettered,
    "winogrande": _winogrande,
    "yes_no": _boolq,
    "cloze": _lambada,
}


def _qa_prompt(row: Mapping[str, Any]) -> str:
    return f"Document: {row['context']}\n\nQuestion: {str(row['question']).strip()}\n\nAnswer:"


def _em_prompt(row: Mapping[str, Any]) -> str:
    return (
        f"Entity A: {row['left_text']}\nEntity B: {row['right_text']}\n\n"
        "Are Entity A and Entity B the same? Yes or No?\n\nAnswer:"
    )


def _pubmedqa_prompt(row: Mapping[str, Any]) -> str:
    return (
        f"Passage: {row['context']}\n\nQuestion: {str(row['question']).strip()}\n\n"
        "Answer yes, no or maybe.\n\nAnswer:"
    )


def _em_label(row: Mapping[str, Any]) -> str:
    if "label" in row and row["label"] is not None and str(row["label"]) != "":
        return "yes" if int(row["label"]) == 1 else "no"
    return str(row["answer"]).strip().lower()


_PROMPT_BUILDERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "extractive_qa": _qa_prompt,
    "entity_matching": _em_prompt,
    "yes_no_maybe": _pubmedqa_prompt,
}


# ----------------------------------------------------------------------------------
# Registry

_QA = ("context", "question", "answers")
_MC = ("question", "choices", "answer_index")
EM_SETS = (
    "em_abt_buy",
    "em_amazon_google",
    "em_walmart_amazon",
    "em_dblp_acm",
    "em_dblp_scholar",
    "em_beer",
    "em_itunes_amazon",
    "em_fodors_zagats",
)


def _qa_task(name: str, folder: str, desc: str, aliases: tuple[str, ...] = ()) -> Task:
    return Task(
        name,
        folder,
        "extractive_qa",
        "generate",
        ("exact_match", "f1"),
        _QA,
        desc,
        default_format="chat",
        max_new_tokens=32,
        aliases=aliases,
    )


def _mc_task(
    name: str,
    folder: str,
    builder: str,
    desc: str,
    metrics: tuple[str, ...] = ("acc", "acc_norm"),
    required: tuple[str, ...] = _MC,
    kind: str = "multiple_choice",
) -> Task:
    return Task(
        name, folder, kind, "loglikelihood", metrics, required, desc, extra={"builder": builder}
    )


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add a task to the registry (replacing one of the same name)."""
    TASKS[task.name] = task
    return task


for _t in (
    _qa_task("squad", "squad_v1_1_dev", "SQuAD v1.1 dev: extractive QA, greedy; EM and F1"),
    _qa_task(
        "tydiqa_goldp_en",
        "tydiqa_goldp_en_dev",
        "TyDi QA GoldP (English) dev: extractive QA; EM and F1",
        aliases=("tydiqa",),
    ),
    _qa_task("xquad_en", "xquad_en_squad11dev", "XQuAD English (a subset of SQuAD dev)"),
    _mc_task("arc_easy", "arc_easy_test", "mc_question", "ARC-Easy test: acc, acc_norm"),
    _mc_task(
        "arc_challenge", "arc_challenge_test", "mc_question", "ARC-Challenge test: acc, acc_norm"
    ),
    _mc_task("hellaswag", "hellaswag_validation", "mc_bare", "HellaSwag validation: acc, acc_norm"),
    _mc_task("piqa", "piqa_validation", "mc_question", "PIQA validation: acc, acc_norm"),
    _mc_task(
        "openbookqa", "openbookqa_test", "mc_bare", "OpenBookQA test (question stem): acc, acc_norm"
    ),
    _mc_task(
        "winogrande",
        "winogrande_dev",
        "winogrande",
        "WinoGrande dev (partial scoring): acc",
        metrics=("acc",),
        required=("context_options", "continuation", "answer_index"),
    ),
    _mc_task(
        "boolq",
        "boolq_dev",
        "yes_no",
        "BoolQ dev: ' yes'/' no' log-likelihood; acc",
        metrics=("acc",),
        required=("context", "question", "answer"),
        kind="yes_no",
    ),
    _mc_task(
        "commonsense_qa",
        "commonsense_qa_dev",
        "mc_lettered",
        "CommonsenseQA dev (lettered choices, lm-eval format): acc",
        metrics=("acc",),
    ),
    Task(
        "lambada",
        "lambada_openai_test",
        "cloze",
        "loglikelihood",
        ("accuracy", "perplexity"),
        ("context", "answer"),
        "LAMBADA (OpenAI) test: greedy last-word accuracy and perplexity",
        aliases=("lambada_openai",),
        extra={"builder": "cloze"},
    ),
    Task(
        "pubmedqa",
        "pubmedqa_labeled",
        "yes_no_maybe",
        "generate",
        ("accuracy", "macro_f1"),
        ("context", "question", "answer"),
        "PubMedQA labeled: yes/no/maybe generation; accuracy and macro F1",
        default_format="chat",
        max_new_tokens=8,
    ),
    *(
        Task(
            s,
            s,
            "entity_matching",
            "generate",
            ("f1", "accuracy"),
            ("left_text", "right_text", "answer"),
            f"Entity matching ({s[3:]}): yes/no generation; F1 of 'yes' and accuracy",
            default_format="chat",
            max_new_tokens=8,
        )
        for s in EM_SETS
    ),
):
    register(_t)

GROUPS: dict[str, tuple[str, ...]] = {
    "gpt4all": (
        "arc_easy",
        "arc_challenge",
        "boolq",
        "hellaswag",
        "openbookqa",
        "piqa",
        "winogrande",
        "lambada",
    ),
    "em": EM_SETS,
    "mc": (
        "arc_easy",
        "arc_challenge",
        "hellaswag",
        "piqa",
        "openbookqa",
        "winogrande",
        "boolq",
        "commonsense_qa",
    ),
}


def _alias_map() -> dict[str, str]:
    out = {t.name: t.name for t in TASKS.values()}
    for t in TASKS.values():
        for a in t.aliases:
            out[a] = t.name
    return out


def get(name: str) -> Task:
    """A task by name or alias; :class:`UnknownTask` with a suggestion otherwise."""
    names = _alias_map()
    key = name.strip().lower()
    if key in names:
        return TASKS[names[key]]
    close = difflib.get_close_matches(key, [*names, *GROUPS], n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownTask(
        f"unknown task {name!r}{hint} (tasks: {', '.join(sorted(TASKS))}; "
        f"groups: {', '.join(sorted(GROUPS))})"
    )


def resolve(names: Iterable[str]) -> list[Task]:
    """Tasks for a list of task and group names, expanded, in order, without duplicates."""
    out: list[Task] = []
    for name in names:
        members = GROUPS.get(name.strip().lower(), (name,))
        for m in members:
            t = get(m)
            if t not in out:
                out.append(t)
    if not out:
        raise UnknownTask("no task given (e.g. --task squad --task gpt4all)")
    return out


# ----------------------------------------------------------------------------------
# Loading rows


@dataclass(frozen=True)
class Loaded:
    """A task's rows and where they came from."""

    rows: list[dict[str, Any]]
    source: str


def default_data_dir() -> Path | None:
    """``$COOKBOOK_EVAL_DATA`` when set."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def load(
    task: Task,
    source: str | os.PathLike[str] | None = None,
    *,
    limit: int | None = None,
    fields: Mapping[str, str] | None = None,
) -> Loaded:
    """Rows of ``task`` (the first ``limit``), checked for the fields the task needs.

    ``source``: a data folder (one subfolder per set, named like ``task.folder``,
    holding ``*.jsonl``), a JSONL/Parquet/CSV file, or ``"hub"`` (Hugging Face
    ``datasets``; needs network).  None: ``$COOKBOOK_EVAL_DATA``, else the hub when
    online.  ``fields`` maps schema fields to the file's column names (Parquet/CSV/
    JSONL), e.g. ``{"question": "q", "answers": "gold"}``.
    """
    if limit is not None and limit < 1:
        raise BadInput(f"limit must be >= 1, got {limit}")
    if source is None:
        source = default_data_dir()
        if source is None:
            from cookbook_core.train import models

            if models.hub_offline():
                raise TaskDataError(
                    f"no data for task {task.name}: pass --data-dir FOLDER (one subfolder per "
                    f"set, e.g. FOLDER/{task.folder}/*.jsonl) or set ${DATA_DIR_ENV}; the "
                    "Hugging Face hub is offline"
                )
            source = "hub"
    if str(source) == "hub":
        rows = load_hub(task, limit=limit)
        return Loaded(rows, f"hub:{HUB_SOURCES[task.name].path}")
    path = Path(source).expanduser()
    if path.is_dir():
        sub = path / task.folder
        if not sub.is_dir():
            sets = sorted(p.name for p in path.iterdir() if p.is_dir())
            hint = difflib.get_close_matches(task.folder, sets, n=1, cutoff=0.6)
            raise TaskDataError(
                f"data folder {path} has no subfolder {task.folder!r} for task {task.name}"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
                + (f" (it has: {', '.join(sets[:12])}{' ...' if len(sets) > 12 else ''})")
            )
        files = sorted(sub.glob("*.jsonl"))
        if not files:
            raise TaskDataError(f"{sub} holds no *.jsonl file for task {task.name}")
        rows: list[dict[str, Any]] = []
        for f in files:
            rows += read_file(task, f, limit=None if limit is None else limit - len(rows))
            if limit is not None and len(rows) >= limit:
                break
        return Loaded(rows, str(sub))
    if not path.is_file():
        raise TaskDataError(f"data for task {task.name}: {path} does not exist")
    return Loaded(read_file(task, path, limit=limit, fields=fields), str(path))


def read_file(
    task: Task,
    path: Path,
    *,
    limit: int | None = None,
    fields: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Rows of one JSONL, Parquet or CSV file, mapped by ``fields`` and checked."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        raw = _jsonl(path, limit)
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TaskDataError(f"{path}: not a readable Parquet file ({first})") from None
        raw = [(i + 1, r) for i, r in enumerate(table.to_pylist()[:limit])]
    elif suffix in (".csv", ".tsv"):
        raw = _csv(path, "\t" if suffix == ".tsv" else ",", limit)
    else:
        raise TaskDataError(
            f"{path}: unsupported file type {suffix!r} (use .jsonl, .parquet, .csv)"
        )
    if not raw:
        raise TaskDataError(f"{path} is empty (no rows for task {task.name})")
    where = "line" if suffix in (".jsonl", ".json", ".csv", ".tsv") else "row"
    return [_checked(task, _mapped(r, fields), path, n, where) for n, r in raw]


def _csv_value(v: str | None) -> Any:
    """CSV cells holding JSON lists/objects/numbers (e.g. choices) are decoded."""
    if v is None:
        return None
    s = v.strip()
    if s[:1] in "[{" or s.lstrip("-").isdigit():
        try:
            return json.loads(s)
        except ValueError:
            return v
    return v


def _csv(path: Path, delimiter: str, limit: int | None) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TaskDataError(f"{path}: not UTF-8 text (is it a binary file?)") from None
    if "\0" in text:
        raise TaskDataError(f"{path}: not a CSV file (it holds NUL bytes)")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    raw: list[tuple[int, dict[str, Any]]] = []
    try:
        for r in reader:
            if limit is not None and len(raw) >= limit:
                break
            if None in r:
                raise TaskDataError(f"{path}:{reader.line_num}: more cells than the header has")
            raw.append((reader.line_num, {k: _csv_value(v) for k, v in r.items()}))
    except csv.Error as exc:
        raise TaskDataError(f"{path}:{reader.line_num}: not a CSV file ({exc})") from None
    return raw


def _jsonl(path: Path, limit: int | None) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for n, row in storage.iter_jsonl(path, error=TaskDataError):
        if limit is not None and len(out) >= limit:
            break
        out.append((n, row))
    return out


def _mapped(row: dict[str, Any], fields: Mapping[str, str] | None) -> dict[str, Any]:
    if not fields:
        return row
    out = dict(row)
    for schema_name, column in fields.items():
        if column in row:
            out[schema_name] = row[column]
    return out


# Fields a row must hold as text (numbers pass: CSV cells like "1984" are decoded).
_TEXT_FIELDS = ("context", "question", "continuation", "left_text", "right_text")
_LIST_FIELDS = ("answers", "choices", "context_options")


def _is_text(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _type_problem(task: Task, row: Mapping[str, Any]) -> str | None:
    """What is wrong with the types of a row's fields for ``task`` (None when nothing)."""
    for f in task.required:
        value = row[f]
        if f in _TEXT_FIELDS and not _is_text(value):
            return f"field {f!r} must be text, got {type(value).__name__}"
        if f in _LIST_FIELDS and not (
            isinstance(value, list) and value and all(_is_text(v) for v in value)
        ):
            return f"field {f!r} must be a non-empty list of texts"
        if f == "answer_index" and (not isinstance(value, int) or isinstance(value, bool)):
            return f"field 'answer_index' must be an integer, got {type(value).__name__}"
        if f == "answer" and not (_is_text(value) or isinstance(value, bool)):
            return f"field 'answer' must be text, got {type(value).__name__}"
    if task.kind == "yes_no" and str(row["answer"]).strip().lower() not in ("yes", "no"):
        return f"field 'answer' must be yes or no, got {row['answer']!r}"
    try:  # the prompt and gold answer are built the way evaluation builds them
        if task.method == "loglikelihood":
            task.loglik_doc(row)
        else:
            task.prompt(row)
            task.gold_text(row)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        return f"cannot build the {task.name} prompt from it ({type(exc).__name__}: {exc})"
    if task.kind == "entity_matching" and _em_label(row) not in ("yes", "no"):
        return f"the label must be yes/no or 1/0, got {row.get('label', row['answer'])!r}"
    if task.kind == "yes_no_maybe" and str(row["answer"]).lower() not in ("yes", "no", "maybe"):
        return f"field 'answer' must be yes, no or maybe, got {row['answer']!r}"
    return None


def _checked(task: Task, row: dict[str, Any], path: Path, n: int, where: str) -> dict[str, Any]:
    for f in task.required:
        if f not in row or row[f] is None:
            raise TaskDataError(
                f"{path}, {where} {n}: missing field {f!r} (task {task.name} needs "
                f"{', '.join(task.required)}; map other column names with --field {f}=COLUMN)"
            )
    if task.kind == "extractive_qa" and isinstance(row["answers"], str):
        row = {**row, "answers": [row["answers"]]}
    if "choices" in task.required:
        choices = row["choices"]
        if not isinstance(choices, list) or len(choices) < 2:
            raise TaskDataError(f"{path}, {where} {n}: 'choices' must be a list of 2 or more")
        idx = row["answer_index"]
        if not isinstance(idx, int) or not 0 <= idx < len(choices):
            raise TaskDataError(
                f"{path}, {where} {n}: answer_index {idx!r} is not an index into choices"
            )
    problem = _type_problem(task, row)
    if problem:
        raise TaskDataError(f"{path}, {where} {n}: {problem}")
    row.setdefault("id", f"{path.stem}-{n}")
    return row


def fewshot_rows(
    rows: Sequence[dict[str, Any]], index: int, k: int, seed: int
) -> list[dict[str, Any]]:
    """``k`` examples drawn (seeded per example) from the other rows of the same set."""
    if k <= 0:
        return []
    others = [i for i in range(len(rows)) if i != index]
    rng = random.Random(seed * 1_000_003 + index)
    return [rows[i] for i in rng.sample(others, min(k, len(others)))]


# ----------------------------------------------------------------------------------
# Hugging Face hub (needs network; not exercised by the offline test suite)


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
    import re

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


def load_hub(task: Task, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of ``task`` from its official hub dataset, mapped to the normalized schema."""
    src = HUB_SOURCES.get(task.name)
    if src is None:
        raise TaskDataError(
            f"task {task.name} has no Hugging Face hub source: pass --data-dir with a "
            f"{task.folder}/ subfolder"
        )
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
    rows = []
    for i, r in enumerate(ds):
        conv = src.convert(dict(r), i)
        if conv is None:
            continue
        conv.update(dataset=task.folder, task=task.kind)
        rows.append(_checked(task, conv, Path(src.path), i, "row"))
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise TaskDataError(f"{src.path} gave no rows for task {task.name}")
    return rows
