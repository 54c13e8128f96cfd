"""Packing log-likelihood requests into forward passes with little padding.

A multiple-choice example asks for the log-likelihood of several continuations
after one context.  The requests of an example form a *unit*: their common token
prefix (the context) appears once, followed by each request's own remaining
tokens (its *suffix*).  Units are packed first-fit-decreasing into *rows* of a
fixed width, several units per row, and rows of similar length are batched under
a token budget.  With the attention mask of :func:`tree_mask` (a token sees the
earlier tokens of its own unit's prefix and of its own suffix, nothing else) and
positions restarting at 0 for every unit, each request is scored exactly as if
it ran alone, without padding each example to the longest choice of its batch.

This module is bookkeeping over token lists (no model; torch only in
:func:`tree_mask`); the forward pass and the scoring live in
:mod:`cookbook_core.eval.backends.hf`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cookbook_core.eval.backends.base import InferenceError, encode_pair


@dataclass
class Request:
    """One (context, continuation) pair as model input and scored targets."""

    group: int
    index: int  # within the group
    inp: list[int]  # model input tokens (context + continuation, minus the last token)
    targets: list[int]  # continuation tokens
    truncated: bool


@dataclass
class Unit:
    """Requests sharing their first ``prefix`` input tokens (one request: its whole input)."""

    reqs: list[Request]
    prefix: int

    @property
    def length(self) -> int:
        """Tokens the unit occupies in a row: the prefix once, then every suffix."""
        return self.prefix + sum(len(r.inp) - self.prefix for r in self.reqs)


@dataclass
class Layout:
    """Token-level contents of a batch of rows, padded to ``width``.

    ``unit`` and ``segment`` say, per position, which unit it belongs to (-1 for
    padding) and whether it is the unit's shared prefix (0) or the suffix of its
    ``k``-th request (``k + 1``).  ``picks`` are flat positions (``row * width +
    column``) whose hidden state predicts ``targets`` (same order); ``spans`` map
    each request to its slice of ``targets``.
    """

    width: int
    ids: list[list[int]]
    positions: list[list[int]]
    unit: list[list[int]]
    segment: list[list[int]]
    picks: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    spans: list[tuple[Request, int, int]] = field(default_factory=list)


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix shared by every sequence."""
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs[1:]):
            return i
    return n


def make_requests(
    tokenizer: Any, groups: Sequence[Sequence[tuple[str, str]]], max_length: int
) -> list[list[Request]]:
    """Requests per group of (context, continuation) pairs, tokenized as lm-eval does.

    An input longer than ``max_length`` keeps its last ``max_length`` tokens (the
    request is marked ``truncated``); an empty continuation is an error.
    """
    out = []
    for g, pairs in enumerate(groups):
        reqs = []
        for i, (ctx, cont) in enumerate(pairs):
            c_ids, t_ids = encode_pair(tokenizer, ctx, cont)
            if not t_ids:
                raise InferenceError(f"empty continuation {cont!r} after tokenization")
            whole = c_ids + t_ids
            truncated = len(whole) > max_length + 1
            whole = whole[-(max_length + 1) :]
            t_ids = t_ids[-len(whole) + 1 :] if len(t_ids) >= len(whole) else t_ids
            reqs.append(Request(g, i, whole[:-1], t_ids, truncated))
        out.append(reqs)
    return out


def make_units(req_groups: Sequence[Sequence[Request]], *, share: bool = True) -> list[Unit]:
    """Units of work: a group's requests sharing a prefix, or single requests.

    Without ``share``, or when a group's inputs share nothing, every request is its
    own unit.
    """
    units: list[Unit] = []
    for reqs in req_groups:
        p = common_prefix_len([r.inp for r in reqs]) if share else 0
        if p == 0:
            units += [Unit([r], len(r.inp)) for r in reqs]
        else:
            units.append(Unit(list(reqs), p))
    return units


