"""The transformers backend: a causal LM loaded in this process (CPU or CUDA).

Log-likelihood follows lm-evaluation-harness's tokenization exactly
(:func:`~cookbook_core.eval.backends.base.encode_pair`; inputs longer than the
model's window lose tokens on the left).  It is faster than scoring each
(context, choice) pair separately: the choices of one example share their common
token prefix (the context), and the examples are packed several to a row under a
tree-shaped attention mask (:mod:`~cookbook_core.eval.backends.packing`), so a
forward pass computes each context once and almost no padding; the LM head runs
only at the positions that are scored.  Generation is
batched greedy decoding with left padding and stop strings; a generation that
reaches ``max_new_tokens`` is returned with ``finish="length"`` (recorded by the
caller, never an error).  :meth:`Backend.sample` draws ``n`` random completions per
prompt (temperature, top-k, seeded) through the same batching.

It does not choose between backends (:mod:`cookbook_core.eval.inference` does) and
does not talk to servers (:mod:`cookbook_core.eval.backends.served`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cookbook_core.errors import BadInput
from cookbook_core.eval.backends import packing
from cookbook_core.eval.backends.base import (
    Backend,
    Generation,
    LoglikResult,
    Progress,
    Sampling,
)

# Log-likelihood packs the requests of several examples into rows of ROW_TOKENS tokens
# (see packing.py); a forward pass takes rows up to a token budget.
ROW_TOKENS = 256
CPU_BATCH_TOKENS = 2048  # padded tokens per log-likelihood forward pass on CPU (default)
CPU_MAX_BATCH = 8  # rows per log-likelihood forward pass on CPU (default)
# Generation on CPU: decoding one token reads every weight whatever the batch, so
# rows decode together (SQuAD in the chat format, 100 rows, 2 cores: 512 tokens /
# 8 rows = one or two rows per batch, 1.7 s per row; 4096 / 16: 0.52 s per row, same answers).
CPU_GEN_BATCH_TOKENS = 4096  # prompt + new tokens of a generation batch on CPU (default)
CPU_GEN_MAX_BATCH = 16  # rows of a generation batch on CPU (default)
HEAD_CHUNK = 256  # positions per LM-head matmul + log-softmax (bounds the logits' memory)


class TransformersBackend(Backend):
    """A ``transformers`` causal LM (optionally with a merged LoRA adapter) in eval mode.

    ``batch_tokens`` bounds the padded tokens of one forward pass (memory and
    latency); ``max_batch`` bounds its rows.  Defaults on CPU differ by method:
    log-likelihood 2048 tokens and 8 packed rows of 256 tokens,
    generation 4096 tokens and 16 rows (decoding steps are bound by reading the
    weights, so rows share them); on CUDA 16384 tokens and 128 rows for both.  A
    value passed explicitly applies to both methods.
    """

    name = "transformers"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_tokens: int | None = None,
        max_batch: int | None = None,
        max_length: int | None = None,
    ) -> None:
        import torch

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        on_cpu = self.device.type == "cpu"
        # Measured on a 2-core CPU: packed log-likelihood rows gain nothing past ~2048
        # tokens per pass; generation wants more rows per decoding step.
        self.batch_tokens = max(int(batch_tokens or (CPU_BATCH_TOKENS if on_cpu else 16384)), 64)
        self.max_batch = max(int(max_batch or (CPU_MAX_BATCH if on_cpu else 128)), 1)
        gen_tokens = batch_tokens or (CPU_GEN_BATCH_TOKENS if on_cpu else 16384)
        self.gen_batch_tokens = max(int(gen_tokens), 64)
        self.gen_max_batch = max(int(max_batch or (CPU_GEN_MAX_BATCH if on_cpu else 128)), 1)
        cfg_len = getattr(model.config, "max_position_embeddings", None) or 2048
        self.max_length = int(max_length or cfg_len)
        self._tree_ok: bool | None = None  # see _tree_masks_work
        self._torch = torch
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.pad_id = int(tokenizer.pad_token_id)

    # -- log-likelihood ---------------------------------------------------------

    def loglikelihood(
        self, groups: Sequence[Sequence[tuple[str, str]]], progress: Progress | None = None
    ) -> list[list[LoglikResult]]:
        torch = self._torch
        req_groups = packing.make_requests(self.tokenizer, groups, self.max_length)
        tree = self._tree_masks_work()
        units = packing.make_units(req_groups, share=tree)
        # Without tree masks every request is its own row (plain causal + padding mask).
        width = min(ROW_TOKENS, self.batch_tokens) if tree else 0
        rows = packing.pack_rows(units, width)
        results: list[list[LoglikResult | None]] = [[None] * len(g) for g in req_groups]
        done_groups = 0
        finished = [0] * len(req_groups)
        with torch.inference_mode():
            for batch in packing.batches(rows, self.batch_tokens, self.max_batch):
                self._score_rows(batch, results, tree)
                for r in (r for row in batch for u in row for r in u.reqs):
                    finished[r.group] += 1
                    if finished[r.group] == len(req_groups[r.group]):
                        done_groups += 1
                if progress:
                    progress(done_groups, len(req_groups))
        return [[r for r in g if r is not None] for g in results]

    def _tree_masks_work(self) -> bool:
        """Whether this model honours a custom 4D mask with restarting positions.

        Checked once per backend: two short sequences packed into one row must give
        the hidden states each gives alone.  A model that ignores such a mask is
        scored one request per row instead (slower, same numbers).
        """
        if self._tree_ok is None:
            torch = self._torch
            seqs = [[101, 102, 103, 104], [201, 202, 203]]
            dec = self.model.get_decoder()
            dev = self.device
            unit = torch.tensor([[0] * 4 + [1] * 3], device=dev)
            seg = torch.zeros_like(unit)
            mask = packing.tree_mask(unit, seg)
            pos = torch.tensor([[0, 1, 2, 3, 0, 1, 2]], device=dev)
            ids = torch.tensor([seqs[0] + seqs[1]], device=dev)
            try:
                with torch.inference_mode():
                    both = dec(
                        input_ids=ids, attention_mask=mask, position_ids=pos
                    ).last_hidden_state
                    alone = dec(input_ids=torch.tensor([seqs[1]], device=dev)).last_hidden_state
                tol = 1e-3 if both.dtype == torch.float32 else 5e-2  # bf16/fp16 round more
                self._tree_ok = bool(torch.allclose(both[0, 4:], alone[0], atol=tol, rtol=tol))
            except (TypeError, ValueError, RuntimeError):
                self._tree_ok = False
        return self._tree_ok

    def _score_rows(
        self,
        rows: list[list[packing.Unit]],
        results: list[list[LoglikResult | None]],
        tree: bool,
    ) -> None:
        torch = self._torch
        dev = self.device
        lay = packing.layout(rows, self.pad_id)
        ids = torch.tensor(lay.ids, device=dev)
        unit = torch.tensor(lay.unit, device=dev)
        if tree:
            mask = packing.tree_mask(unit, torch.tensor(lay.segment, device=dev))
        else:
            mask = (unit >= 0).long()  # one request per row, right padding
        out = self.model.get_decoder()(
            input_ids=ids,
            attention_mask=mask,
            position_ids=torch.tensor(lay.positions, device=dev),
            use_cache=False,
        )
        hidden = out.last_hidden_state.reshape(-1, out.last_hidden_state.shape[-1])
        hidden = hidden[torch.tensor(lay.picks, device=dev)]
        targets = torch.tensor(lay.targets, device=dev)
        head = self.model.get_output_embeddings()
        tok_lp_parts, greedy_parts = [], []
        for a in range(0, hidden.shape[0], HEAD_CHUNK):  # never a [positions, vocab] giant
            logits = head(hidden[a : a + HEAD_CHUNK]).float()
            tgt = targets[a : a + HEAD_CHUNK]
            lse = torch.logsumexp(logits, dim=-1)
            tok_lp_parts.append(logits.gather(1, tgt[:, None]).squeeze(1) - lse)
            greedy_parts.append(logits.argmax(dim=-1) == tgt)
        tok_lp = torch.cat(tok_lp_parts).cpu().tolist()
        greedy = torch.cat(greedy_parts).cpu().tolist()
        for r, a, z in lay.spans:
            results[r.group][r.index] = LoglikResult(
                logprob=float(sum(tok_lp[a:z])),
                is_greedy=bool(all(greedy[a:z])),
                n_tokens=z - a,
                truncated=r.truncated,
            )

    # -- generation -------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        stop: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> list[Generation]:
        rows = self._decode(prompts, max_new_tokens, stop, progress, None)
        return [r[0] for r in rows]

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
        return self._decode(prompts, max_new_tokens, stop, progress, sampling)

    def _decode(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        stop: Sequence[str],
        progress: Progress | None,
        sampling: Sampling | None,
    ) -> list[list[Generation]]:
        """Batched decoding: greedy (``sampling`` None, one output per prompt) or sampled."""
        torch = self._torch
        if max_new_tokens < 1:
            raise BadInput(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        n = sampling.n if sampling is not None else 1
        if sampling is not None:
            torch.manual_seed(sampling.seed)
            how: dict[str, Any] = {
                "do_sample": True,
                "temperature": sampling.temperature,
                "top_k": sampling.top_k or 0,
                "top_p": None,
                "num_return_sequences": n,
            }
        else:
            how = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        room = max(self.max_length - max_new_tokens, 1)
        encoded = []
        for text in prompts:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            encoded.append((list(ids[-room:]), len(ids) > room))
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i][0]))
        out: list[list[Generation] | None] = [None] * len(prompts)
        eos = self.tokenizer.eos_token_id
        done = 0
        i = 0
        with torch.inference_mode():
            while i < len(order):
                longest = len(encoded[order[i]][0]) + max_new_tokens
                size = max(1, min(self.gen_max_batch, self.gen_batch_tokens // longest) // n)
                idx = order[i : i + size]
                i += len(idx)
                width = max(len(encoded[j][0]) for j in idx)
                ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for r, j in enumerate(idx):
                    seq = encoded[j][0]
                    ids[r, width - len(seq) :] = torch.tensor(seq)
                    mask[r, width - len(seq) :] = 1
                kwargs: dict[str, Any] = {}
                if stop:
                    kwargs["stopping_criteria"] = _stop_criteria(self.tokenizer, stop, width)
                gen = self.model.generate(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    max_new_tokens=max_new_tokens,
                    pad_token_id=self.pad_id,
                    eos_token_id=eos,
                    **how,
                    **kwargs,
                )
                for r, j in enumerate(idx):
                    out[j] = [
                        self._finish(
                            gen[r * n + s, width:].tolist(), stop, max_new_tokens, encoded[j][1]
                        )
                        for s in range(n)
                    ]
                done += len(idx)
                if progress:
                    progress(done, len(prompts))
        return [g for g in out if g is not None]

    def _finish(
        self, new: list[int], stop: Sequence[str], max_new_tokens: int, truncated: bool
    ) -> Generation:
        eos = self.tokenizer.eos_token_id
        n = len(new)
        if eos is not None and eos in new:
            n = new.index(eos)
            text = self.tokenizer.decode(new[:n], skip_special_tokens=True)
            return _cut(text, stop, n, "eos", truncated)
        # Without an EOS, trailing pads are padding added after a stop string.
        while n and new[n - 1] == self.pad_id and self.pad_id != eos:
            n -= 1
        text = self.tokenizer.decode(new[:n], skip_special_tokens=True)
        finish = "length" if n >= max_new_tokens else "stop"
        return _cut(text, stop, n, finish, truncated)


def _stop_criteria(tokenizer: Any, stop: Sequence[str], prompt_width: int) -> Any:
    """A stopping criterion that ends each row once its new text holds a stop string.

    (Cheaper than ``generate(stop_strings=...)``, whose set-up scans the whole
    vocabulary on every call; only the few new tokens are decoded per step.)
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            texts = tokenizer.batch_decode(input_ids[:, prompt_width:], skip_special_tokens=True)
            flags = [any(s in t for s in stop) for t in texts]
            return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Stop()])


def _cut(text: str, stop: Sequence[str], n: int, finish: str, truncated: bool) -> Generation:
    cut = min((k for k in (text.find(s) for s in stop if s) if k >= 0), default=-1)
    if cut >= 0:
        return Generation(text[:cut], n, "stop", truncated)
    return Generation(text, n, finish, truncated)


def apply_adapter(model: Any, adapter: Path, *, merge: bool = True) -> Any:
    """``model`` with the LoRA adapter in ``adapter`` (merged into the weights by default)."""
    from peft import PeftModel

    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise BadInput(
            f"adapter {adapter} does not fit model {model.config._name_or_path!r}: "
            f"{str(exc).splitlines()[0][:300]}"
        ) from None
    return peft_model.merge_and_unload() if merge else peft_model
