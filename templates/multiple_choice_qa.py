"""Template ``multiple_choice_qa``: pick the choice that overlaps the question most."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from cookbook_core.template_helpers import (
    LETTERS,
    argmax_unique,
    draw_unique,
    format_choices,
    overlap,
    overlap_choices,
    parse_choice,
)
from cookbook_core.templates import Example, OneOf, Range, template


@template(
    name="multiple_choice_qa",
    family="selection",
    task=("arc_easy", "arc_challenge", "openbookqa", "commonsense_qa"),
)
def multiple_choice_qa(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    n_choices: Annotated[int, Range(2, 8), "Number of answer choices."] = 4,
    question_len: Annotated[int, Range(1, 50), "Tokens in the question (all distinct)."] = 10,
    choice_len: Annotated[int, Range(1, 20), "Tokens in each choice."] = 4,
    overlap_size: Annotated[
        int, Range(1, 10), "Question tokens in the correct choice (distractors get fewer)."
    ] = 2,
    answer_format: Annotated[
        str, OneOf("letter", "text"), "Answer with the choice letter or the choice text."
    ] = "letter",
) -> Example:
    """Stands for multiple-choice QA (ARC, OpenBookQA, CommonsenseQA), where the right
    answer usually shares words with the question.  The question is random distinct
    tokens; the correct choice holds exactly ``overlap_size`` of them and every
    distractor fewer, so the rule "pick the choice with the largest token overlap with
    the question" has one answer.  Answered by letter or by the choice text.
    """
    overlap_size = min(overlap_size, question_len, choice_len)
    seen: set[str] = set()
    question = draw_unique(rng, vocab, question_len, seen)
    options, gold = overlap_choices(
        rng, vocab, question, n_choices, choice_len, overlap_size, banned=seen
    )
    choices = [" ".join(o) for o in options]
    q = " ".join(question)
    answer = LETTERS[gold] if answer_format == "letter" else choices[gold]
    return Example(
        prompt=f"Question: {q}\n\nChoices:\n{format_choices(choices)}\n\nAnswer:",
        completion=answer,
        meta={
            "parent": {"question": q},
            "child": {"choices": choices},
            "rule": {"answer_index": gold, "overlap": overlap_size},
        },
    )


@multiple_choice_qa.checker
def _check(inputs: Mapping[str, Any], answer: str, params: Mapping[str, Any]) -> bool:
    question = inputs["question"].split()
    choices = inputs["choices"]
    best = argmax_unique([overlap(question, c.split()) for c in choices])
    return best is not None and parse_choice(answer, choices) == best
