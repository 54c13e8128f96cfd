"""Scorers shared by evaluation and alignment analysis: pure functions on strings and numbers.

* SQuAD answer normalization (lowercase, strip punctuation and the articles a/an/the,
  collapse whitespace), exact match and token F1, max over gold answers
  (the official SQuAD v1.1 evaluation script's definitions).
* Multiple choice by log-likelihood, as lm-evaluation-harness scores it: ``acc``
  takes the highest summed log-likelihood, ``acc_norm`` divides each by the choice's
  length in characters (the choice text, without the leading space delimiter); ties
  go to the first choice (``numpy.argmax``).
* Yes/no (/maybe) answers parsed from a generation; F1 of a positive class; macro F1.
* Seeded percentile bootstrap intervals for any aggregate over examples.
* ROUGE-L F-measure, two variants named apart: :func:`rouge_l` (token level, as the
  Super-NaturalInstructions evaluation: NI answer normalization, then words) and
  :func:`rouge_l_chars` (the SELF-GUIDE authors' variant: longest common subsequence
  of the raw strings' characters); :func:`last_label` (the SELF-GUIDE authors' answer
  extraction for classification: the last occurrence of any label in the output).

Nothing here loads a model or reads files.
"""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Callable, Sequence
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalization: lowercase, drop punctuation and articles, collapse spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalized strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of the normalized strings (SQuAD v1.1)."""
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(gold).split()
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred)
    recall = same / len(ref)
    return 2 * precision * recall / (precision + recall)


def max_over_golds(
    metric: Callable[[str, str], float], prediction: str, golds: Sequence[str]
) -> float:
    """The best score of ``prediction`` against any gold answer (0.0 without golds)."""
    return max((metric(prediction, g) for g in golds), default=0.0)


def argmax(values: Sequence[float]) -> int:
    """Index of the largest value; the first one on ties (like ``numpy.argmax``)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def mc_predictions(loglikelihoods: Sequence[float], choices: Sequence[str]) -> tuple[int, int]:
    """``(acc prediction, acc_norm prediction)``: argmax of the log-likelihoods, and of
    each divided by ``len(choice)`` in characters (lm-evaluation-harness)."""
    if len(loglikelihoods) != len(choices) or not choices:
        raise ValueError("one log-likelihood per choice is needed")
    norm = [ll / max(len(c), 1) for ll, c in zip(loglikelihoods, choices, strict=True)]
    return argmax(loglikelihoods), argmax(norm)


_WORD = re.compile(r"[a-z]+")


def parse_label(text: str, labels: Sequence[str] = ("yes", "no")) -> str | None:
    """The first word of ``text`` that is one of ``labels`` (case-insensitive), else None.

    Only the first three words are looked at, so "Yes, they are." and "Answer: no"
    parse, while a long explanation that mentions "no" later does not.
    """
    words = _WORD.findall(text.lower())[:3]
    wanted = [label.lower() for label in labels]
    for w in words:
        if w in wanted:
            return w
    return None


def f1_positive(predictions: Sequence[Any], golds: Sequence[Any], positive: Any) -> float:
    """F1 of the positive class (a missing prediction counts as negative); 0 when undefined."""
    tp = sum(1 for p, g in zip(predictions, golds, strict=True) if p == positive and g == positive)
    fp = sum(1 for p, g in zip(predictions, golds, strict=True) if p == positive and g != positive)
    fn = sum(1 for p, g in zip(predictions, golds, strict=True) if p != positive and g == positive)
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def macro_f1(predictions: Sequence[Any], golds: Sequence[Any], labels: Sequence[Any]) -> float:
    """Mean over ``labels`` of each label's one-vs-rest F1."""
    return sum(f1_positive(predictions, golds, lab) for lab in labels) / len(labels)


def perplexity(loglikelihoods: Sequence[float]) -> float:
    """``exp(-mean(loglikelihood))`` over examples (lm-evaluation-harness's aggregation)."""
    return math.exp(-sum(loglikelihoods) / len(loglikelihoods)) if loglikelihoods else math.nan


def bootstrap_ci(
    items: Sequence[Any],
    aggregate: Callable[[Sequence[Any]], float],
    *,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``aggregate(items)``: ``n`` seeded resamples.

    Returns ``(nan, nan)`` for fewer than two items.
    """
    import numpy as np

    if len(items) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    size = len(items)
    values = []
    for _ in range(n):
        idx = rng.integers(0, size, size)
        values.append(aggregate([items[i] for i in idx]))
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(arr, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_mean_ci(
    values: Sequence[float], *, n: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """:func:`bootstrap_ci` of the mean, vectorized (same resampling scheme)."""
    import numpy as np

    if len(values) < 2:
        return math.nan, math.nan
    arr = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, (n, arr.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


# ----------------------------------------------------------------------------------
# ROUGE-L and label extraction (Super-NaturalInstructions / SELF-GUIDE)


def normalize_ni(text: str) -> str:
    """Super-NaturalInstructions answer normalization: lowercase, drop punctuation,
    collapse whitespace (unlike SQuAD's, articles are kept)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(text.split())


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence of two sequences (O(len(a) * len(b)))."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _lcs_f(pred: Sequence[Any], gold: Sequence[Any]) -> float:
    if not pred or not gold:
        return float(not pred and not gold)
    lcs = lcs_length(pred, gold)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(gold)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, gold: str) -> float:
    """Token-level ROUGE-L F-measure after :func:`normalize_ni` (words split on whitespace).

    Two empty strings score 1.0; one empty string scores 0.0.
    """
    return _lcs_f(normalize_ni(prediction).split(), normalize_ni(gold).split())


def rouge_l_chars(prediction: str, gold: str) -> float:
    """The SELF-GUIDE authors' "ROUGE-L": LCS F-measure over the raw strings' characters
    (no normalization).  Reported next to :func:`rouge_l`, never instead of it."""
    return _lcs_f(prediction, gold)


def last_label(text: str, labels: Sequence[str]) -> str | None:
    """The last occurrence in ``text`` of any of ``labels`` (case-sensitive, as the
    SELF-GUIDE authors extract a classification answer), or None."""
    if not labels:
        return None
    pattern = re.compile("|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True)))
    found = list(pattern.finditer(text))
    return found[-1].group() if found else None
