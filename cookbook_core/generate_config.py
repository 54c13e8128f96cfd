"""The generation config: :class:`GenerateConfig` and its :class:`Source` list, declared once.

Each option carries its help text and allowed values; ``cookbook generate``'s flags,
the ``generate`` job's validator and the studio's Datasets page read them from here
(:mod:`cookbook_core.configs` derives them).  :data:`FORMATS` and :data:`LAYOUTS` are
the choices; :data:`BLOCK_SIZE` is the engine's default block.

What it does not do: find templates or write anything (:mod:`cookbook_core.generate`
does).  It imports nothing heavy, so the ``cookbook`` command can build its parser
from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cookbook_core import configs, tokens
from cookbook_core.configs import option
from cookbook_core.errors import BadInput

FORMATS = ("jsonl", "parquet", "hf")
LAYOUTS = ("compact", "full")
BLOCK_SIZE = 2048


class GenerationConfigError(BadInput):
    """A config that cannot run: bad n, seed, format, layout, weights or output folder."""


@dataclass
class Source(configs.Config):
    """One template in a mixture: its name, relative weight and parameter overrides."""

    what: ClassVar[str] = "source"
    error: ClassVar[type[BadInput]] = GenerationConfigError

    template: str = option(help="template name")
    weight: float = option(1.0, help="relative weight in the mixture", above=0, ui_max=5.0)
    params: dict[str, Any] = option(factory=dict, help="parameter overrides", cli=False)


def _sources(items: Sequence[Any]) -> list[Source]:
    return [Source.from_dict(s) if isinstance(s, Mapping) else s for s in items]


_AT_LEAST = "{label} must be at least {min}, got {value}"
_UNKNOWN = "unknown {label} {value!r}: use one of {choices}"


@dataclass
class GenerateConfig(configs.Config):
    """Everything that determines a dataset's content (plus how to produce it)."""

    what: ClassVar[str] = "generation"
    error: ClassVar[type[BadInput]] = GenerationConfigError

    sources: list[Source] = option(
        help="templates and relative weights (a mixture when more than one)",
        cli=False,
        convert=_sources,
    )
    n: int = option(
        help="number of samples (exact; at most 100,000,000)",
        min=1,
        flags=("-n",),
        label="-n",
        message=_AT_LEAST,
        ui_max=10_000_000,
        ui_default=1000,
    )
    seed: int = option(
        0, help="random seed (sample k is a pure function of it)", min=0, ui_max=2**31 - 1
    )
    format: str = option(
        "jsonl",
        help="data file: JSONL, Parquet, or a Hugging Face datasets folder",
        choices=FORMATS,
        message=_UNKNOWN,
    )
    token_space: str = option(
        tokens.DEFAULT_SPEC,
        help="tokenizer (the embedded model's word-like tokens), tokenizer:PATH, words, "
        "words:gcide",
    )
    token_space_size: int | None = option(
        None, help="cut the token space to this many tokens (seeded by --seed)", min=1
    )
    workers: int = option(1, help="worker processes", min=1, message=_AT_LEAST)
    max_fault_rate: float = option(
        0.01, help="stop when a template raises on more than this share of attempts", min=0, max=1
    )
    block_size: int = option(
        BLOCK_SIZE,
        help="samples per block (the unit of work; part of what fixes the output)",
        min=1,
        message=_AT_LEAST,
        cli=False,
    )
    layout: str = option(
        "compact",
        help="compact: prompt, completion, meta, with a long input that the prompt holds "
        "(a document) stored once as a span of the prompt; full: also the chat-form "
        "messages and every meta field in full (for readers without cookbook)",
        choices=LAYOUTS,
        message=_UNKNOWN,
    )
    extra: dict[str, Any] = option(factory=dict, help="recorded in the manifest as is", cli=False)