def pack_rows(units: Sequence[Unit], width: int) -> list[list[Unit]]:
    """Units packed best-fit-decreasing into rows of at most ``width`` tokens.

    A unit longer than ``width`` gets a row of its own.  Rows come back longest
    first, so that neighbouring rows (one batch) have similar lengths.
    """
    rows: list[list[Unit]] = []
    used: list[int] = []
    free: list[tuple[int, int]] = []  # (room left, row index), sorted: the tightest fit first
    for u in sorted(units, key=lambda u: -u.length):
        n = u.length
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            room, r = free.pop(k)
            rows[r].append(u)
            used[r] += n
            if room - n > 0:
                bisect.insort(free, (room - n, r))
            continue
        rows.append([u])
        used.append(n)
        if width - n > 0:
            bisect.insort(free, (width - n, len(rows) - 1))
    order = sorted(range(len(rows)), key=lambda r: -used[r])
    return [rows[r] for r in order]


def row_length(row: Sequence[Unit]) -> int:
    """Tokens a row holds."""
    return sum(u.length for u in row)


def batches(rows: Sequence[list[Unit]], batch_tokens: int, max_rows: int) -> list[list[list[Unit]]]:
    """Consecutive rows grouped so that rows x longest row <= ``batch_tokens``.

    A batch holds at most ``max_rows`` rows and at least one (a row longer than the
    budget runs alone).
    """
    out: list[list[list[Unit]]] = []
    i = 0
    while i < len(rows):
        longest = row_length(rows[i])
        j = i + 1
        while (
            j < len(rows)
            and j - i < max_rows
            and (j - i + 1) * max(longest, row_length(rows[j])) <= batch_tokens
        ):
            longest = max(longest, row_length(rows[j]))
            j += 1
        out.append(list(rows[i:j]))
        i = j
    return out


def layout(rows: Sequence[Sequence[Unit]], pad_id: int) -> Layout:
    """Token ids, positions, unit/segment ids and scored positions of a batch of rows."""
    width = max(row_length(r) for r in rows)
    out = Layout(width, [], [], [], [])
    uid = 0
    for b, row in enumerate(rows):
        ids: list[int] = []
        pos: list[int] = []
        unit: list[int] = []
        seg: list[int] = []
        for u in row:
            o, p = len(ids), u.prefix
            ids += u.reqs[0].inp[:p]
            pos += range(p)
            unit += [uid] * p
            seg += [0] * p
            for k, r in enumerate(u.reqs):
                q = len(ids)  # where this request's suffix starts
                suffix = r.inp[p:]
                ids += suffix
                pos += range(p, p + len(suffix))
                unit += [uid] * len(suffix)
                seg += [k + 1] * len(suffix)
                start = len(r.inp) - len(r.targets)  # the position predicting targets[0]
                a = len(out.targets)
                out.picks += [
                    b * width + (o + t if t < p else q + t - p) for t in range(start, len(r.inp))
                ]
                out.targets += r.targets
                out.spans.append((r, a, len(out.targets)))
            uid += 1
        pad = width - len(ids)
        out.ids.append(ids + [pad_id] * pad)
        out.positions.append(pos + [0] * pad)
        out.unit.append(unit + [-1] * pad)
        out.segment.append(seg + [-1] * pad)
    return out


def tree_mask(unit: Any, segment: Any) -> Any:
    """Boolean attention mask ``[rows, 1, width, width]`` (True: may attend).

    A position attends to earlier-or-same positions of its own unit that are either
    the unit's prefix or its own suffix.  Padding (unit -1) attends to earlier
    padding, so no row of the mask is empty.
    """
    import torch

    width = unit.shape[1]
    ar = torch.arange(width, device=unit.device)
    causal = ar[None, :] <= ar[:, None]
    same_unit = unit[:, :, None] == unit[:, None, :]
    visible = (segment[:, None, :] == 0) | (segment[:, :, None] == segment[:, None, :])
    return (same_unit & visible & causal)[:, None]
