"""Template ``entity_matching``: do two records match (value-token Jaccard over a threshold)?"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from cookbook_core.template_helpers import draw_unique, jaccard, yes_no
from cookbook_core.templates import Example, OneOf, Range, template

ATTRIBUTES = (
    "name",
    "title",
    "brand",
    "manufacturer",
    "category",
    "description",
    "price",
    "modelno",
    "authors",
    "venue",
    "year",
    "addr",
    "city",
    "phone",
    "type",
    "style",
)
_MARKERS = {"col", "val"}  # the serialization's keywords never occur as values


def serialize(record: Mapping[str, str]) -> str:
    """``COL name VAL v ... COL price VAL v``, the serialization of the real EM data."""
    return " ".join(f"COL {k} VAL {v}" for k, v in record.items())


def value_tokens(record: Mapping[str, str]) -> list[str]:
    """All value tokens of a record (attribute names left out)."""
    return [t for v in record.values() for t in v.split()]


@template(
    name="entity_matching",
    family="comparison",
    task=(
        "em_abt_buy",
        "em_amazon_google",
        "em_walmart_amazon",
        "em_dblp_acm",
        "em_dblp_scholar",
        "em_beer",
        "em_itunes_amazon",
        "em_fodors_zagats",
    ),
)
def entity_matching(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    n_attributes: Annotated[int, Range(1, 8), "Attributes per record."] = 3,
    value_len: Annotated[int, Range(1, 10), "Most tokens in one attribute value."] = 4,
    threshold: Annotated[
        float, Range(0.1, 0.9), "Jaccard similarity of the value tokens that means a match."
    ] = 0.5,
    margin: Annotated[
        float, Range(0.0, 0.4), "Keep the similarity this far from the threshold when possible."
    ] = 0.1,
    positive_rate: Annotated[float, Range(0.0, 1.0), "Share of matching pairs (yes)."] = 0.5,
    attribute_names: Annotated[
        str, OneOf("fixed", "random"), "Attribute names from a fixed list or random tokens."
    ] = "fixed",
) -> Example:
    """Stands for entity matching (Magellan / DeepMatcher sets: Abt-Buy, Amazon-Google,
    DBLP-ACM, ...), where two records describe the same entity when their values
    mostly agree.  Two records share one schema; the right record keeps some of the
    left record's (distinct) value tokens and replaces the rest.  The answer is "yes"
    when the Jaccard similarity of the two records' value-token sets is at least
    ``threshold``, else "no"; the similarity is kept at least ``margin`` away from the
    threshold whenever the record length allows it.
    """
    seen = set(_MARKERS)
    if attribute_names == "fixed":
        names = rng.sample(ATTRIBUTES, min(n_attributes, len(ATTRIBUTES)))
    else:
        names = [t.lower() for t in draw_unique(rng, vocab, n_attributes, seen)]
    lengths = [rng.randint(1, value_len) for _ in names]
    n = sum(lengths)
    left_toks = draw_unique(rng, vocab, n, seen)
    match = rng.random() < positive_rate
    # J(s) = s / (2n - s) when the right record keeps s of the left's n distinct tokens
    if match:
        hi = min(threshold + margin, 1.0)
        options = [s for s in range(n + 1) if s / (2 * n - s) >= hi] or [n]
    else:
        lo = threshold - margin
        options = [s for s in range(n + 1) if s / (2 * n - s) < threshold and s / (2 * n - s) <= lo]
        options = options or [0]
    keep = rng.choice(options)
    right_toks = draw_unique(rng, vocab, n, seen)  # fresh tokens, outside the left record
    for pos in rng.sample(range(n), keep):
        right_toks[pos] = left_toks[pos]
    left: dict[str, str] = {}
    right: dict[str, str] = {}
    at = 0
    for name, length in zip(names, lengths, strict=True):
        left[name] = " ".join(left_toks[at : at + length])
        right[name] = " ".join(right_toks[at : at + length])
        at += length
    left_text, right_text = serialize(left), serialize(right)
    sim = jaccard(left_toks, right_toks)
    label = "yes" if sim >= threshold else "no"
    return Example(
        prompt=(
            f"Entity A: {left_text}\nEntity B: {right_text}\n\n"
            "Are Entity A and Entity B the same? Yes or No?\n\nAnswer:"
        ),
        completion=label,
        meta={
            "parent": {"left": left, "right": right},
            "child": {"left_text": left_text, "right_text": right_text},
            "rule": {"jaccard": sim, "kept": keep},
        },
    )


@entity_matching.checker
def _check(inputs: Mapping[str, Any], answer: str, params: Mapping[str, Any]) -> bool:
    sim = jaccard(value_tokens(inputs["left"]), value_tokens(inputs["right"]))
    return yes_no(answer) == ("yes" if sim >= params["threshold"] else "no")
