"""Evaluation tasks: a registry of real benchmarks, each with its loader, prompts and scorer.

A :class:`Task` is declared with keyword arguments (the registry below) and knows

* where its rows come from: the folder name of its set in a data folder laid out
  like ``../shared/data`` (``squad`` reads ``squad_v1_1_dev/*.jsonl``), a single
  JSONL file in the normalized schema, a Parquet/CSV file plus a field mapping, or
  the Hugging Face hub through ``datasets`` when online (each official dataset's
  fields mapped to the same schema by :mod:`cookbook_core.eval.hub`);
* how to prompt: log-likelihood tasks build ``(context, continuation)`` pairs
  exactly as lm-evaluation-harness does (plain text, ``target_delimiter`` " ",
  few-shot examples joined by a blank line); generation tasks build a user prompt
  that the evaluator wraps in the model's chat template (the same
  ``training.format_prompt`` that fine-tuning uses) or leaves plain;
* how to score one example (its ``score_choices`` or ``score_text``) and which metrics
  it reports: entries of the metric table :data:`METRICS`, each saying how per-example
  scores become the number and whether that number is a plain mean (so aggregation and
  bootstrap intervals read the same fact).

Prompt choices for generation tasks follow the shipped templates, so that what a
model learns from template data transfers: extractive QA uses document_qa's
``"Document: {context}\\n\\nQuestion: {question}\\n\\nAnswer:"``; entity matching
uses entity_matching's ``"Entity A: ...\\nEntity B: ...\\n\\nAre Entity A and Entity B
the same? Yes or No?\\n\\nAnswer:"``; PubMedQA uses yes_no_qa's passage/question form.

Groups: ``gpt4all`` (the Cookbook paper's 8 tasks), ``em`` (the 8 entity-matching
sets), ``mc`` (all log-likelihood multiple-choice tasks).  This module never loads a
model, and never imports ``datasets`` (the hub loaders do, when used).
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
class Metric:
    """How one reported number is computed from the per-example score dicts.

    ``mean_of`` names the per-example value whose plain mean it is (its bootstrap
    interval resamples that list); ``None`` marks a set-level metric (the F1 of one
    class, macro F1, perplexity), whose interval resamples whole examples through
    ``aggregate``.
    """

    aggregate: Callable[[Sequence[Mapping[str, Any]]], float]
    mean_of: str | None = None

    @property
    def is_mean(self) -> bool:
        return self.mean_of is not None


def _mean(key: str) -> Metric:
    def aggregate(items: Sequence[Mapping[str, Any]]) -> float:
        return sum(float(i[key]) for i in items) / len(items) if items else 0.0

    return Metric(aggregate, mean_of=key)


def _labels_f1(items: Sequence[Mapping[str, Any]]) -> tuple[list[Any], list[Any]]:
    return [i["pred"] for i in items], [i["gold"] for i in items]


METRICS: dict[str, Metric] = {
    "exact_match": _mean("exact_match"),
    "token_f1": _mean("f1"),  # SQuAD's token F1, averaged over examples
    "acc": _mean("acc"),
    "acc_norm": _mean("acc_norm"),
    "accuracy": _mean("accuracy"),
    "perplexity": Metric(lambda items: scoring.perplexity([i["loglikelihood"] for i in items])),
    "f1_yes": Metric(lambda items: scoring.f1_positive(*_labels_f1(items), "yes")),
    "macro_f1_ynm": Metric(
        lambda items: scoring.macro_f1(*_labels_f1(items), ("yes", "no", "maybe"))
    ),
}
"""The metric table: every way a task turns per-example scores into a reported number.
A task reports some of them under its own names (:func:`metrics`)."""


def metrics(*names: str, **renamed: str) -> dict[str, Metric]:
    """A task's reported metrics from :data:`METRICS`: ``metrics("acc", "acc_norm")``, or
    ``metrics(f1="f1_yes", accuracy="accuracy")`` to report an entry under another name."""
    return {**{n: METRICS[n] for n in names}, **{n: METRICS[m] for n, m in renamed.items()}}


@dataclass(frozen=True, kw_only=True)
class Task:
    """A benchmark, declared with keywords: its data, prompting, scoring and metrics.

    ``kind`` names the row family (``extractive_qa``, ``multiple_choice``, ``yes_no``,
    ``cloze``, ``entity_matching``, ``yes_no_maybe``): which templates' rules and which
    drafting contracts read its rows.  Behaviour is never looked up from it: a
    log-likelihood task gives ``build_loglik`` and ``score_choices``, a generation task
    ``build_prompt`` and ``score_text``; ``metric_table`` (built with :func:`metrics`)
    says what each reported metric is.
    """

    name: str
    folder: str
    kind: str
    description: str
    required: tuple[str, ...] = ()
    metric_table: Mapping[str, Metric] = field(default_factory=dict)
    build_loglik: Callable[[Mapping[str, Any]], LoglikDoc] | None = None
    score_choices: (
        Callable[[LoglikDoc, Sequence[tuple[float, bool]], Sequence[str]], dict[str, Any]] | None
    ) = None
    build_prompt: Callable[[Mapping[str, Any]], str] | None = None
    score_text: Callable[[Mapping[str, Any], str], dict[str, Any]] | None = None
    gold: Callable[[Mapping[str, Any]], str] = lambda row: str(row["answer"])
    golds: Callable[[Mapping[str, Any]], list[Any]] | None = None  # every reference answer
    normalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # after loading a row
    check_row: Callable[[Mapping[str, Any]], str | None] = lambda row: None  # value checks
    greedy_continuation: bool = False  # a cloze: also record the model's own greedy answer
    default_format: str = "plain"  # "plain" or "chat"
    max_new_tokens: int = 32
    stop: tuple[str, ...] = ("\n",)
    aliases: tuple[str, ...] = ()

    @property
    def method(self) -> str:
        """``loglikelihood`` or ``generate``."""
        return "loglikelihood" if self.build_loglik is not None else "generate"

    @property
    def metrics(self) -> tuple[str, ...]:
        """The reported metric names, the main one first."""
        return tuple(self.metric_table)

    # -- prompts --------------------------------------------------------------------

    def loglik_doc(self, row: Mapping[str, Any]) -> LoglikDoc:
        """Contexts, continuations, choices and gold index for a log-likelihood task."""
        if self.build_loglik is None:
            raise ValueError(f"{self.name} is not a log-likelihood task")
        return self.build_loglik(row)

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
        if self.build_prompt is None:
            raise ValueError(f"{self.name} is not a generation task")
        build = self.build_prompt
        parts = [build(s) + " " + self.gold_text(s) for s in shots]
        return FEWSHOT_DELIMITER.join([*parts, build(row)])

    def gold_text(self, row: Mapping[str, Any]) -> str:
        """The reference answer as text (the first gold for QA)."""
        return self.gold(row)

    def gold_record(self, row: Mapping[str, Any]) -> Any:
        """The gold answer a generation record keeps: every reference when there are
        several (QA), else the reference text."""
        return self.golds(row) if self.golds is not None else self.gold(row)

    # -- scoring --------------------------------------------------------------------

    def score_generation(self, row: Mapping[str, Any], text: str) -> dict[str, Any]:
        """Per-example scores of a generated answer (metric name -> value, plus parse)."""
        if self.score_text is None:
            raise ValueError(f"{self.name} is not a generation task")
        return self.score_text(row, text)

    def score_loglik(self, doc: LoglikDoc, results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
        """Per-example scores from ``(loglikelihood, is_greedy)`` per choice."""
        if self.score_choices is None:
            raise ValueError(f"{self.name} is not a log-likelihood task")
        return self.score_choices(doc, results, self.metrics)

    def metric(self, name: str) -> Metric:
        """How the reported metric ``name`` is computed (``KeyError`` if not reported)."""
        return self.metric_table[name]

    def aggregate(self, metric: str) -> Callable[[Sequence[Mapping[str, Any]]], float]:
        """The function turning per-example score dicts into the task's ``metric``."""
        return self.metric(metric).aggregate

    def is_mean(self, metric: str) -> bool:
        """True when ``metric`` is a plain mean of a per-example value."""
        return self.metric(metric).is_mean


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


