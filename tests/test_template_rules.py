"""Hand-built cases that pin each template's rule: the checker's verdict on inputs
written by hand (not generated), for a right answer, wrong answers, and the
letter/text forms of an answer."""

from __future__ import annotations

from typing import Any

import pytest

from cookbook_core import discovery


def check(name: str, parent: dict[str, Any], child: dict[str, Any], answer: str, **params) -> bool:
    return discovery.get(name).check({"parent": parent, "child": child}, answer, params)


def test_multiple_choice_qa_picks_largest_overlap() -> None:
    q = {"question": "apple banana cherry date"}
    c = {"choices": ["apple zzz", "apple Banana xx", "kiwi", "date yy"]}
    assert check("multiple_choice_qa", q, c, "B")
    assert check("multiple_choice_qa", q, c, "(b)")
    assert check("multiple_choice_qa", q, c, "apple banana xx")  # the text names the choice too
    assert not check("multiple_choice_qa", q, c, "A")
    assert not check("multiple_choice_qa", q, c, "date yy")
    tie = {"choices": ["apple xx", "banana yy"]}  # no unique answer: nothing is right
    assert not check("multiple_choice_qa", q, tie, "A")
    assert not check("multiple_choice_qa", q, tie, "B")


def test_retrieval_answers_the_id_not_the_position() -> None:
    p = {"passages": ["aa bb cc", "qq rr ss tt", "xx qq rr"], "ids": [7, 3, 9]}
    c = {"query": "qq rr ss"}
    assert check("retrieval", p, c, "[3]")
    assert check("retrieval", p, c, "3")
    assert not check("retrieval", p, c, "[2]")  # the position, not the id
    assert not check("retrieval", p, c, "[9]")  # shares two query tokens, not three


def test_fill_in_the_blank_copies_what_followed_the_ngram() -> None:
    p = {"passage": "xx aa bb cc yy aa bb cc zz"}
    c = {"blanked": "xx aa bb cc yy aa bb ____ zz", "ngram": "aa bb"}
    assert check("fill_in_the_blank", p, c, "cc")
    assert check("fill_in_the_blank", p, c, "CC.")
    assert not check("fill_in_the_blank", p, c, "yy")
    assert not check("fill_in_the_blank", p, c, "zz")
    # the n-gram before the blank is "bb" alone: two different earlier continuations
    ambiguous = {"blanked": "bb cc bb dd bb ____", "ngram": "bb"}
    assert not check("fill_in_the_blank", p, ambiguous, "cc")


def test_last_word_follows_the_earlier_cue() -> None:
    p = {"passage": "pp cue ww qq rr cue ww"}
    assert check("last_word", p, {"context": "pp cue ww qq rr cue"}, "ww")
    assert not check("last_word", p, {"context": "pp cue ww qq rr cue"}, "qq")
    assert not check("last_word", p, {"context": "pp cue ww qq rr cue"}, "cue")
    # the cue followed by two different words earlier: no unique answer
    assert not check("last_word", p, {"context": "cue ww cue qq rr cue"}, "ww")


def test_entity_matching_thresholds_jaccard() -> None:
    left = {"name": "aa bb cc", "price": "dd"}
    right = {"name": "aa bb cc", "price": "ee"}  # Jaccard 3 / 5 = 0.6
    p, c = {"left": left, "right": right}, {}
    assert check("entity_matching", p, c, "yes", threshold=0.5)
    assert check("entity_matching", p, c, "Yes.", threshold=0.6)  # at the threshold: a match
    assert not check("entity_matching", p, c, "no", threshold=0.5)
    assert check("entity_matching", p, c, "no", threshold=0.7)
    assert not check("entity_matching", p, c, "maybe", threshold=0.7)


def test_entity_disambiguation_ignores_the_mention() -> None:
    p = {"context": "alpha beta mm gamma delta", "mention": "mm"}
    # counting the mention would tie A and B; without it B overlaps most
    c = {"descriptions": ["mm zz yy alpha", "alpha beta xx", "zeta"]}
    assert check("entity_disambiguation", p, c, "B")
    assert check("entity_disambiguation", p, c, "alpha beta xx")
    assert not check("entity_disambiguation", p, c, "A")
    assert not check("entity_disambiguation", p, c, "zeta")


def test_yes_no_qa_span_and_overlap_modes() -> None:
    p = {"passage": "aa bb cc dd ee"}
    assert check("yes_no_qa", p, {"question": "bb cc dd"}, "yes", mode="span")
    assert check("yes_no_qa", p, {"question": "bb dd cc"}, "no", mode="span")  # order broken
    assert not check("yes_no_qa", p, {"question": "bb dd cc"}, "yes", mode="span")
    # overlap: share of distinct question tokens in the passage against the threshold
    assert check("yes_no_qa", p, {"question": "aa zz"}, "yes", mode="overlap", threshold=0.5)
    assert check("yes_no_qa", p, {"question": "aa zz yy"}, "no", mode="overlap", threshold=0.5)
    assert not check("yes_no_qa", p, {"question": "aa zz yy"}, "yes", mode="overlap", threshold=0.5)


def test_commonsense_selection_continues_the_cue() -> None:
    p = {"stem": "ss cue nxt tt uu cue"}
    c = {"endings": ["tt foo", "nxt bar", "uu baz"], "cue_len": 1}
    assert check("commonsense_selection", p, c, "B")
    assert check("commonsense_selection", p, c, "nxt bar")
    assert not check("commonsense_selection", p, c, "C")
    # with a two-token cue ("uu cue") nothing earlier matches: no ending is right
    c2 = {"endings": ["tt foo", "nxt bar", "uu baz"], "cue_len": 2}
    assert not check("commonsense_selection", p, c2, "B")


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        ("sun xx hat\nsun yy bat", True),
        ("  sun xx Hat.\n\n the sun bat  \n", True),  # case, punctuation, blank lines
        ("sun xx hat\nsun yy hat", False),  # the same rhyme word twice
        ("sun xx hat\nsun yy cat", False),  # repeats the given word
        ("sun xx hat\nsun yy dog", False),  # does not rhyme
        ("xx hat\nsun yy bat", False),  # a line without a topic word
        ("sun xx hat", False),  # too few lines
        ("sun xx hat\nsun yy bat\nsun zz mat", False),  # too many lines
    ],
)
def test_rhyming_poetry_lines(answer: str, ok: bool) -> None:
    p = {"topic": "sun", "first_line": "the sun sat cat", "rhyme_word": "cat"}
    assert check("rhyming_poetry", p, {"n_lines": 2}, answer) is ok


def test_draw_is_the_same_with_and_without_numpy(vocab: tuple[str, ...]) -> None:
    import random

    from cookbook_core import template_helpers as th

    for n in (1, 15, 16, 100, 333):
        th.USE_NUMPY = True
        fast = th.draw(random.Random(n), vocab, n)
        th.USE_NUMPY = False
        try:
            slow = th.draw(random.Random(n), vocab, n)
        finally:
            th.USE_NUMPY = True
        assert fast == slow and len(fast) == n
