"""What every model backend provides, and the tokenization rules they share.

:class:`Backend` is the interface evaluation, SELF-GUIDE and alignment use:
batched log-likelihood of ``(context, continuation)`` pairs, batched greedy
generation with stop strings, and seeded sampling of ``n`` completions per prompt.
The result types (:class:`LoglikResult`, :class:`Generation`) and the sampling
settings (:class:`Sampling`) live here, with lm-evaluation-harness's rule for
splitting a context/continuation pair into tokens (:func:`encode_pair`), so every
backend scores the same tokens.  This module runs no model and knows no task.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cookbook_core.errors import BadInput, CookbookError

Progress = Callable[[int, int], None]


class BackendUnavailable(BadInput):
    """The requested backend cannot run here (not installed, no GPU)."""


class InferenceError(CookbookError):
    """Running the model failed."""


@dataclass(frozen=True)
class LoglikResult:
    """Summed log-probability of a continuation, whether it is the greedy one, its tokens."""

    logprob: float
    is_greedy: bool
    n_tokens: int
    truncated: bool = False  # the context lost tokens on the left to fit the window


@dataclass(frozen=True)
class Generation:
    """A greedy generation: text (cut at the first stop string), tokens, why it ended.

    ``finish`` is ``"stop"`` (a stop string), ``"eos"`` (end-of-sequence token) or
    ``"length"`` (ran into ``max_new_tokens``).
    """

    text: str
    n_tokens: int
    finish: str
    prompt_truncated: bool = False


def derive_seed(seed: int, position: int) -> int:
    """A 31-bit seed for part ``position`` of work seeded ``seed`` (fits vLLM's seed).

    Hashing rather than adding keeps nearby seeds apart: ``seed + position`` would give
    round r's second part the seed of round r+1's first.
    """
    digest = hashlib.blake2b(f"{seed}:{position}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Sampling:
    """Random sampling settings for :meth:`Backend.sample`: ``n`` samples per prompt.

    ``top_k`` None or 0 means no top-k cut.  ``seed`` seeds the sampler once per call
    (transformers: ``torch.manual_seed``; vLLM: ``SamplingParams.seed``).
    """

    temperature: float = 1.0
    top_k: int | None = None
    n: int = 1
    seed: int = 0

    def part(self, position: int) -> Sampling:
        """These settings for one part of a call split in parts (a chunk of prompts, one
        request to a server): the seed becomes :func:`derive_seed` of (seed, position),
        so equal prompts in different parts draw different samples, reproducibly."""
        return replace(self, seed=derive_seed(self.seed, position))

    def check(self) -> None:
        """Raise ``BadInput`` for settings that cannot sample."""
        if not (self.temperature > 0):
            raise BadInput(f"sampling temperature must be > 0, got {self.temperature!r}")
        if self.top_k is not None and self.top_k < 0:
            raise BadInput(f"top_k must be >= 0 (0/None: off), got {self.top_k!r}")
        if self.n < 1:
            raise BadInput(f"number of samples must be >= 1, got {self.n!r}")


class Backend(ABC):
    """What evaluation needs from a model."""

    name: str = "?"
    tokenizer: Any = None

    @abstractmethod
    def loglikelihood(
        self, groups: Sequence[Sequence[tuple[str, str]]], progress: Progress | None = None
    ) -> list[list[LoglikResult]]:
        """One result per ``(context, continuation)``; a group is one example's choices."""

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        stop: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> list[Generation]:
        """Greedy completions of already-formatted prompts."""

    def sample(
        self,
        prompts: Sequence[str],
        *,
        sampling: Sampling,
        max_new_tokens: int,
        stop: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> list[list[Generation]]:
        """``sampling.n`` random completions per prompt (temperature / top-k sampling)."""
        raise InferenceError(f"backend {self.name!r} cannot sample")


# ----------------------------------------------------------------------------------
# Tokenization shared by the backends (lm-evaluation-harness's rules)


def prefix_token_id(tokenizer: Any) -> int:
    """The token that stands for an empty context (BOS, else EOS), as in lm-eval."""
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise InferenceError("the tokenizer has neither a BOS nor an EOS token")


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """``(context ids, continuation ids)`` as lm-evaluation-harness's ``_encode_pair``.

    Trailing whitespace of the context moves to the continuation; ``context +
    continuation`` is encoded whole (no special tokens) and split at the length of the
    encoded context.  An empty context becomes the prefix token.
    """
    if context == "":
        cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        return [prefix_token_id(tokenizer)], list(cont)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    return list(whole[: len(ctx)]), list(whole[len(ctx) :])
