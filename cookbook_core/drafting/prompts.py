"""The drafting prompt: what a model is shown when it is asked to write a template.

:func:`build_prompt` puts together, in this order: the task description (built in
per task, or the user's ``--description``); a summary of the template API (the
``@template`` decorator, ``Annotated`` parameters with ``Range``/``OneOf``,
``Example``, the ``@checker`` and its signature, the imports the sandbox allows, the
helpers a template may call, read from ``template_helpers`` itself so the summary
cannot drift); the row contract (the input names the checker is asked about on real
rows, see :mod:`.contracts`); two or three shipped templates as worked examples (the
same task family first; by default not the template that already stands for the
task, so a draft is not a copy of it); ``N`` real rows of the task with their gold
answers; and the answer format (one whole file in a ````python`` fence).

:func:`repair_prompt` is the same prompt followed by the failed attempt and its
error message.  :func:`prompt_hash` names a prompt in provenance.  This module
builds text only: it asks no model and runs no code.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cookbook_core import discovery, paths, template_helpers
from cookbook_core.drafting.contracts import SHIPPED_FOR_TASK, RowContract, TaskRows
from cookbook_core.sandbox.runner import ALLOWED_IMPORTS

MAX_FIELD_CHARS = 600  # a shown row's long text is cut here
HELPERS = (
    "draw",
    "draw_excluding",
    "draw_unique",
    "sample_few",
    "plant",
    "overlap_choices",
    "answer_tokens",
    "overlap",
    "jaccard",
    "argmax_unique",
    "find_spans",
    "parse_choice",
    "format_choices",
    "yes_no",
)
NOT_AN_EXAMPLE = frozenset({"rhyming_poetry"})  # needs the rhyme dictionary artifact


@dataclass(frozen=True)
class WorkedExample:
    """A shipped template shown in the prompt: its name, family and whole source file."""

    name: str
    family: str
    source: str


def helper_lines() -> list[str]:
    """``name(signature)  first doc line`` for the helpers a template may import."""
    out = []
    for name in HELPERS:
        fn = getattr(template_helpers, name, None)
        if fn is None or not callable(fn):
            continue
        doc = (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ").replace("``", "")
        sig = str(inspect.signature(fn)).replace("'", "")
        out.append(f"- {name}{sig}: {doc}")
    return out


def api_summary() -> str:
    """The template API in a page of text (decorator, parameters, Example, checker)."""
    allowed = ", ".join(sorted(ALLOWED_IMPORTS - {"__future__"}))
    return "\n".join(
        [
            "A template is one Python file. It declares a generator function decorated with",
            '`@template(name="...", family="selection"|"search"|"comparison", task=("...",))`',
            "from `cookbook_core.templates`. The function takes `(rng, vocab, *, ...)`:",
            "`rng` is a seeded random.Random, `vocab` a sequence of random token strings, and",
            "every parameter is keyword-only, typed with `typing.Annotated` and has a default,",
            'e.g. `doc_len: Annotated[int, Range(10, 1000), "Tokens in the document."] = 100`',
            '(int/float with `Range(low, high)`, str with `OneOf("a", "b")`, or bool).',
            "It returns `Example(prompt=..., completion=..., meta={...})`: the prompt text,",
            "the completion the rule dictates, and meta holding the drawn inputs under",
            '`"parent"` and inputs derived from them under `"child"` (plain str, int, float,',
            "bool, list or dict values).",
            "The rule checker is registered with `@<function name>.checker` on a function",
            "`_check(inputs, answer, params) -> bool`: `inputs` is meta's parent and child",
            "dicts merged, `answer` a completion text, `params` the parameters; it returns",
            "True when the answer follows the rule for those inputs.",
            "A template that needs data rather than code (a word list, a table) declares it",
            '`@template(..., artifacts={"words": "a JSON list of lowercase nouns"})` and reads',
            '`artifact("words")` (from template_helpers) inside its function or checker;',
            "the JSON itself is requested separately, once.",
            f"Imports allowed: {allowed}. Nothing else (no os, sys, files, network);",
            "no eval/exec/open/getattr, no attribute access starting with an underscore",
            "(`x._y`), no dunder names.",
            "Helpers in `cookbook_core.template_helpers`:",
            *helper_lines(),
            "Also there: LETTERS (the string 'ABC...Z').",
        ]
    )


def contract_text(contract: RowContract) -> str:
    """The row contract in words: the exact input names and the answer format."""
    lines = [
        "Besides its own samples, the checker is run on real rows of the task. There",
        "`inputs` holds exactly these keys, so the generator must store the same keys (same",
        'names, same types) in meta["parent"] and meta["child"], and the checker must read',
        "only these keys and `params`:",
    ]
    lines += [f"- {name}: {what}" for name, what in contract.inputs.items()]
    lines.append(f"The answer (completion) is {contract.answer}.")
    lines.append(
        "Real rows are natural text (capitals, punctuation, paraphrase; a question is not "
        "copied word for word from the passage): compare words loosely (lower-case, "
        "punctuation stripped) so that the rule also applies there."
    )
    return "\n".join(lines)


def worked_examples(
    rows: TaskRows, count: int = 2, *, include_own: bool = False
) -> list[WorkedExample]:
    """``count`` shipped templates: the task's family first (sorted by name), then others.

    ``include_own=False`` leaves out templates that stand for this task (its shipped
    template), so the model is shown how templates look, not the answer.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    own = {SHIPPED_FOR_TASK.get(rows.task.name, "")}
    entries = [
        e
        for e in discovery.scan([paths.SHIPPED_TEMPLATES])
        if e.ok and e.name not in NOT_AN_EXAMPLE
    ]
    if not include_own:
        entries = [e for e in entries if e.name not in own and rows.task.name not in e.tasks]
    family = rows.contract.family
    ordered = sorted(entries, key=lambda e: (e.family != family, e.name))
    out = []
    for e in ordered[:count]:
        out.append(WorkedExample(e.name, e.family, e.file.read_text(encoding="utf-8")))
    return out


