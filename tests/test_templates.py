"""Every shipped template: loads, is deterministic (golden samples), and its rule
checker accepts all of its own samples and rejects corrupted answers."""

from __future__ import annotations

import json

import pytest

from cookbook_core import discovery, tokens
from cookbook_core.templates import FAMILIES, Example, Template
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
    samples = [tpl.sample(vocab, seed=s, index=i) for s in (0, 1) for i in range(150)]
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
