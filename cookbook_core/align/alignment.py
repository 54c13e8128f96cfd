"""Template alignment: each template's rule applied to real examples of its task.

For a natural example (a row in the normalized schema of ``../shared/data``) a
rule gives its own prediction and the evidence behind it (overlapping tokens with
character spans, the window it looked in).  Two statistics follow:

* **gold alignment**: does the rule's prediction agree with the gold answer?
* **generation alignment**: does a model's answer follow the rule?

Rules, by template (the task family each applies to):

==========================  ==================  =========================================
template                    row ``task``        rule on natural data
==========================  ==================  =========================================
document_qa                 extractive_qa       find where the question's words occur in
                                                the context (exact or stem match), take the
                                                ``k`` tokens on each side of that span; an
                                                answer follows the rule when all of its
                                                content tokens lie in that window
retrieval                   extractive_qa       the context sentence overlapping the
                                                question most; an answer follows when it is
                                                found in that sentence
multiple_choice_qa,         multiple_choice     the choice sharing the most distinct
commonsense_selection,                          question words (stems, stopwords ignored);
entity_disambiguation                           a tie means the rule abstains
entity_matching             entity_matching     "yes" when the Jaccard similarity of the two
                                                records' value tokens reaches ``threshold``
yes_no_qa                   yes_no,             "yes" when the share of question words found
                            yes_no_maybe        in the passage reaches ``threshold`` (never
                                                "maybe": PubMedQA's maybe rows never align)
last_word                   cloze_last_word     the word that followed the context's last
                                                word where it occurred earlier
fill_in_the_blank           cloze_last_word     the same with the longest repeated n-gram
                                                (up to ``max_ngram`` words) ending the context
==========================  ==================  =========================================

Stemming is a small suffix stripper (plural, -ed, -ing, -ly, -ies); it is meant to
catch "wins"/"won't"-free variants like "founded"/"found", not to be linguistics.
This module computes verdicts and tables; it does not run models (evaluation does).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from cookbook_core.errors import BadInput

_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")
STOPWORDS = frozenset(
    """a an the of in on at to for from by with and or but is are was were be been being
    what which who whom whose when where why how that this these those it its as into
    than then there their they them he she his her him we our you your i me my do does
    did not no yes can could would should will shall may might must has have had about
    over under after before during between up down out off so such also if each any all
    some many much more most other same very s t one two""".split()
)


class AlignmentError(BadInput):
    """A template/task pair without a rule, or rows the rule cannot read."""


@dataclass
class Token:
    text: str
    start: int
    end: int

    @property
    def low(self) -> str:
        return self.text.lower()


def tokenize(text: str) -> list[Token]:
    """Word tokens with character spans."""
    return [Token(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def stem(word: str) -> str:
    """A light suffix-stripping stem of a lower-cased word."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    for suffix, repl in (
        ("ies", "y"),
        ("ing", ""),
        ("edly", ""),
        ("ed", ""),
        ("es", ""),
        ("ly", ""),
        ("s", ""),
    ):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: len(w) - len(suffix)] + repl
            break
    return w[:-1] if w.endswith("e") and len(w) > 3 else w


def content(tokens: Iterable[Token]) -> list[Token]:
    return [t for t in tokens if t.low not in STOPWORDS]


@dataclass
class Verdict:
    """The rule applied to one example: its prediction, whether gold agrees, evidence."""

    template: str
    example_id: str
    prediction: Any
    gold: Any
    gold_aligned: bool
    abstained: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rule:
    """How one template's rule reads examples of one task family."""

    template: str
    family: str
    apply: Callable[[Mapping[str, Any], Mapping[str, Any]], Verdict]
    follows: Callable[[Verdict, Any], bool]
    defaults: dict[str, Any]
    also: tuple[str, ...] = ()  # other families whose rows the rule reads the same way

    def reads(self, family: str) -> bool:
        return family == self.family or family in self.also


# ----------------------------------------------------------------------------------
# Extractive QA