# ----------------------------------------------------------------------------------
# Gold answers, row checks and per-example scorers


def _qa_golds(row: Mapping[str, Any]) -> list[Any]:
    return list(row.get("answers") or [row["answer"]])


def _qa_gold(row: Mapping[str, Any]) -> str:
    return str(_qa_golds(row)[0])


def _qa_normalize(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "answers": [row["answers"]]} if isinstance(row["answers"], str) else row


def _em_gold(row: Mapping[str, Any]) -> str:
    return "Yes" if _em_label(row) == "yes" else "No"


def _answer_in(*allowed: str) -> Callable[[Mapping[str, Any]], str | None]:
    def check(row: Mapping[str, Any]) -> str | None:
        if str(row["answer"]).strip().lower() in allowed:
            return None
        words = ", ".join(allowed[:-1]) + " or " + allowed[-1]
        return f"field 'answer' must be {words}, got {row['answer']!r}"

    return check


def _em_check(row: Mapping[str, Any]) -> str | None:
    if _em_label(row) in ("yes", "no"):
        return None
    return f"the label must be yes/no or 1/0, got {row.get('label', row['answer'])!r}"


def _score_qa(row: Mapping[str, Any], text: str) -> dict[str, Any]:
    golds = [str(a) for a in _qa_golds(row)]
    answer = text.strip()
    return {
        "exact_match": scoring.max_over_golds(scoring.exact_match, answer, golds),
        "f1": scoring.max_over_golds(scoring.token_f1, answer, golds),
    }


