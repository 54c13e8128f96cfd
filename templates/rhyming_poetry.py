"""Template ``rhyming_poetry``: continue a poem with lines that rhyme with its first line."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from cookbook_core.template_helpers import answer_tokens, draw, rhyme_groups, rhyme_index
from cookbook_core.templates import Example, Range, template

_ELIGIBLE: dict[int, tuple[tuple[str, ...], ...]] = {}


def _groups_with(size: int) -> tuple[tuple[str, ...], ...]:
    """Rhyme groups holding at least ``size`` words (cached per size)."""
    if size not in _ELIGIBLE:
        _ELIGIBLE[size] = tuple(g for g in rhyme_groups() if len(g) >= size)
    return _ELIGIBLE[size]


def _line(rng: random.Random, vocab: Sequence[str], topic: list[str], n: int, end: str) -> str:
    words = draw(rng, vocab, n - 2)
    words.insert(rng.randint(0, n - 2), rng.choice(topic))
    return " ".join(words + [end])


@template(name="rhyming_poetry", family="selection", task=("poetry",))
def rhyming_poetry(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    n_lines: Annotated[int, Range(1, 6), "Lines to write after the given first line."] = 3,
    line_len: Annotated[
        int, Range(2, 16), "Words per line (topic word and rhyme word included)."
    ] = 6,
    topic_len: Annotated[int, Range(1, 5), "Words in the topic."] = 2,
) -> Example:
    """Stands for poetry generation with a rhyme scheme (the paper's appendix template,
    built on a rhyme dictionary).  Given a topic and a first line ending in a word
    from the CMU rhyme dictionary, the answer is ``n_lines`` lines (scheme AA...A),
    each mentioning a topic word and ending with a different word that rhymes with
    the first line's last word (same rhyme group: equal phonemes from the last
    stressed vowel on); the rest of each line is random filler.
    """
    group = rng.choice(_groups_with(n_lines + 1))
    rhymes = rng.sample(group, n_lines + 1)
    topic = draw(rng, vocab, topic_len)
    first = _line(rng, vocab, topic, line_len, rhymes[0])
    lines = [_line(rng, vocab, topic, line_len, w) for w in rhymes[1:]]
    t = " ".join(topic)
    return Example(
        prompt=(
            f"Topic: {t}\n\nFirst line: {first}\n\n"
            f"Write the next {n_lines} line(s) of the poem (rhyme scheme "
            f"{'A' * (n_lines + 1)}): every line mentions the topic and ends with a new word "
            f'that rhymes with "{rhymes[0]}".\n\nNext lines:'
        ),
        completion="\n".join(lines),
        meta={
            "parent": {"topic": t, "first_line": first, "rhyme_word": rhymes[0]},
            "child": {"n_lines": n_lines},
            "rule": {"rhymes": rhymes[1:]},
        },
    )


@rhyming_poetry.checker
def _check(inputs: Mapping[str, Any], answer: str, params: Mapping[str, Any]) -> bool:
    lines = [answer_tokens(line) for line in answer.splitlines()]
    lines = [toks for toks in lines if toks]
    if len(lines) != inputs["n_lines"]:
        return False
    index = rhyme_index()
    given = inputs["rhyme_word"].lower()
    group = index.get(given)
    topic = {t.lower() for t in inputs["topic"].split()}
    ends = [toks[-1] for toks in lines]
    return (
        group is not None
        and all(index.get(w) == group for w in ends)
        and given not in ends
        and len(set(ends)) == len(ends)
        and all(topic.intersection(toks) for toks in lines)
    )