def _match(q_tokens: Sequence[Token], ctx: Sequence[Token]) -> list[tuple[int, str, str]]:
    """(context position, kind, question stem) for context tokens matching the question."""
    q_low = {t.low for t in content(q_tokens)}
    q_stem = {stem(t.low): t.low for t in content(q_tokens)}
    out = []
    for i, t in enumerate(ctx):
        if t.low in STOPWORDS:
            continue
        if t.low in q_low:
            out.append((i, "exact", stem(t.low)))
        elif stem(t.low) in q_stem:
            out.append((i, "fuzzy", stem(t.low)))
    return out


def _anchor(matches: list[tuple[int, str, str]], width: int) -> tuple[int, int] | None:
    """The span of context positions with the most distinct matched stems within ``width``."""
    best: tuple[int, int, int] | None = None  # (score, start, end)
    for a, (i, _, _) in enumerate(matches):
        stems = set()
        end = i
        for j, _, s in matches[a:]:
            if j - i >= width:
                break
            stems.add(s)
            end = j
        score = len(stems)
        if best is None or score > best[0]:
            best = (score, i, end)
    return (best[1], best[2]) if best else None


def _document_qa(row: Mapping[str, Any], params: Mapping[str, Any]) -> Verdict:
    k = int(params["k"])
    ctx = tokenize(row["context"])
    q = tokenize(row["question"])
    matches = _match(q, ctx)
    width = max(len(content(q)) + 4, 6)
    anchor = _anchor(matches, width)
    gold = list(row.get("answers") or [row["answer"]])
    if anchor is None:
        return Verdict(
            "document_qa",
            row["id"],
            None,
            gold,
            False,
            True,
            {"matches": [], "reason": "no question word occurs in the context"},
        )
    s, e = anchor
    before = ctx[max(0, s - k) : s]
    after = ctx[e + 1 : e + 1 + k]
    window = [t.low for t in before + after]
    evidence = {
        "matches": [
            {"start": ctx[i].start, "end": ctx[i].end, "text": ctx[i].text, "kind": kind}
            for i, kind, _ in matches
            if s <= i <= e
        ],
        "other_matches": [
            {"start": ctx[i].start, "end": ctx[i].end, "text": ctx[i].text, "kind": kind}
            for i, kind, _ in matches
            if not s <= i <= e
        ],
        "anchor": {"start": ctx[s].start, "end": ctx[e].end},
        "window_before": _span(before),
        "window_after": _span(after),
        "window_tokens": window,
        "k": k,
    }
    prediction = " ".join(t.text for t in after) or " ".join(t.text for t in before)
    aligned = any(_within(g, window) for g in gold)
    return Verdict("document_qa", row["id"], prediction, gold, aligned, False, evidence)


def _span(tokens: Sequence[Token]) -> dict[str, Any] | None:
    if not tokens:
        return None
    return {
        "start": tokens[0].start,
        "end": tokens[-1].end,
        "text": " ".join(t.text for t in tokens),
    }


def _within(answer: str, window: Sequence[str]) -> bool:
    toks = [t.low for t in tokenize(str(answer))]
    toks = [t for t in toks if t not in STOPWORDS] or toks
    return bool(toks) and all(t in window for t in toks)


def _retrieval(row: Mapping[str, Any], params: Mapping[str, Any]) -> Verdict:
    text = row["context"]
    sentences = [
        (m.start(), m.end()) for m in re.finditer(r"[^.!?]+[.!?]*", text) if m.group().strip()
    ]
    q = {stem(t.low) for t in content(tokenize(row["question"]))}
    scores = [len(q & {stem(t.low) for t in content(tokenize(text[a:b]))}) for a, b in sentences]
    gold = list(row.get("answers") or [row["answer"]])
    best = max(scores) if scores else 0
    hits = [i for i, s in enumerate(scores) if s == best]
    if not scores or best == 0 or len(hits) > 1:
        return Verdict(
            "retrieval",
            row["id"],
            None,
            gold,
            False,
            True,
            {"scores": scores, "reason": "no single sentence overlaps the question most"},
        )
    a, b = sentences[hits[0]]
    starts = row.get("answer_starts") or []
    aligned = any(a <= st < b for st in starts) if starts else any(g in text[a:b] for g in gold)
    return Verdict(
        "retrieval",
        row["id"],
        text[a:b].strip(),
        gold,
        aligned,
        False,
        {"sentence": {"start": a, "end": b}, "scores": scores},
    )


# ----------------------------------------------------------------------------------
# Selection, comparison, cloze


