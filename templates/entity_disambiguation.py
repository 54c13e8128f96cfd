"""Template ``entity_disambiguation``: pick the entity whose description fits the context."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from cookbook_core.template_helpers import (
    LETTERS,
    argmax_unique,
    draw,
    draw_excluding,
    format_choices,
    overlap,
    overlap_choices,
    parse_choice,
)
from cookbook_core.templates import Example, OneOf, Range, template


@template(
    name="entity_disambiguation",
    family="selection",
    task=("commonsense_qa", "openbookqa"),
)
def entity_disambiguation(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    n_candidates: Annotated[int, Range(2, 8), "Candidate entities sharing the mention's name."] = 4,
    context_len: Annotated[int, Range(2, 300), "Tokens in the context, the mention included."] = 30,
    desc_len: Annotated[int, Range(1, 30), "Tokens in each candidate's description."] = 8,
    overlap_size: Annotated[
        int, Range(1, 10), "Context tokens in the right description (the others get fewer)."
    ] = 3,
    answer_format: Annotated[
        str, OneOf("letter", "text"), "Answer with the candidate letter or its description."
    ] = "letter",
) -> Example:
    """Stands for entity disambiguation / linking (and the knowledge-selection part of
    CommonsenseQA and OpenBookQA): a name in a text can mean several entities, and
    the right one is the entity whose description fits the surrounding words.  The
    context is random tokens, one of them (occurring once) marked as the mention.  The
    correct candidate's description holds exactly ``overlap_size`` distinct context
    tokens (never the mention itself) and every other candidate fewer, so "pick the
    candidate whose description overlaps the context most" has one answer.
    """
    mention = draw(rng, vocab, 1)[0]
    context = draw_excluding(rng, vocab, context_len - 1, (mention,))  # the mention occurs once
    by_low = {t.lower(): t for t in context}
    pool = list(by_low.values())  # distinct context words, not the mention
    at = rng.randint(0, len(context))
    context.insert(at, mention)
    overlap_size = min(overlap_size, len(pool), desc_len)
    options, gold = overlap_choices(
        rng, vocab, pool, n_candidates, desc_len, overlap_size, {*by_low, mention.lower()}
    )
    descriptions = [" ".join(o) for o in options]
    shown = " ".join(context[:at] + [f'"{mention}"'] + context[at + 1 :])
    answer = LETTERS[gold] if answer_format == "letter" else descriptions[gold]
    return Example(
        prompt=(
            f'Context: {shown}\n\nWhich entity does "{mention}" refer to?\n\n'
            f"{format_choices(descriptions)}\n\nAnswer:"
        ),
        completion=answer,
        meta={
            "parent": {"context": " ".join(context), "mention": mention},
            "child": {"descriptions": descriptions},
            "rule": {"answer_index": gold, "overlap": overlap_size},
        },
    )


@entity_disambiguation.checker
def _check(inputs: Mapping[str, Any], answer: str, params: Mapping[str, Any]) -> bool:
    mention = inputs["mention"].lower()
    context = [t for t in inputs["context"].split() if t.lower() != mention]
    descriptions = inputs["descriptions"]
    best = argmax_unique([overlap(context, d.split()) for d in descriptions])
    return best is not None and parse_choice(answer, descriptions) == best
