"""Template ``document_qa``: extractive question answering over random tokens."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from cookbook_core.template_helpers import answer_tokens, draw, find_spans
from cookbook_core.templates import Example, OneOf, Range, template


@template(name="document_qa", family="search", task=("squad", "tydiqa_goldp_en"))
def document_qa(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    doc_len: Annotated[int, Range(10, 1000), "Tokens in the document."] = 100,
    span_len: Annotated[int, Range(1, 20), "Tokens in the question (a span of the document)."] = 4,
    k: Annotated[int, Range(1, 10), "Answer length: tokens next to the span."] = 3,
    direction: Annotated[
        str, OneOf("both", "after", "before"), "Side of the span the answer comes from."
    ] = "both",
) -> Example:
    """Stands for extractive QA (SQuAD, TyDi QA), where the answer is a short span of
    the context next to where the question's words occur.  The document is random
    tokens, the question is a span copied from it, and the answer is the ``k`` tokens
    right after or before that span, mimicking both "X is [the capital of France]"
    and "[The capital of France] is X".
    """
    doc_len = max(doc_len, span_len + k)
    doc = draw(rng, vocab, doc_len)
    side = direction if direction != "both" else ("after" if rng.random() < 0.5 else "before")
    if side == "after":
        start = rng.randrange(0, doc_len - span_len - k + 1)
        answer = doc[start + span_len : start + span_len + k]
    else:
        start = rng.randrange(k, doc_len - span_len + 1)
        answer = doc[start - k : start]
    question = doc[start : start + span_len]
    document = " ".join(doc)
    q = " ".join(question)
    return Example(
        prompt=f"Document: {document}\n\nQuestion: {q}\n\nAnswer:",
        completion=" ".join(answer),
        meta={
            "parent": {"document": document},
            "child": {"question": q, "span_start": start, "side": side},
        },
    )


@document_qa.checker
def _check(inputs: Mapping[str, Any], answer: str, params: Mapping[str, Any]) -> bool:
    doc = inputs["document"].split()
    span = inputs["question"].split()
    k = params["k"]
    sides = ("after", "before") if params["direction"] == "both" else (params["direction"],)
    got = answer_tokens(answer)
    for start in find_spans(doc, span):
        windows = []
        if "after" in sides and start + len(span) + k <= len(doc):
            windows.append(doc[start + len(span) : start + len(span) + k])
        if "before" in sides and start - k >= 0:
            windows.append(doc[start - k : start])
        if any(got == answer_tokens(" ".join(w)) for w in windows):
            return True
    return False