def _choice_overlap(template: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Verdict]:
    def apply(row: Mapping[str, Any], params: Mapping[str, Any]) -> Verdict:
        q_tokens = content(tokenize(row["question"]))
        q_stems = {stem(t.low) for t in q_tokens}
        per_choice = []
        for choice in row["choices"]:
            toks = content(tokenize(choice))
            shared = [t for t in toks if stem(t.low) in q_stems]
            per_choice.append(
                {
                    "score": len({stem(t.low) for t in shared}),
                    "overlap": [{"start": t.start, "end": t.end, "text": t.text} for t in shared],
                }
            )
        scores = [c["score"] for c in per_choice]
        best = max(scores)
        hits = [i for i, s in enumerate(scores) if s == best]
        gold = int(row["answer_index"])
        abstain = len(hits) > 1
        pred = None if abstain else hits[0]
        q_spans = [
            {"start": t.start, "end": t.end, "text": t.text}
            for t in q_tokens
            if any(stem(t.low) == stem(o["text"].lower()) for c in per_choice for o in c["overlap"])
        ]
        return Verdict(
            template,
            row["id"],
            pred,
            gold,
            pred == gold,
            abstain,
            {"choices": per_choice, "question_matches": q_spans},
        )

    return apply


def _value_tokens(record: Mapping[str, Any]) -> set[str]:
    return {t.low for v in record.values() for t in tokenize(str(v))}


def _entity_matching(row: Mapping[str, Any], params: Mapping[str, Any]) -> Verdict:
    a, b = _value_tokens(row["left"]), _value_tokens(row["right"])
    union = a | b
    jac = len(a & b) / len(union) if union else 0.0
    pred = "yes" if jac >= float(params["threshold"]) else "no"
    gold = str(row["answer"]).lower()
    return Verdict(
        "entity_matching",
        row["id"],
        pred,
        gold,
        pred == gold,
        False,
        {"jaccard": jac, "shared": sorted(a & b), "threshold": params["threshold"]},
    )


def _yes_no(row: Mapping[str, Any], params: Mapping[str, Any]) -> Verdict:
    q = {stem(t.low) for t in content(tokenize(row["question"]))}
    ctx = tokenize(row["context"])
    p_stems = {stem(t.low) for t in ctx}
    found = q & p_stems
    share = len(found) / len(q) if q else 0.0
    pred = "yes" if share >= float(params["threshold"]) else "no"
    gold = str(row["answer"]).lower()
    spans = [
        {"start": t.start, "end": t.end, "text": t.text}
        for t in ctx
        if stem(t.low) in found and t.low not in STOPWORDS
    ]
    return Verdict(
        "yes_no_qa",
        row["id"],
        pred,
        gold,
        pred == gold,
        False,
        {
            "share": share,
            "found": sorted(found),
            "matches": spans,
            "threshold": params["threshold"],
        },
    )


def _cloze(
    template: str, max_n: int | None
) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Verdict]:
    def apply(row: Mapping[str, Any], params: Mapping[str, Any]) -> Verdict:
        toks = tokenize(row["context"])
        low = [t.low for t in toks]
        gold = str(row["answer"])
        n_max = max_n or int(params.get("max_ngram", 5))
        for n in range(min(n_max, len(low) - 1), 0, -1):
            tail = low[-n:]
            for i in range(len(low) - n - 1, -1, -1):
                if low[i : i + n] == tail and i + n < len(low) - n:
                    nxt = toks[i + n]
                    pred = nxt.text
                    return Verdict(
                        template,
                        row["id"],
                        pred,
                        gold,
                        pred.lower() == gold.lower(),
                        False,
                        {
                            "ngram": " ".join(tail),
                            "n": n,
                            "earlier": {"start": toks[i].start, "end": toks[i + n - 1].end},
                            "followed_by": {"start": nxt.start, "end": nxt.end, "text": nxt.text},
                        },
                    )
            if max_n == 1:
                break
        return Verdict(
            template,
            row["id"],
            None,
            gold,
            False,
            True,
            {"reason": "the context's last word does not occur earlier"},
        )

    return apply


# ----------------------------------------------------------------------------------
# Following the rule


