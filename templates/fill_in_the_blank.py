"""Template ``fill_in_the_blank``: fill a blank with what followed the same n-gram earlier."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from cookbook_core.template_helpers import answer_tokens, draw_outside, draw_unique, find_spans
from cookbook_core.templates import Example, Range, template

BLANK = "____"


@template(name="fill_in_the_blank", family="search", task=("lambada",))
def fill_in_the_blank(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    passage_len: Annotated[int, Range(4, 500), "Tokens in the passage (blank included)."] = 50,
    ngram_len: Annotated[int, Range(1, 10), "Tokens in the repeated n-gram before the blank."] = 2,
) -> Example:
    """Stands for cloze tasks such as LAMBADA, where the missing word can be found by
    looking back at how the same phrase continued earlier in the text.  A passage of
    random tokens holds an n-gram exactly twice; right after its second occurrence
    the token is replaced by ``____``, and the answer is the token that followed the
    first occurrence (an induction-head copy).
    """
    passage_len = max(passage_len, 2 * ngram_len + 2)
    seen: set[str] = set()
    ngram = draw_unique(rng, vocab, ngram_len, seen)
    fill = draw_outside(rng, vocab, passage_len - 2 * ngram_len - 1, seen)
    answer = fill.pop()  # a filler token: never part of the n-gram
    # layout: fill[:i] ngram answer fill[i:j] ngram BLANK fill[j:]
    n_fill = len(fill)
    i = rng.randint(0, n_fill)
    j = rng.randint(i, n_fill)
    toks = fill[:i] + ngram + [answer] + fill[i:j] + ngram + [BLANK] + fill[j:]
    blanked = " ".join(toks)
    blank_at = j + 2 * ngram_len + 1
    toks[blank_at] = answer
    return Example(
        prompt=f"Fill in the blank.\n\nPassage: {blanked}\n\nAnswer:",
        completion=answer,
        meta={
            "parent": {"passage": " ".join(toks)},
            "child": {"blanked": blanked, "ngram": " ".join(ngram)},
            "rule": {"first_at": i, "blank_at": blank_at},
        },
    )


@fill_in_the_blank.checker
def _check(inputs: Mapping[str, Any], answer: str, params: Mapping[str, Any]) -> bool:
    toks = inputs["blanked"].split()
    ngram = inputs["ngram"].split()
    m = len(ngram)
    follows = [toks[s + m] for s in find_spans(toks, ngram) if s + m < len(toks)]
    if follows.count(BLANK) != 1:
        return False
    cues = {t.lower() for t in follows if t != BLANK}
    return len(cues) == 1 and answer_tokens(answer) == [cues.pop()]