def _cut(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    text = " ".join(text.split())
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + " ..."


def row_lines(rows: TaskRows) -> list[str]:
    """The shown rows as the checker would see them, each with its gold answer."""
    out = []
    for i, row in enumerate(rows.shown, 1):
        real = rows.contract.real_row(row)
        out.append(f"Row {i}:")
        out += [f"  {k}: {_cut(v)}" for k, v in real.inputs.items()]
        out.append(f"  answer: {_cut(real.golds[0]) if real.golds else '(none)'}")
    return out


def template_name(task: str) -> str:
    """The name a drafted template for ``task`` is asked to take."""
    return f"{task}_draft"


def build_prompt(
    rows: TaskRows,
    description: str,
    examples: Sequence[WorkedExample],
) -> str:
    """The whole drafting prompt (see the module docstring for its parts)."""
    task, contract = rows.task, rows.contract
    parts = [
        "You write data-generating templates for Cookbook, in Python. A template draws "
        "random tokens, builds a prompt/answer pair in which the answer follows from the "
        "inputs by a simple, explicit rule that mirrors a real task, and has a checker "
        "for that rule.",
        f"## The task\n{description}",
        f"## The template API\n{api_summary()}",
        f"## Inputs of the rule\n{contract_text(contract)}",
    ]
    if examples:
        shown = "\n\n".join(
            f"### {e.name} ({e.family})\n```python\n{e.source.rstrip()}\n```" for e in examples
        )
        parts.append(f"## Worked examples (shipped templates for other tasks)\n{shown}")
    if rows.shown:
        parts.append("## Real rows of the task\n" + "\n".join(row_lines(rows)))
    parts.append(
        "## Your answer\n"
        f"Write one new template file for this task: "
        f'`@template(name="{template_name(task.name)}", family="{contract.family}", '
        f'task=("{task.name}",))`, with a docstring saying what real task it stands for '
        "and what its rule is, typed parameters with defaults, random tokens from `vocab` "
        "as inputs, and a checker. Answer with the whole file in one ```python code block."
    )
    return "\n\n".join(parts) + "\n"


def repair_prompt(prompt: str, code: str | None, reason: str) -> str:
    """``prompt`` followed by the failed attempt and why it failed."""
    attempt = f"```python\n{code.rstrip()}\n```" if code else "(no code could be found in it)"
    return (
        f"{prompt}\n## Your previous attempt\n{attempt}\n\n"
        f"It was rejected: {reason}\n\n"
        "Fix that problem. Answer with the corrected whole file in one ```python code block.\n"
    )


def prompt_hash(prompt: str) -> str:
    """A short, stable name for a prompt (sha256, 16 hex digits)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def prompt_summary(
    prompt: str, examples: Sequence[WorkedExample], rows: TaskRows
) -> Mapping[str, Any]:
    """What went into a prompt, for tables and provenance."""
    return {
        "prompt_hash": prompt_hash(prompt),
        "chars": len(prompt),
        "worked_examples": [e.name for e in examples],
        "rows_shown": len(rows.shown),
    }