def _follows_window(v: Verdict, answer: Any) -> bool:
    return not v.abstained and _within(str(answer), v.evidence.get("window_tokens", []))


def _follows_choice(v: Verdict, answer: Any) -> bool:
    return not v.abstained and answer is not None and int(answer) == v.prediction


def _follows_label(v: Verdict, answer: Any) -> bool:
    toks = [t.low for t in tokenize(str(answer))]
    return bool(toks) and toks[0] == v.prediction


def _follows_word(v: Verdict, answer: Any) -> bool:
    toks = [t.low for t in tokenize(str(answer))]
    return not v.abstained and bool(toks) and toks[0] == str(v.prediction).lower()


def _follows_sentence(v: Verdict, answer: Any) -> bool:
    return (
        not v.abstained
        and bool(str(answer).strip())
        and str(answer).strip().lower() in str(v.prediction).lower()
    )


RULES: dict[str, Rule] = {
    r.template: r
    for r in [
        Rule("document_qa", "extractive_qa", _document_qa, _follows_window, {"k": 3}),
        Rule("retrieval", "extractive_qa", _retrieval, _follows_sentence, {}),
        Rule(
            "multiple_choice_qa",
            "multiple_choice",
            _choice_overlap("multiple_choice_qa"),
            _follows_choice,
            {},
        ),
        Rule(
            "commonsense_selection",
            "multiple_choice",
            _choice_overlap("commonsense_selection"),
            _follows_choice,
            {},
        ),
        Rule(
            "entity_disambiguation",
            "multiple_choice",
            _choice_overlap("entity_disambiguation"),
            _follows_choice,
            {},
        ),
        Rule(
            "entity_matching",
            "entity_matching",
            _entity_matching,
            _follows_label,
            {"threshold": 0.5},
        ),
        Rule(
            "yes_no_qa",
            "yes_no",
            _yes_no,
            _follows_label,
            {"threshold": 0.5},
            also=("yes_no_maybe",),  # PubMedQA: the rule never says maybe
        ),
        Rule("last_word", "cloze_last_word", _cloze("last_word", 1), _follows_word, {}),
        Rule(
            "fill_in_the_blank",
            "cloze_last_word",
            _cloze("fill_in_the_blank", None),
            _follows_word,
            {"max_ngram": 5},
        ),
    ]
}


def rules_for_family(family: str) -> list[str]:
    """Templates whose rule applies to rows of ``family``."""
    return [name for name, r in RULES.items() if r.reads(family)]


def rule(template: str, family: str) -> Rule:
    """The rule of ``template`` for rows of ``family``, or a clear error."""
    r = RULES.get(template)
    if r is None or not r.reads(family):
        fits = rules_for_family(family)
        raise AlignmentError(
            f"template {template!r} has no rule for {family!r} examples; templates that apply: "
            f"{', '.join(fits) or 'none'}"
        )
    return r


def apply_rule(
    template: str, rows: Iterable[Mapping[str, Any]], params: Mapping[str, Any] | None = None
) -> list[Verdict]:
    """The template's rule on each row (rows of one task family)."""
    verdicts = []
    for row in rows:
        r = rule(template, row["task"])
        merged = {**r.defaults, **(params or {})}
        try:
            verdicts.append(r.apply(row, merged))
        except KeyError as exc:
            raise AlignmentError(
                f"row {row.get('id', '?')}: missing field {exc.args[0]!r}"
            ) from None
    return verdicts


def follows(template: str, family: str, verdict: Verdict, answer: Any) -> bool:
    """Does a model's answer (generation text, or chosen index for selection tasks)
    follow the rule on this example?"""
    return rule(template, family).follows(verdict, answer)


def verdicts_frame(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """One row per example: prediction, gold, aligned, abstained (evidence as a dict column)."""
    return pd.DataFrame([asdict(v) for v in verdicts])


def gold_summary(verdicts: Sequence[Verdict]) -> dict[str, float]:
    """Share of examples whose gold answer agrees with the rule (and abstention rate)."""
    n = len(verdicts)
    if not n:
        raise AlignmentError("no examples")
    return {
        "examples": n,
        "gold_alignment": sum(v.gold_aligned for v in verdicts) / n,
        "abstained": sum(v.abstained for v in verdicts) / n,
    }
