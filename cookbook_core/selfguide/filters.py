"""SELF-GUIDE's filters and self-consistency vote: pure functions on strings.

Before any filter, :func:`clean` strips surrounding whitespace and one leading
marker that echoes the prompt's layout ("Input:", "New input:", "Output:",
"Answer:"); a marker anywhere else is left for the noise filter.  (A deviation from
the authors' code, which drops such strings outright: the small models this project
runs on CPU echo the marker on most answers.)

Inputs written by the model pass, in order (:func:`filter_inputs`):

1. ``empty``: nothing but whitespace;
2. ``length`` (optional): character length outside mean ± 2 std of the
   demonstration inputs' lengths (:func:`length_bounds`);
3. ``noise``: chatbot pleasantries ("Sure, I'd be happy to help", "As an AI", ...),
   the words "input"/"output" (the prompt's markers echoed back), a blank line, or
   any string of the task's ``optional_list`` (case-sensitive, as the authors match);
4. ``duplicate``: exactly equal (after stripping) to a demonstration input, an
   input kept earlier, or one kept earlier in the same batch.

Outputs: :func:`vote` takes one input's ``n`` samples, drops empty ones, optionally
those outside the demonstration outputs' length bounds, and noisy ones, then keeps
the most frequent answer if it holds at least ``min_share`` of the surviving
samples (ties go to the shortest answer, then the alphabetically first); for a
classification task the winner must be exactly one of the labels.
:func:`balance_classes` then downsamples every class to the smallest one (seeded).

Every drop carries its reason; :class:`Funnel` collects the counts per stage (the
drop-reason table a run saves as ``funnel.json``).  Nothing here calls a model or
touches files.
"""

from __future__ import annotations

import collections
import random
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

INPUT_FILTERS = ("empty", "length", "noise", "duplicate")
MIN_SHARE = 0.3

# Phrases a chat model wraps answers in; matched case-insensitively anywhere.
PLEASANTRIES = (
    "i'd be happy to",
    "i would be happy to",
    "i'd be glad to",
    "happy to help",
    "glad to help",
    "as an ai",
    "as a language model",
    "i hope this helps",
    "hope this helps",
    "let me know if",
    "feel free to",
    "here is a new",
    "here's a new",
    "here is an example",
    "here's an example",
    "i'm sorry",
    "i apologize",
    "i cannot",
    "i can't help",
)
# Words that open a chatbot reply; matched case-insensitively at the start only.
OPENERS = ("sure", "certainly", "of course", "absolutely", "great question", "okay, here")
_MARKER = re.compile(r"\b(input|output)s?\b", re.IGNORECASE)
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")
_LEADING_MARKER = re.compile(r"^\s*(?:new\s+)?(?:input|output|answer)\s*:[ \t]*", re.IGNORECASE)
_OPENER = re.compile(r"^\W*(" + "|".join(re.escape(o) for o in OPENERS) + r")\b", re.IGNORECASE)


# ----------------------------------------------------------------------------------
# The funnel (drop-reason table)


@dataclass
class FunnelStep:
    """One stage: how many items came in, how many it dropped, why."""

    stage: str
    entered: int
    dropped: int
    reason: str = ""

    @property
    def kept(self) -> int:
        return self.entered - self.dropped


@dataclass
class Funnel:
    """Stages in order; each stage's ``entered`` is the previous stage's ``kept``."""

    steps: list[FunnelStep] = field(default_factory=list)

    def add(self, stage: str, entered: int, dropped: int, reason: str = "") -> None:
        self.steps.append(FunnelStep(stage, entered, dropped, reason))

    def merge(self, other: Funnel) -> None:
        """Add ``other``'s counts stage by stage (stages matched by name, order kept)."""
        mine = {s.stage: s for s in self.steps}
        for s in other.steps:
            if s.stage in mine:
                mine[s.stage].entered += s.entered
                mine[s.stage].dropped += s.dropped
            else:
                step = FunnelStep(s.stage, s.entered, s.dropped, s.reason)
                self.steps.append(step)
                mine[s.stage] = step

    def rows(self) -> list[dict[str, Any]]:
        return [{**asdict(s), "kept": s.kept} for s in self.steps]

    @classmethod
    def from_rows(cls, rows: Iterable[dict[str, Any]]) -> Funnel:
        return cls(
            [FunnelStep(r["stage"], r["entered"], r["dropped"], r.get("reason", "")) for r in rows]
        )


# ----------------------------------------------------------------------------------
# Single checks


def clean(text: str) -> str:
    """``text`` stripped, without one leading "Input:"/"New input:"/"Output:"/"Answer:"."""
    return _LEADING_MARKER.sub("", text.strip(), count=1).strip()


def length_bounds(texts: Sequence[str], k: float = 2.0) -> tuple[float, float]:
    """``(mean - k*std, mean + k*std)`` of the texts' character lengths (population std)."""
    if not texts:
        raise ValueError("length bounds need at least one text")
    lengths = [len(t) for t in texts]
    mean = statistics.fmean(lengths)
    std = statistics.pstdev(lengths) if len(lengths) > 1 else 0.0
    return mean - k * std, mean + k * std


