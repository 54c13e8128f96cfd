"""Template ``retrieval``: name the passage that contains the query."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from cookbook_core.template_helpers import (
    answer_tokens,
    argmax_unique,
    draw_outside,
    draw_unique,
    overlap,
    plant,
    sample_few,
)
from cookbook_core.templates import Example, OneOf, Range, template


@template(name="retrieval", family="search", task=("squad", "tydiqa_goldp_en"))
def retrieval(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    n_passages: Annotated[int, Range(2, 20), "Number of passages to search."] = 4,
    passage_len: Annotated[int, Range(1, 200), "Tokens in each passage."] = 20,
    query_len: Annotated[int, Range(1, 20), "Tokens in the query (all distinct)."] = 4,
    id_style: Annotated[
        str,
        OneOf("index", "random"),
        "Passage ids: 1..n in order, or distinct random numbers below 1000.",
    ] = "index",
) -> Example:
    """Stands for the retrieval step of open-domain QA (SQuAD, TyDi QA contexts): find
    the passage that holds the question's words.  Passages are random tokens tagged
    with ids like ``[3]``; one holds the whole query as a contiguous span, every other
    passage holds fewer of the query's tokens (scattered), so the rule "answer the id
    of the passage with the largest token overlap with the query" has one answer.
    """
    passage_len = max(passage_len, query_len)
    seen: set[str] = set()
    query = draw_unique(rng, vocab, query_len, seen)
    if id_style == "index":
        ids = list(range(1, n_passages + 1))
    else:
        ids = rng.sample(range(1, 1000), n_passages)
    filler = draw_outside(rng, vocab, n_passages * passage_len, seen)
    gold = rng.randrange(n_passages)
    passages = []
    for i in range(n_passages):
        toks = filler[i * passage_len : (i + 1) * passage_len]
        if i == gold:  # the whole query as one span
            at = rng.randrange(passage_len - query_len + 1)
            toks[at : at + query_len] = query
        else:  # fewer query tokens, scattered
            plant(rng, toks, sample_few(rng, query, rng.randrange(query_len)))
        passages.append(" ".join(toks))
    q = " ".join(query)
    listing = "\n\n".join(f"[{pid}] {p}" for pid, p in zip(ids, passages, strict=True))
    return Example(
        prompt=f"Passages:\n{listing}\n\nQuery: {q}\n\nWhich passage answers the query?\n\nAnswer:",
        completion=f"[{ids[gold]}]",
        meta={
            "parent": {"passages": passages, "ids": ids},
            "child": {"query": q},
            "rule": {"answer_index": gold},
        },
    )


@retrieval.checker
def _check(inputs: Mapping[str, Any], answer: str, params: Mapping[str, Any]) -> bool:
    query = inputs["query"].split()
    best = argmax_unique([overlap(query, p.split()) for p in inputs["passages"]])
    return best is not None and answer_tokens(answer) == [str(inputs["ids"][best])]
