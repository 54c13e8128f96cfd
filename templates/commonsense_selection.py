"""Template ``commonsense_selection``: pick the ending that continues the stem as it went before."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from cookbook_core.template_helpers import (
    LETTERS,
    draw,
    draw_outside,
    draw_unique,
    find_spans,
    format_choices,
    parse_choice,
)
from cookbook_core.templates import Example, OneOf, Range, template


def continuation_index(stem: list[str], cue_len: int, endings: Sequence[str]) -> int | None:
    """The rule: the index of the one ending whose first token followed the stem's last
    ``cue_len`` tokens at an earlier place in the stem (``None`` unless exactly one)."""
    cue = stem[len(stem) - cue_len :]
    follows = {stem[s + cue_len].lower() for s in find_spans(stem, cue) if s + cue_len < len(stem)}
    hits = [i for i, e in enumerate(endings) if e.split()[:1] and e.split()[0].lower() in follows]
    return hits[0] if len(hits) == 1 else None


@template(name="commonsense_selection", family="selection", task=("piqa", "hellaswag"))
def commonsense_selection(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    stem_len: Annotated[int, Range(3, 200), "Tokens in the stem (the context to continue)."] = 30,
    cue_len: Annotated[
        int, Range(1, 5), "Tokens at the stem's end that occurred once before in the stem."
    ] = 1,
    n_endings: Annotated[int, Range(2, 8), "Number of candidate endings."] = 4,
    ending_len: Annotated[int, Range(1, 20), "Tokens in each ending."] = 5,
    answer_format: Annotated[
        str, OneOf("letter", "text"), "Answer with the ending's letter or its text."
    ] = "letter",
) -> Example:
    """Stands for commonsense continuation tasks (HellaSwag, PIQA), where the right
    ending is the one that continues the situation the way the context set it up.
    The stem is random tokens ending with a cue (its last ``cue_len`` tokens) that
    occurred exactly once earlier in the stem; the correct ending is the one whose
    first token is the token that followed that earlier occurrence.  The distractor
    endings start with other tokens of the stem, so every ending looks related.
    """
    stem_len = max(stem_len, 2 * cue_len + 1)
    seen: set[str] = set()
    cue = draw_unique(rng, vocab, cue_len, seen)
    fill = draw_outside(rng, vocab, stem_len - 2 * cue_len, seen)
    nxt = fill.pop()  # the continuation: a filler token, never part of the cue
    i = rng.randint(0, len(fill))
    stem = fill[:i] + cue + [nxt] + fill[i:] + cue
    # distractor first tokens: other stem tokens (not the cue, not the continuation)
    seen.add(nxt.lower())
    others = list({t.lower(): t for t in fill if t.lower() not in seen}.values())
    n_wrong = n_endings - 1
    if len(others) >= n_wrong:
        firsts = rng.sample(others, n_wrong)
    else:
        seen.update(t.lower() for t in others)
        firsts = others + draw_unique(rng, vocab, n_wrong - len(others), seen)
    gold = rng.randrange(n_endings)
    firsts.insert(gold, nxt)
    endings = [" ".join([f] + draw(rng, vocab, ending_len - 1)) for f in firsts]
    s = " ".join(stem)
    answer = LETTERS[gold] if answer_format == "letter" else endings[gold]
    return Example(
        prompt=(
            f"Context: {s} ...\n\nWhich ending continues the context?\n\n"
            f"{format_choices(endings)}\n\nAnswer:"
        ),
        completion=answer,
        meta={
            "parent": {"stem": s},
            "child": {"endings": endings, "cue_len": cue_len},
            "rule": {"answer_index": gold, "cue": " ".join(cue), "continuation": nxt},
        },
    )


@commonsense_selection.checker
def _check(inputs: Mapping[str, Any], answer: str, params: Mapping[str, Any]) -> bool:
    endings = inputs["endings"]
    best = continuation_index(inputs["stem"].split(), inputs["cue_len"], endings)
    return best is not None and parse_choice(answer, endings) == best