def _score_label(
    labels: tuple[str, ...], gold_of: Callable[[Mapping[str, Any]], str]
) -> Callable[[Mapping[str, Any], str], dict[str, Any]]:
    def score(row: Mapping[str, Any], text: str) -> dict[str, Any]:
        pred = scoring.parse_label(text, labels)
        gold = gold_of(row)
        return {"pred": pred, "gold": gold, "accuracy": float(pred == gold)}

    return score


def _score_choice(
    doc: LoglikDoc, results: Sequence[tuple[float, bool]], reported: Sequence[str]
) -> dict[str, Any]:
    """Multiple choice: the highest log-likelihood (``acc``) and, when reported, the
    highest per character (``acc_norm``)."""
    pred, pred_norm = scoring.mc_predictions([r[0] for r in results], doc.choices)
    out: dict[str, Any] = {"pred": pred, "acc": float(pred == doc.gold)}
    if "acc_norm" in reported:
        out["pred_norm"] = pred_norm
        out["acc_norm"] = float(pred_norm == doc.gold)
    return out


def _score_cloze(
    doc: LoglikDoc, results: Sequence[tuple[float, bool]], reported: Sequence[str]
) -> dict[str, Any]:
    """A cloze: whether the gold word is the greedy continuation, and its log-likelihood."""
    return {"accuracy": float(results[0][1]), "loglikelihood": results[0][0]}


# ----------------------------------------------------------------------------------
# Registry

_QA_ROW = ("context", "question", "answers")
_MC_ROW = ("question", "choices", "answer_index")
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

# What whole families of tasks share (each task below adds its name, folder, description)
_EXTRACTIVE_QA: dict[str, Any] = {
    "kind": "extractive_qa",
    "required": _QA_ROW,
    "metric_table": metrics("exact_match", f1="token_f1"),
    "build_prompt": _qa_prompt,
    "score_text": _score_qa,
    "gold": _qa_gold,
    "golds": _qa_golds,
    "normalize": _qa_normalize,
    "default_format": "chat",
    "max_new_tokens": 32,
}
_MULTIPLE_CHOICE: dict[str, Any] = {
    "kind": "multiple_choice",
    "required": _MC_ROW,
    "metric_table": metrics("acc", "acc_norm"),
    "score_choices": _score_choice,
}
_ENTITY_MATCHING: dict[str, Any] = {
    "kind": "entity_matching",
    "required": ("left_text", "right_text", "answer"),
    "metric_table": metrics(f1="f1_yes", accuracy="accuracy"),
    "build_prompt": _em_prompt,
    "score_text": _score_label(("yes", "no"), _em_label),
    "gold": _em_gold,
    "check_row": _em_check,
    "default_format": "chat",
    "max_new_tokens": 8,
}

TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add a task to the registry (replacing one of the same name)."""
    TASKS[task.name] = task
    return task


for _t in (
    Task(
        name="squad",
        folder="squad_v1_1_dev",
        description="SQuAD v1.1 dev: extractive QA, greedy; EM and F1",
        **_EXTRACTIVE_QA,
    ),
    Task(
        name="tydiqa_goldp_en",
        folder="tydiqa_goldp_en_dev",
        description="TyDi QA GoldP (English) dev: extractive QA; EM and F1",
        aliases=("tydiqa",),
        **_EXTRACTIVE_QA,
    ),
    Task(
        name="xquad_en",
        folder="xquad_en_squad11dev",
        description="XQuAD English (a subset of SQuAD dev)",
        **_EXTRACTIVE_QA,
    ),
    Task(
        name="arc_easy",
        folder="arc_easy_test",
        description="ARC-Easy test: acc, acc_norm",
        build_loglik=_mc_question,
        **_MULTIPLE_CHOICE,
    ),
    Task(
        name="arc_challenge",
        folder="arc_challenge_test",
        description="ARC-Challenge test: acc, acc_norm",
        build_loglik=_mc_question,
        **_MULTIPLE_CHOICE,
    ),
    Task(
        name="hellaswag",
        folder="hellaswag_validation",
        description="HellaSwag validation: acc, acc_norm",
        build_loglik=_mc_bare,
        **_MULTIPLE_CHOICE,
    ),
    Task(
        name="piqa",
        folder="piqa_validation",
        description="PIQA validation: acc, acc_norm",
        build_loglik=_mc_question,
        **_MULTIPLE_CHOICE,
    ),
    Task(
        name="openbookqa",
        folder="openbookqa_test",
        description="OpenBookQA test (question stem): acc, acc_norm",
        build_loglik=_mc_bare,
        **_MULTIPLE_CHOICE,
    ),
    Task(
        name="winogrande",
        folder="winogrande_dev",
        description="WinoGrande dev (partial scoring): acc",
        build_loglik=_winogrande,
        **{
            **_MULTIPLE_CHOICE,
            "metric_table": metrics("acc"),
            "required": ("context_options", "continuation", "answer_index"),
        },
    ),
    Task(
        name="boolq",
        folder="boolq_dev",
        kind="yes_no",
        description="BoolQ dev: ' yes'/' no' log-likelihood; acc",
        required=("context", "question", "answer"),
        metric_table=metrics("acc"),
        build_loglik=_boolq,
        score_choices=_score_choice,
        check_row=_answer_in("yes", "no"),
    ),
    Task(
        name="commonsense_qa",
        folder="commonsense_qa_dev",
        description="CommonsenseQA dev (lettered choices, lm-eval format): acc",
        build_loglik=_mc_lettered,
        **{**_MULTIPLE_CHOICE, "metric_table": metrics("acc")},
    ),
    Task(
        name="lambada",
        folder="lambada_openai_test",
        kind="cloze",
        description="LAMBADA (OpenAI) test: greedy last-word accuracy and perplexity",
        required=("context", "answer"),
        metric_table=metrics("accuracy", "perplexity"),
        build_loglik=_lambada,
        score_choices=_score_cloze,
        greedy_continuation=True,
        aliases=("lambada_openai",),
    ),
    Task(
        name="pubmedqa",
        folder="pubmedqa_labeled",
        kind="yes_no_maybe",
        description="PubMedQA labeled: yes/no/maybe generation; accuracy and macro F1",
        required=("context", "question", "answer"),
        metric_table=metrics("accuracy", macro_f1="macro_f1_ynm"),
        build_prompt=_pubmedqa_prompt,
        score_text=_score_label(("yes", "no", "maybe"), lambda r: str(r["answer"]).lower()),
        check_row=_answer_in("yes", "no", "maybe"),
        default_format="chat",
        max_new_tokens=8,
    ),
    *(
        Task(
            name=s,
            folder=s,
            description=f"Entity matching ({s[3:]}): yes/no generation; F1 of 'yes' and accuracy",
            **_ENTITY_MATCHING,
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
        from cookbook_core.eval import hub

        rows = hub.load_hub(task, limit=limit)
        return Loaded(rows, f"hub:{hub.HUB_SOURCES[task.name].path}")
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
    return [checked_row(task, _mapped(r, fields), path, n, where) for n, r in raw]


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
    try:  # the task's own value checks, then the prompt and gold built as evaluation does
        problem = task.check_row(row)
        if problem is None and task.method == "loglikelihood":
            task.loglik_doc(row)
        elif problem is None:
            task.prompt(row)
            task.gold_text(row)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        return f"cannot build the {task.name} prompt from it ({type(exc).__name__}: {exc})"
    return problem


def checked_row(
    task: Task, row: dict[str, Any], path: Path | str, n: int, where: str = "line"
) -> dict[str, Any]:
    """``row`` checked for ``task`` (fields present, types, values, prompt buildable) and
    normalized; :class:`TaskDataError` naming ``path``, ``where`` and ``n`` otherwise."""
    path = Path(path)
    for f in task.required:
        if f not in row or row[f] is None:
            raise TaskDataError(
                f"{path}, {where} {n}: missing field {f!r} (task {task.name} needs "
                f"{', '.join(task.required)}; map other column names with --field {f}=COLUMN)"
            )
    if task.normalize is not None:
        row = task.normalize(row)
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
