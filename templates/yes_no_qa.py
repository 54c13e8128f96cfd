"""Template ``yes_no_qa``: answer yes when the question's words occur in the passage."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from cookbook_core.template_helpers import (
    draw,
    draw_excluding,
    draw_unique,
    find_spans,
    overlap,
    yes_no,
)
from cookbook_core.templates import Example, OneOf, Range, template


def supported(passage: list[str], question: list[str], mode: str, threshold: float) -> bool:
    """The rule: the question as a contiguous span of the passage (``span``), or the share
    of the question's distinct tokens found in the passage at least ``threshold``."""
    if mode == "span":
        return bool(find_spans(passage, question))
    distinct = {t.lower() for t in question}
    return bool(distinct) and overlap(question, passage) / len(distinct) >= threshold


@template(name="yes_no_qa", family="comparison", task=("boolq",))
def yes_no_qa(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    passage_len: Annotated[int, Range(2, 500), "Tokens in the passage."] = 60,
    question_len: Annotated[int, Range(1, 20), "Tokens in the question."] = 5,
    mode: Annotated[
        str,
        OneOf("span", "overlap"),
        "yes if the question is a span of the passage, or if it shares enough tokens with it.",
    ] = "span",
    threshold: Annotated[
        float, Range(0.1, 1.0), "overlap mode: share of question tokens in the passage for yes."
    ] = 0.5,
    positive_rate: Annotated[float, Range(0.0, 1.0), "Share of yes answers."] = 0.5,
) -> Example:
    """Stands for BoolQ, yes/no questions about a passage, where "yes" tends to go with
    a question whose words the passage states.  In ``span`` mode the answer is "yes"
    when the question's tokens occur in the passage in order as one contiguous span
    ("no" questions are such a span with one token replaced by a new one, or two
    neighbours swapped); in ``overlap`` mode it is "yes" when the share of the
    question's distinct tokens found in the passage is at least ``threshold``.
    """
    passage = draw(rng, vocab, passage_len)
    want = rng.random() < positive_rate
    if mode == "span":
        question_len = min(question_len, passage_len)
        start = rng.randrange(passage_len - question_len + 1)
        question = passage[start : start + question_len]
        if not want:
            swapped = question_len >= 2 and rng.random() < 0.5
            if swapped:
                k = rng.randrange(question_len - 1)  # swap two neighbours: breaks the order
                question[k], question[k + 1] = question[k + 1], question[k]
            if not swapped or find_spans(passage, question):  # the swapped order may occur too
                new = draw_excluding(rng, vocab, 1, passage)[0]  # a token not in the passage
                question[rng.randrange(question_len)] = new
    else:
        by_low = {t.lower(): t for t in passage}
        pool = list(by_low.values())
        question_len = min(question_len, len(pool))
        ks = [k for k in range(question_len + 1) if (k / question_len >= threshold) == want]
        k = rng.choice(ks)
        question = rng.sample(pool, k) + draw_unique(rng, vocab, question_len - k, set(by_low))
        rng.shuffle(question)
    p, q = " ".join(passage), " ".join(question)
    return Example(
        prompt=f"Passage: {p}\n\nQuestion: {q}?\n\nAnswer:",
        completion="yes" if want else "no",
        meta={"parent": {"passage": p}, "child": {"question": q}, "rule": {"mode": mode}},
    )


@yes_no_qa.checker
def _check(inputs: Mapping[str, Any], answer: str, params: Mapping[str, Any]) -> bool:
    ok = supported(
        inputs["passage"].split(), inputs["question"].split(), params["mode"], params["threshold"]
    )
    return yes_no(answer) == ("yes" if ok else "no")
