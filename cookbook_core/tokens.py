"""Token spaces: the pools of random tokens that templates draw from.

Two kinds, named by a spec string:

* ``tokenizer`` (default) or ``tokenizer:PATH``: the word-like tokens of a
  tokenizer's vocabulary: the embedded model's GGUF file by default, or a GGUF
  file / a folder with ``tokenizer.json``.  Word-like means a token that starts a
  word (GPT-2 ``Ġ`` or SentencePiece ``▁`` prefix) followed by 2-20 ASCII letters;
  special, byte, punctuation and digit tokens are left out.
* ``words`` or ``words:LIST``: a real English word list shipped by the
  ``english-words`` package (``web2`` by default, or ``gcide``), lower-case,
  alphabetic, 2-20 letters.

A space may be cut to ``size`` tokens by a seeded draw.  Token lists are sorted
before any draw, so a space is identical across processes and machines, and its
sha256 goes into every dataset manifest.  Lists are cached under
``<home>/cache/token_spaces``.  Nothing is downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mmap
import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from cookbook_core import paths, storage
from cookbook_core.errors import BadInput

DEFAULT_SPEC = "tokenizer"
_WORDLIKE = re.compile(r"[A-Za-z]{2,20}")
_PREFIXES = ("Ġ", "▁")


class TokenSpaceError(BadInput):
    """A token space spec that cannot be resolved."""


@dataclass(frozen=True)
class TokenSpace:
    """A named, ordered, immutable pool of tokens."""

    spec: str
    tokens: tuple[str, ...]
    size: int | None = None
    seed: int = 0

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256("\n".join(self.tokens).encode()).hexdigest()

    def describe(self) -> dict[str, object]:
        """What a manifest records about this space."""
        return {
            "spec": self.spec,
            "size": self.size,
            "seed": self.seed,
            "n_tokens": len(self.tokens),
            "sha256": self.sha256,
        }

    def __len__(self) -> int:
        return len(self.tokens)


def word_like(vocab: list[str]) -> list[str]:
    """The word-starting, alphabetic tokens of a raw vocabulary, prefix removed, sorted, unique."""
    out = set()
    for tok in vocab:
        if tok[:1] in _PREFIXES and _WORDLIKE.fullmatch(tok[1:]):
            out.add(tok[1:])
    return sorted(out)


def load(spec: str = DEFAULT_SPEC, size: int | None = None, seed: int = 0) -> TokenSpace:
    """Resolve a spec (see module doc) to a :class:`TokenSpace`, optionally cut to ``size``."""
    tokens = _load_cached(spec)
    if size is not None:
        if size < 2 or size > len(tokens):
            raise TokenSpaceError(
                f"token space {spec!r} has {len(tokens)} tokens; size must be in [2, {len(tokens)}]"
            )
        tokens = tuple(random.Random(seed).sample(tokens, size))
    return TokenSpace(spec, tokens, size, seed)


@functools.lru_cache(maxsize=8)
def _load_cached(spec: str) -> tuple[str, ...]:
    kind, _, arg = spec.partition(":")
    if kind == "words":
        return tuple(_english_words(arg or "web2"))
    if kind == "tokenizer":
        source = Path(arg).expanduser().resolve() if arg else _default_tokenizer_source()
        return tuple(_tokenizer_words(source))
    raise TokenSpaceError(
        f"unknown token space {spec!r}: use 'tokenizer', 'tokenizer:PATH', 'words' or 'words:gcide'"
    )


def _default_tokenizer_source() -> Path:
    try:
        return paths.embedded_model_gguf()
    except paths.EmbeddedModelMissing as exc:
        raise TokenSpaceError(f"{exc}; or use the token space 'words'") from None


def _english_words(name: str) -> list[str]:
    from english_words import get_english_words_set

    try:
        words = get_english_words_set([name], alpha=True, lower=True)
    except ValueError:
        raise TokenSpaceError(f"unknown word list {name!r}: use 'web2' or 'gcide'") from None
    return sorted(w for w in words if _WORDLIKE.fullmatch(w))


def _tokenizer_words(source: Path) -> list[str]:
    if not source.exists():
        raise TokenSpaceError(f"tokenizer source {source} does not exist")
    stat = source.stat()
    key = hashlib.sha256(f"{source}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = paths.cache_dir("token_spaces") / f"{key}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    words = word_like(_raw_vocab(source))
    storage.write_json(cached, words, indent=None)
    return words


def _raw_vocab(source: Path) -> list[str]:
    if source.is_dir():
        tj = source / "tokenizer.json"
        if tj.is_file():
            model = json.loads(tj.read_text())["model"]
            vocab = model["vocab"]
            return list(vocab) if isinstance(vocab, dict) else [v[0] for v in vocab]
        ggufs = sorted(source.glob("*.gguf"))
        if not ggufs:
            raise TokenSpaceError(f"{source} holds neither tokenizer.json nor a .gguf file")
        source = ggufs[0]
    if source.suffix == ".gguf":
        return _gguf_vocab(source)
    raise TokenSpaceError(f"cannot read a vocabulary from {source}")


_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_TOKENS_KEY = b"tokenizer.ggml.tokens"


def _gguf_vocab(path: Path) -> list[str]:
    """``tokenizer.ggml.tokens`` of a GGUF file, read from its key-value header only
    (about 50x faster than ``gguf.GGUFReader``, which maps every tensor too); files
    this reader does not handle (GGUF v1, big-endian) go through ``GGUFReader``."""
    try:
        found = _gguf_header_tokens(path)
    except (ValueError, struct.error, IndexError):
        found = None
    return found if found is not None else _gguf_reader_vocab(path)


def _gguf_header_tokens(path: Path) -> list[str] | None:
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        magic, version, _n_tensors, n_kv = struct.unpack_from("<4sIQQ", buf, 0)
        if magic != b"GGUF" or version not in (2, 3):
            return None
        pos = 24
        u32, u64 = struct.Struct("<I"), struct.Struct("<Q")

        def string(at: int) -> tuple[bytes, int]:
            (size,) = u64.unpack_from(buf, at)
            return buf[at + 8 : at + 8 + size], at + 8 + size

        for _ in range(n_kv):
            key, pos = string(pos)
            (kind,) = u32.unpack_from(buf, pos)
            pos += 4
            if kind in _GGUF_SCALARS:
                pos += _GGUF_SCALARS[kind]
            elif kind == _GGUF_STRING:
                pos = string(pos)[1]
            elif kind == _GGUF_ARRAY:
                (elem,) = u32.unpack_from(buf, pos)
                (count,) = u64.unpack_from(buf, pos + 4)
                pos += 12
                if elem in _GGUF_SCALARS:
                    pos += count * _GGUF_SCALARS[elem]
                elif elem == _GGUF_STRING:
                    items = []
                    for _ in range(count):
                        raw, pos = string(pos)
                        items.append(raw)
                    if key == _GGUF_TOKENS_KEY:
                        return [b.decode("utf-8", errors="replace") for b in items]
                else:
                    return None  # nested arrays: not used by tokenizers; let gguf decide
            else:
                return None
        return None


def _gguf_reader_vocab(path: Path) -> list[str]:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    field = reader.fields.get("tokenizer.ggml.tokens")
    if field is None:
        raise TokenSpaceError(f"{path} has no tokenizer.ggml.tokens")
    return [bytes(field.parts[i]).decode("utf-8", errors="replace") for i in field.data]
