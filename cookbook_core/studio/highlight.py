"""Evidence spans as HTML: the context with the rule's matches and window marked.

A pure function for the studio's alignment inspector: escapes the text and wraps
each character span in a ``<mark>`` with a class per kind (exact match, fuzzy match,
window, gold answer).  Overlapping spans are split so the HTML stays well formed.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

STYLES = {
    "exact": "background:#ffe08a",
    "fuzzy": "background:#ffd0a6",
    "window": "background:#bde5ff",
    "gold": "text-decoration:underline 2px #2e9d4f",
    "other": "background:#eeeeee",
}


def spans_from_evidence(
    evidence: Mapping[str, Any], gold_spans: Iterable[tuple[int, int]] = ()
) -> list[tuple[int, int, str]]:
    """(start, end, kind) spans from a verdict's evidence (document_qa style keys)."""
    out: list[tuple[int, int, str]] = []
    for m in evidence.get("matches", []):
        out.append((m["start"], m["end"], m.get("kind", "exact")))
    for m in evidence.get("other_matches", []):
        out.append((m["start"], m["end"], "other"))
    for key in ("window_before", "window_after", "sentence", "followed_by"):
        w = evidence.get(key)
        if w:
            out.append((w["start"], w["end"], "window"))
    out += [(a, b, "gold") for a, b in gold_spans]
    return out


def highlight(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """``text`` as escaped HTML with each span wrapped in a styled ``<mark>``."""
    spans = [(max(0, a), min(len(text), b), k) for a, b, k in spans if b > a]
    cuts = sorted({0, len(text), *[a for a, _, _ in spans], *[b for _, b, _ in spans]})
    parts = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        kinds = [k for s, e, k in spans if s <= a and b <= e]
        chunk = html.escape(text[a:b])
        if kinds:
            style = ";".join(STYLES.get(k, "") for k in dict.fromkeys(kinds))
            chunk = f'<mark style="{style};padding:0 1px;border-radius:2px">{chunk}</mark>'
        parts.append(chunk)
    return "".join(parts)


def legend() -> str:
    """A one-line HTML legend of the span kinds."""
    names = {
        "exact": "exact match",
        "fuzzy": "stem match",
        "window": "rule window",
        "gold": "gold answer",
        "other": "other match",
    }
    return " ".join(f'<mark style="{STYLES[k]};padding:0 4px">{v}</mark>' for k, v in names.items())
