"""Asking a model for candidate templates through the project's backends.

:func:`open_backend` picks the model backend the way evaluation does
(:func:`cookbook_core.eval.inference.load_backend`):

* ``base_url`` given: any OpenAI-compatible ``/v1/completions`` endpoint (a vLLM or
  SGLang server, llama.cpp's server, a hosted completions API) through
  :class:`~cookbook_core.eval.backends.served.ServedBackend`.  ``model`` names the
  local tokenizer used to apply the chat template (the endpoint must serve the
  same model), ``served_model`` the name the endpoint knows.  A key, when needed, is
  read at request time from the environment variable named by ``api_key_env``; it
  is never written to a file, a log, a table or provenance (only ``base_url`` and
  ``served_model`` are recorded);
* otherwise the managed vLLM server for ``model`` when one runs (``cookbook serve
  start``), else the model loaded in this process with transformers.

:class:`Asker` turns prompts into answers: the chat template is applied once per
prompt, then ``k`` completions are sampled per prompt with a seed (temperature and
top-k as given).  What it does not do: read code out of the answers
(:mod:`.extract`) or judge them (:mod:`.checks`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cookbook_core.errors import BadInput
from cookbook_core.eval import inference
from cookbook_core.eval.backends.base import Backend, Sampling


def open_backend(
    model: str = "default",
    *,
    base_url: str | None = None,
    served_model: str | None = None,
    api_key_env: str | None = None,
    backend: str = "auto",
) -> Backend:
    """The backend drafts are asked from (see the module docstring for the choice)."""
    if api_key_env is not None and not api_key_env.replace("_", "").isalnum():
        raise BadInput(f"--api-key-env must name an environment variable, got {api_key_env!r}")
    if base_url:
        return inference.load_backend(
            model,
            backend="served",
            base_url=base_url,
            served_model=served_model,
            api_key_env=api_key_env,
        )
    if served_model or api_key_env:
        raise BadInput("--served-model and --api-key-env go with --base-url")
    return inference.load_backend(model, backend=backend)


def describe_backend(backend: Backend) -> dict[str, Any]:
    """What answered (kind, server URL, served name, device): never a key."""
    info = dict(inference.describe(backend))
    return {k: v for k, v in info.items() if "key" not in k.lower()}


@dataclass
class Answer:
    """One model answer: its text, how generation ended, whether the prompt was cut."""

    text: str
    finish: str
    prompt_truncated: bool = False


@dataclass
class Asker:
    """Samples answers from a backend: ``k`` per prompt, seeded, chat-formatted."""

    backend: Backend
    max_new_tokens: int = 1024
    temperature: float = 0.8
    top_k: int | None = 50
    format_chat: bool = True
    calls: list[dict[str, Any]] = field(default_factory=list)

    def formatted(self, prompt: str) -> str:
        """The text the model sees: the chat template with the generation prompt."""
        if not self.format_chat:
            return prompt
        from cookbook_core.train.training import format_prompt

        return format_prompt(self.backend.tokenizer, prompt) if self.backend.tokenizer else prompt

    def ask(
        self,
        prompts: Sequence[str],
        k: int,
        seed: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[list[Answer]]:
        """``k`` answers per prompt (one sampling call for all prompts)."""
        if k < 1:
            raise BadInput(f"the number of candidates must be >= 1, got {k}")
        if self.max_new_tokens < 1:
            raise BadInput(f"max new tokens must be >= 1, got {self.max_new_tokens}")
        sampling = Sampling(temperature=self.temperature, top_k=self.top_k, n=k, seed=seed)
        sampling.check()
        texts = [self.formatted(p) for p in prompts]
        gens = self.backend.sample(
            texts, sampling=sampling, max_new_tokens=self.max_new_tokens, progress=progress
        )
        self.calls.append({"prompts": len(prompts), "k": k, "seed": seed})
        return [[Answer(g.text, g.finish, g.prompt_truncated) for g in row] for row in gens]
