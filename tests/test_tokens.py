"""Token spaces: word-like filtering, the embedded tokenizer's space, word lists,
seeded cuts, and clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cookbook_core import tokens
from cookbook_core.tokens import TokenSpaceError


def test_word_like_filter() -> None:
    raw = [
        "Ġthe",
        "the",
        "Ġ",
        "Ġ123",
        "Ġa",
        "<|im_start|>",
        "Ġhello!",
        "▁world",
        "Ġ\u00e9t\u00e9",
        "Ġthe",
        "ĠX",
        "ĠNASA",
        "<0x0A>",
        "Ġ" + "a" * 21,
    ]
    assert tokens.word_like(raw) == ["NASA", "the", "world"]


def test_default_space_is_the_embedded_tokenizer(vocab: tuple[str, ...]) -> None:
    assert 20_000 < len(vocab) < 49_152  # SmolLM2's vocabulary has 49,152 entries
    assert all(re.fullmatch(r"[A-Za-z]{2,20}", t) for t in vocab)
    assert list(vocab) == sorted(set(vocab))
    assert "the" in vocab and "Paris" in vocab


def test_space_is_stable_and_cut_is_seeded() -> None:
    a = tokens.load()
    b = tokens.load()
    assert a.sha256 == b.sha256
    small1 = tokens.load(size=100, seed=1)
    small2 = tokens.load(size=100, seed=1)
    small3 = tokens.load(size=100, seed=2)
    assert small1.tokens == small2.tokens != small3.tokens
    assert set(small1.tokens) <= set(a.tokens) and len(set(small1.tokens)) == 100
    assert small1.describe()["n_tokens"] == 100


def test_word_list_space() -> None:
    words = tokens.load("words")
    assert len(words) > 100_000
    assert "apple" in words.tokens
    assert all(w.islower() and w.isalpha() for w in words.tokens[:1000])
    assert len(tokens.load("words:gcide")) > 10_000


def test_tokenizer_json_folder(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text(
        json.dumps({"model": {"vocab": {"Ġcat": 0, "Ġdog": 1, "!": 2, "Ġ42": 3}}})
    )
    assert tokens.load(f"tokenizer:{tmp_path}").tokens == ("cat", "dog")


@pytest.mark.parametrize(
    "spec, kwargs, needle",
    [
        ("bogus", {}, "unknown token space"),
        ("words:nope", {}, "unknown word list"),
        ("tokenizer:/no/such/path", {}, "does not exist"),
        ("words", {"size": 1}, "size must be in"),
    ],
)
def test_bad_specs(spec: str, kwargs: dict, needle: str) -> None:
    with pytest.raises(TokenSpaceError, match=needle):
        tokens.load(spec, **kwargs)


def test_gguf_header_reader_matches_gguf_library(tmp_path: Path) -> None:
    """The fast header-only GGUF reader gives exactly what ``gguf.GGUFReader`` gives, and
    hands a file it does not understand (here: GGUF version 1) to the library."""
    from cookbook_core import paths

    gguf = paths.embedded_model_gguf()
    fast = tokens._gguf_header_tokens(gguf)
    assert fast is not None and len(fast) == 49_152
    assert fast == tokens._gguf_reader_vocab(gguf)
    old = tmp_path / "v1.gguf"
    old.write_bytes(b"GGUF" + (1).to_bytes(4, "little") + bytes(16))
    assert tokens._gguf_header_tokens(old) is None
