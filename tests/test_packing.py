"""Packing log-likelihood requests: every request once, within budgets, tokens where they belong."""

from __future__ import annotations

import random

import torch

from cookbook_core.eval.backends import packing
from cookbook_core.eval.backends.packing import Request, Unit


def _unit(length: int, tag: int) -> Unit:
    return Unit([Request(tag, 0, list(range(length)), [1], False)], length)


def test_best_fit_decreasing_rows() -> None:
    units = [_unit(n, i) for i, n in enumerate([100, 40, 200, 60, 50])]
    rows = packing.pack_rows(units, 256)
    assert [[u.length for u in row] for row in rows] == [[200, 50], [100, 60, 40]]
    assert packing.pack_rows([_unit(300, 0), _unit(10, 1)], 256)[0][0].length == 300


def _random_groups(rng: random.Random, n: int) -> list[list[Request]]:
    groups = []
    for g in range(n):
        ctx = [rng.randrange(1000) for _ in range(rng.randrange(0, 60))]
        reqs = []
        for i in range(rng.randrange(1, 5)):
            cont = [rng.randrange(1000) for _ in range(rng.randrange(1, 30))]
            whole = [7] + ctx + cont
            reqs.append(Request(g, i, whole[:-1], cont, False))
        groups.append(reqs)
    return groups


def test_layout_puts_every_scored_token_where_its_request_has_it() -> None:
    rng = random.Random(0)
    groups = _random_groups(rng, 60)
    units = packing.make_units(groups)
    rows = packing.pack_rows(units, 128)
    seen: list[tuple[int, int]] = []
    for batch in packing.batches(rows, 512, 3):
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * max(map(packing.row_length, batch)) <= 512
        lay = packing.layout(batch, pad_id=0)
        flat_ids = [t for row in lay.ids for t in row]
        flat_pos = [t for row in lay.positions for t in row]
        flat_unit = [t for row in lay.unit for t in row]
        flat_seg = [t for row in lay.segment for t in row]
        for r, a, z in lay.spans:
            seen.append((r.group, r.index))
            assert lay.targets[a:z] == r.targets
            start = len(r.inp) - len(r.targets)
            picks = lay.picks[a:z]
            # the hidden state at a pick reads the request's own token at its own position,
            # inside one unit, in the shared prefix or this request's own suffix
            assert [flat_ids[k] for k in picks] == r.inp[start:]
            assert [flat_pos[k] for k in picks] == list(range(start, len(r.inp)))
            assert len({flat_unit[k] for k in picks}) == 1
            assert {flat_seg[k] for k in picks} <= {0, r.index + 1}
    assert sorted(seen) == sorted((r.group, r.index) for g in groups for r in g)


def test_tree_mask_hides_other_choices_and_other_examples() -> None:
    # one row: unit 0 = prefix(2) + suffix of choice 0 (2) + suffix of choice 1 (1); unit 1 (2)
    unit = torch.tensor([[0, 0, 0, 0, 0, 1, 1, -1]])
    seg = torch.tensor([[0, 0, 1, 1, 2, 0, 0, -1]])
    m = packing.tree_mask(unit, seg)[0, 0]
    assert m.shape == (8, 8)
    assert m[3].tolist() == [True, True, True, True, False, False, False, False]
    assert m[4].tolist() == [True, True, False, False, True, False, False, False]
    assert m[6].tolist() == [False] * 5 + [True, True, False]
    assert m[7, 7] and not m[7, :7].any()  # padding sees only itself (never an empty row)
