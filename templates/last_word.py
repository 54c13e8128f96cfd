"""Template ``last_word``: complete a passage's last word from what followed its cue earlier."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from cookbook_core.template_helpers import answer_tokens, draw_outside, draw_unique
from cookbook_core.templates import Example, Range, template


@template(name="last_word", family="search", task=("lambada",))
def last_word(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    passage_len: Annotated[
        int, Range(4, 500), "Tokens in the passage, the hidden last word included."
    ] = 50,
) -> Example:
    """Stands for LAMBADA, where the last word of a passage must be predicted and is
    usually a word seen earlier in the passage.  The shown passage ends with a cue
    token that occurs exactly once before; the missing last word is the token that
    followed that earlier occurrence (the passage repeats the bigram).
    """
    passage_len = max(passage_len, 4)
    seen: set[str] = set()
    cue = draw_unique(rng, vocab, 1, seen)[0]
    fill = draw_outside(rng, vocab, passage_len - 3, seen)
    word = fill.pop()  # never the cue
    # shown context: fill[:i] cue word fill[i:] cue   -> hidden: word
    i = rng.randint(0, len(fill))
    context = " ".join(fill[:i] + [cue, word] + fill[i:] + [cue])
    return Example(
        prompt=f"Complete the last word of the passage.\n\nPassage: {context}",
        completion=word,
        meta={
            "parent": {"passage": f"{context} {word}"},
            "child": {"context": context},
            "rule": {"cue": cue, "cue_at": i},
        },
    )


@last_word.checker
def _check(inputs: Mapping[str, Any], answer: str, params: Mapping[str, Any]) -> bool:
    toks = [t.lower() for t in inputs["context"].split()]
    cue = toks[-1]
    follows = {toks[i + 1] for i in range(len(toks) - 1) if toks[i] == cue}
    return len(follows) == 1 and answer_tokens(answer) == [follows.pop()]