def noise_reason(text: str, optional_list: Sequence[str] = ()) -> str | None:
    """Why ``text`` is noise (a short phrase), or None when it is clean."""
    low = text.lower()
    for p in PLEASANTRIES:
        if p in low:
            return f"pleasantry {p!r}"
    m = _OPENER.match(text)
    if m:
        return f"pleasantry {m.group(1)!r}"
    m = _MARKER.search(text)
    if m:
        return f"marker {m.group(0)!r}"
    if _BLANK_LINE.search(text):
        return "blank line"
    for s in optional_list:
        if s and s in text:
            return f"task list {s!r}"
    return None


# ----------------------------------------------------------------------------------
# Input filters


@dataclass
class InputVerdict:
    """One generated input and what the filters made of it."""

    text: str
    kept: bool
    stage: str | None = None  # the filter that dropped it
    detail: str = ""


def filter_inputs(
    texts: Sequence[str],
    *,
    demo_inputs: Sequence[str],
    optional_list: Sequence[str] = (),
    length_filter: bool = False,
    seen: Iterable[str] = (),
) -> tuple[list[InputVerdict], Funnel]:
    """Apply the input filters in order; return one verdict per text and the funnel.

    Texts are :func:`clean`-ed first (the verdicts hold the cleaned text).  ``seen`` holds inputs kept
    by earlier rounds (duplicates of them are dropped too).
    """
    bounds = length_bounds(demo_inputs) if length_filter and demo_inputs else None
    known = {t.strip() for t in demo_inputs} | {t.strip() for t in seen}
    verdicts = [InputVerdict(clean(t), True) for t in texts]
    funnel = Funnel()

    def stage(name: str, check: Any, reason: str) -> None:
        alive = [v for v in verdicts if v.kept]
        n = 0
        for v in alive:
            why = check(v.text)
            if why:
                v.kept, v.stage, v.detail = False, name, why
                n += 1
        funnel.add(name, len(alive), n, reason)

    stage("empty", lambda t: "empty" if not t else None, "empty or whitespace only")
    if bounds is not None:
        lo, hi = bounds
        stage(
            "length",
            lambda t: None if lo <= len(t) <= hi else f"{len(t)} chars not in [{lo:.0f}, {hi:.0f}]",
            f"length outside mean ± 2 std of the demonstration inputs ([{lo:.0f}, {hi:.0f}] chars)",
        )
    stage(
        "noise",
        lambda t: noise_reason(t, optional_list),
        "pleasantry, marker, blank line, task list",
    )

    def duplicate(t: str) -> str | None:
        if t in known:
            return "exact duplicate"
        known.add(t)
        return None

    stage("duplicate", duplicate, "exact duplicate of a demonstration or an earlier input")
    return verdicts, funnel


# ----------------------------------------------------------------------------------
# Output vote


@dataclass
class Vote:
    """The self-consistency vote over one input's samples."""

    answer: str | None  # None: the input is dropped
    reason: str  # "kept" or the stage that dropped it
    share: float  # the winner's share of the surviving samples (0 when none survive)
    counts: dict[str, int]  # surviving answer -> count
    dropped: dict[str, int]  # per filter: samples dropped
    n_samples: int


def vote(
    samples: Sequence[str],
    *,
    min_share: float = MIN_SHARE,
    labels: Sequence[str] | None = None,
    bounds: tuple[float, float] | None = None,
    optional_list: Sequence[str] = (),
) -> Vote:
    """Self-consistency: clean and filter the samples, then majority vote with a minimum share.

    ``bounds``: optional output length filter (characters).  ``labels``: for a
    classification task, the winner must be exactly one of them.  Drop reasons:
    ``no_samples`` (every sample filtered out), ``no_majority`` (winner under
    ``min_share``), ``not_a_label``.
    """
    if not 0 <= min_share <= 1:
        raise ValueError(f"min_share must be in [0, 1], got {min_share}")
    alive = [clean(s) for s in samples]
    dropped: dict[str, int] = {}

    def keep(name: str, ok: Any) -> None:
        nonlocal alive
        before = len(alive)
        alive = [s for s in alive if ok(s)]
        dropped[name] = before - len(alive)

    keep("empty", bool)
    if bounds is not None:
        lo, hi = bounds
        keep("length", lambda s: lo <= len(s) <= hi)
    keep("noise", lambda s: noise_reason(s, optional_list) is None)
    counts = dict(collections.Counter(alive))
    if not alive:
        return Vote(None, "no_samples", 0.0, counts, dropped, len(samples))
    winner = min(counts, key=lambda a: (-counts[a], len(a), a))
    share = counts[winner] / len(alive)
    if share < min_share:
        return Vote(None, "no_majority", share, counts, dropped, len(samples))
    if labels is not None and winner not in labels:
        return Vote(None, "not_a_label", share, counts, dropped, len(samples))
    return Vote(winner, "kept", share, counts, dropped, len(samples))


def balance_classes(answers: Sequence[str], seed: int = 0) -> tuple[list[int], dict[str, int]]:
    """Indices to keep so every class present has as many rows as the smallest one.

    Seeded random downsampling; the kept indices come back in their original order.
    Also returns the per-class count before balancing.
    """
    by_class: dict[str, list[int]] = collections.defaultdict(list)
    for i, a in enumerate(answers):
        by_class[a].append(i)
    counts = {a: len(ix) for a, ix in sorted(by_class.items())}
    if not by_class:
        return [], counts
    smallest = min(counts.values())
    rng = random.Random(seed)
    keep: list[int] = []
    for a in sorted(by_class):
        keep += rng.sample(by_class[a], smallest)
    return sorted(keep), counts
