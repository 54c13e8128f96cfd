"""Every shipped template: loads, is deterministic (golden samples), and its rule
checker accepts all of its own samples and rejects corrupted answers."""

from __future__ import annotations

import json

import pytest

from cookbook_core import discovery, tokens
from cookbook_core.templates import FAMILIES, STREAM, Example, FaultLog, Template
from tests.golden_samples import GOLDEN, golden_for

SHIPPED = discovery.names()
REQUIRED = {
    "document_qa",
    "multiple_choice_qa",
    "retrieval",
    "fill_in_the_blank",
    "last_word",
    "entity_matching",
    "entity_disambiguation",
    "yes_no_qa",
    "commonsense_selection",
    "rhyming_poetry",
}


def _space(tpl: Template) -> tuple[str, ...]:
    return tokens.load(tpl.token_space or tokens.DEFAULT_SPEC).tokens


def test_required_templates_are_shipped() -> None:
    assert REQUIRED <= set(SHIPPED), f"missing: {sorted(REQUIRED - set(SHIPPED))}"


@pytest.mark.parametrize("name", SHIPPED)
def test_loads_with_metadata(name: str) -> None:
    tpl = discovery.get(name)
    assert tpl.family in FAMILIES
    assert tpl.tasks, "each template names the real task(s) it stands for"
    assert len(tpl.doc) > 40, "the docstring says what real task it stands for"
    assert tpl.has_checker
    for p in tpl.params.values():
        assert p.help, f"{name}.{p.name} has no help text"
        assert p.choices or p.type is bool or (p.low is not None and p.high is not None), (
            f"{name}.{p.name} has no documented range"
        )


@pytest.mark.parametrize("name", SHIPPED)
def test_golden_samples(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    assert path.is_file(), "no golden file; run python tests/golden_samples.py"
    assert golden_for(name) == json.loads(path.read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_same_seed_and_index_same_sample(name: str) -> None:
    tpl = discovery.get(name)
    vocab = _space(tpl)
    a = tpl.sample(vocab, seed=7, index=123)
    b = tpl.sample(vocab, seed=7, index=123)
    c = tpl.sample(vocab, seed=8, index=123)
    assert a == b
    assert a != c
    assert isinstance(a, Example) and a.prompt and a.completion
    assert "parent" in a.meta and "child" in a.meta


@pytest.mark.parametrize("name", SHIPPED)
def test_checker_accepts_own_samples_and_rejects_corruptions(name: str) -> None:
    tpl = discovery.get(name)
    vocab = _space(tpl)
    samples = [e for s in (0, 1) for e in tpl.preview(vocab, 150, seed=s)]
    assert all(tpl.check(e, e.completion) for e in samples)
    rejected = total = 0
    for i, e in enumerate(samples):
        other = samples[(i + 1) % len(samples)].completion
        if other.strip().lower() != e.completion.strip().lower():
            total += 1
            rejected += not tpl.check(e, other)
        assert not tpl.check(e, "zqxv wqkj"), f"garbage accepted for sample {i}"
        assert not tpl.check(e, ""), f"empty answer accepted for sample {i}"
    assert total > 30, "too few distinct completions to test corruption"
    assert rejected == total, f"{total - rejected} of {total} other samples' answers accepted"


@pytest.mark.parametrize("name", SHIPPED)
def test_checker_holds_for_non_default_params(name: str) -> None:
    """Move every numeric parameter to its bounds: samples still follow the rule."""
    tpl = discovery.get(name)
    vocab = _space(tpl)
    for edge in ("low", "high"):
        params = {}
        for p in tpl.params.values():
            if p.low is not None and p.high is not None:
                value = p.low if edge == "low" else p.high
                params[p.name] = p.type(value)
        for e in tpl.preview(vocab, 20, seed=3, params=params):
            assert tpl.check(e, e.completion, params), (edge, params, e)


@pytest.mark.parametrize("name", ["document_qa", "multiple_choice_qa"])
def test_sample_k_is_the_kth_of_its_stream(name: str) -> None:
    """One generator per stream of STREAM indices: ``sample(k)`` replays its stream, so
    it equals element ``k`` of any run of samples that contains ``k``."""
    tpl = discovery.get(name)
    vocab = _space(tpl)
    run = tpl.preview(vocab, 3 * STREAM + 5, seed=2)
    for k in (0, 1, STREAM - 1, STREAM, STREAM + 1, 2 * STREAM, 3 * STREAM + 4):
        assert tpl.sample(vocab, seed=2, index=k) == run[k]
    middle = list(tpl.samples(vocab, 2, STREAM - 3, 2 * STREAM + 3))
    assert middle == run[STREAM - 3 : 2 * STREAM + 3]
    other_seed = tpl.sample(vocab, seed=3, index=STREAM + 1)
    assert other_seed != run[STREAM + 1]


FLAKY = '''
"""Raises on a tenth of its calls: retried on the same, advanced stream."""
import random
from collections.abc import Sequence
from cookbook_core.templates import Example, template


@template(name="sometimes", family="search", task="squad")
def sometimes(rng: random.Random, vocab: Sequence[str]) -> Example:
    """A test template whose failures depend only on its random stream."""
    if rng.random() < 0.1:
        raise ValueError("planted")
    tok = rng.choice(vocab)
    return Example(tok, tok, {"parent": {}, "child": {}})
'''


def test_retries_are_part_of_the_stream(extra_templates) -> None:  # noqa: ANN001
    """Faults are retried on the advanced stream in previews exactly as in datasets,
    and counted when a log is given; a sample failing every retry re-raises."""
    (extra_templates / "sometimes.py").write_text(FLAKY)
    tpl = discovery.get("sometimes")
    vocab = tuple(f"w{i}" for i in range(1000))
    log = FaultLog()
    logged = list(tpl.samples(vocab, 0, 0, 200, log=log))
    assert logged == tpl.preview(vocab, 200)
    assert log.attempts == 200 + log.faults and 5 < log.faults < 60
    assert log.first is not None and "planted" in log.first
    always = FLAKY.replace("< 0.1", "< 2")
    (extra_templates / "sometimes.py").write_text(always)
    with pytest.raises(ValueError, match="planted"):
        discovery.get("sometimes").sample(vocab, index=5)
