"""Fine-tuning a causal LM on a prompt/completion dataset (LoRA or full), resumably.

What it does:

* **Formatting shared with evaluation.** :func:`format_prompt` applies the model's
  chat template to a user prompt with ``add_generation_prompt=True``; a training
  example is that text's tokens + the completion's tokens + EOS
  (:func:`encode_example`).  Evaluation prompts the model with the same
  :func:`format_prompt`, so train and test see identical prefixes.
* **Completion-only loss, computed cheaply.** Prompt tokens are labelled ``-100``.
  For the decoder families in :data:`FAST_LOSS_TYPES` the LM head is applied only
  at the positions that have a label (the prompt's logits are never computed).
  With ``micro_batches > 1`` each batch runs as length-sorted pieces trimmed to
  their own length (:func:`split_by_length`): the same samples and gradient as the
  whole padded batch with little padding, but more, smaller passes (off by default:
  not yet measured on a quiet machine).  No gradient checkpointing by default.
  ``benchmarks/training.py`` compares all this with a plain ``SFTTrainer``.
* **Data order.** Plain seeded shuffling by default: the same permutation as a plain
  ``transformers.Trainer`` (or TRL's ``SFTTrainer``) with the same seed, so runs of
  either see the same batches.  ``group_by_length=True`` batches rows of similar
  length across the dataset (:class:`LengthGroupedSampler`, least padding), but with
  template mixtures that makes batches nearly single-template, which measured worse
  held-out loss at equal steps; the in-batch split above gets most of the padding
  saving without changing the order.
* **Run directory.** ``config.json`` (:class:`TrainConfig`), ``metrics.jsonl`` (one
  line per optimizer step: step, loss, learning rate, tokens/s, elapsed, eta),
  ``checkpoints/checkpoint-N`` every ``save_every`` steps (adapter or weights,
  optimizer, scheduler, RNG states), and at the end ``adapter/`` (LoRA) or
  ``model/`` (full), optionally ``merged/`` (LoRA merged into the base weights),
  and ``result.json``.
* **Resume.** :func:`train` with ``resume=True`` continues from the last complete
  checkpoint.  The data order is a pure function of (seed, epoch) and the RNG
  states are restored, so on CPU the final loss matches an uninterrupted run to
  within 1e-4 relative (``tests/test_training.py`` checks this).
* **Stopping.** A ``should_stop`` callable is polled after every optimizer step;
  when it returns True the trainer writes a checkpoint and returns with status
  ``stopped`` (this is how a cancelled job exits cleanly).

* **Several processes.** ``nproc > 1`` hands the run to
  :mod:`cookbook_core.train.distributed` (torchrun, DDP: gloo on CPU, one GPU per rank
  on CUDA); ``batch_size`` stays the global batch and per-step losses match one
  process.  Each rank then runs this same function; rank 0 writes the files.

CUDA with bf16 (when supported) is used when a GPU is visible, the CPU otherwise.
What it does not do: manage jobs or processes (``jobs``/``worker``), or evaluate.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from cookbook_core import dataset_io, storage
from cookbook_core.errors import BadInput, CookbookError
from cookbook_core.train import distributed, models
from cookbook_core.train.config import (  # noqa: F401 - re-exported: the config lives there
    DEFAULT_TARGET_MODULES,
    MAX_LORA_RANK,
    METHODS,
    TrainConfig,
    TrainConfigError,
)

RESUME_RTOL = 1e-4  # final-loss agreement of a resumed run with an uninterrupted one (CPU)
FAST_LOSS_TYPES = {"llama", "mistral", "qwen2", "qwen3", "smollm3", "olmo2", "phi3"}
VALIDATE_ROWS = 1000  # rows read when validating a dataset before a run starts

Progress = Callable[[int, int, dict[str, Any]], None]


class TrainingError(CookbookError):
    """Training started and failed."""


config_from_dict = TrainConfig.from_dict  # the JSON form back (unknown keys: TrainConfigError)


# ----------------------------------------------------------------------------------
# Validation (cheap: before any work starts)


def validate(cfg: TrainConfig) -> None:
    """Raise :class:`TrainConfigError` (or another ``BadInput``) for a config that cannot run."""
    cfg.check()  # types, ranges and choices, as declared in train.config
    if cfg.method == "lora" and not cfg.target_modules:
        raise TrainConfigError("target_modules must name at least one module")
    distributed.check(cfg.nproc, cfg.batch_size)
    _check_rows(cfg.data, "dataset")
    if cfg.natural_data:
        _check_rows(cfg.natural_data, "natural-language data")
    models.resolve(cfg.model)


def _check_rows(data: str, what: str) -> None:
    n = 0
    for _ in dataset_io.iter_rows(data, limit=VALIDATE_ROWS):  # raises DatasetError on bad rows
        n += 1
    if n == 0:
        raise dataset_io.DatasetError(f"{what} {data} is empty")


# ----------------------------------------------------------------------------------
# Formatting (shared with evaluation)


def format_prompt(tokenizer: Any, prompt: str) -> str:
    """The text a model sees before its answer: the chat template with the generation prompt.

    Falls back to the bare prompt for tokenizers without a chat template.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt


def encode_example(
    tokenizer: Any, prompt: str, completion: str, max_length: int
) -> dict[str, list[int]]:
    """``input_ids``/``labels`` for one example: labels are -100 on the prompt.

    Prompt and completion are tokenized separately (as at generation time).  Over
    ``max_length``, the prompt loses tokens from its start first; a completion that
    alone is too long is cut at its end (the EOS is kept).
    """
    p_ids = tokenizer(format_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(c_ids) > max_length - 1:
        c_ids = c_ids[: max_length - 2] + [tokenizer.eos_token_id]
    room = max_length - len(c_ids)
    if len(p_ids) > room:
        p_ids = p_ids[len(p_ids) - room :]
    return {"input_ids": p_ids + c_ids, "labels": [-100] * len(p_ids) + c_ids}


def training_rows(cfg: TrainConfig) -> list[dict[str, Any]]:
    """The rows a run trains on: the dataset (up to ``max_samples``) plus ``natural_n``
    natural-language rows drawn (seeded) from ``natural_data``."""
    rows = list(dataset_io.iter_rows(cfg.data, limit=cfg.max_samples))
    if not rows:
        raise dataset_io.DatasetError(f"dataset {cfg.data} is empty")
    if cfg.natural_data:
        extra = list(dataset_io.iter_rows(cfg.natural_data))
        rng = random.Random(cfg.seed)
        rows += rng.sample(extra, min(cfg.natural_n, len(extra)))
    return rows


def build_examples(cfg: TrainConfig, tokenizer: Any) -> list[dict[str, list[int]]]:
    """Tokenized training examples of :func:`training_rows`."""
    return [
        encode_example(tokenizer, r["prompt"], r["completion"], cfg.max_length)
        for r in training_rows(cfg)
    ]


# ----------------------------------------------------------------------------------
# Data order and batching


class LengthGroupedSampler:
    """Indices shuffled, then sorted by length inside mega-batches, so a batch pads little.

    The order is a pure function of (seed, epoch) (``set_epoch`` is called by the
    Trainer), which is what makes resuming reproduce the uninterrupted run.  The
    batch order is shuffled too, except that the longest batch comes first so an
    out-of-memory error happens at step 1, not hours in.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int, group: bool = True, mega: int = 50
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group = group
        self.mega = mega
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch))

    def order(self, epoch: int) -> list[int]:
        import torch

        # The same permutation as transformers' default (accelerate's seedable)
        # sampler: torch.randperm seeded with seed + epoch.  So a plain Trainer or
        # TRL's SFTTrainer with the same seed sees the same batches in the same order,
        # which is what lets benchmarks/training.py compare losses step for step.
        gen = torch.Generator().manual_seed(self.seed + epoch)
        idx = torch.randperm(len(self.lengths), generator=gen).tolist()
        if not self.group:
            return idx
        rng = random.Random(self.seed * 1_000_003 + epoch)
        size = self.batch_size * self.mega
        batches: list[list[int]] = []
        for start in range(0, len(idx), size):
            chunk = sorted(idx[start : start + size], key=lambda i: -self.lengths[i])
            batches += [
                chunk[j : j + self.batch_size] for j in range(0, len(chunk), self.batch_size)
            ]
        full = [b for b in batches if len(b) == self.batch_size]
        partial = [b for b in batches if len(b) != self.batch_size]
        rng.shuffle(full)
        if full:
            longest = max(range(len(full)), key=lambda k: max(self.lengths[i] for i in full[k]))
            full[0], full[longest] = full[longest], full[0]
        return [i for b in full + partial for i in b]


def split_by_length(lengths: Any, pieces: int, slack: float = 0.1) -> list[Any]:
    """Row indices of a batch sorted by length and cut into at most ``pieces`` runs.

    Running each run trimmed to its own longest row computes the same summed loss and
    gradient as the whole padded batch, with far less padding (for rows of 80-160
    tokens in random batches of 8: 30% padding overhead as one piece, 12% as two, 4%
    as four).  The fewest pieces whose padding is within ``slack`` of the real tokens
    are used (one when the rows are about as long), since each piece costs a pass.
    """
    import torch

    order = torch.argsort(lengths, stable=True)
    real = int(lengths.sum())
    best: list[Any] = [order]
    for k in range(1, max(1, min(pieces, len(order))) + 1):
        parts = [p for p in torch.tensor_split(order, k) if len(p)]
        best = parts
        padded = sum(int(lengths[p].max()) * len(p) for p in parts)
        if padded <= (1 + slack) * real:
            break
    return best


def collate(features: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch to its longest example (labels padded with -100)."""
    import torch

    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    labels = torch.full((len(features), width), -100, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, f in enumerate(features):
        n = len(f["input_ids"])
        ids[row, :n] = torch.tensor(f["input_ids"])
        labels[row, :n] = torch.tensor(f["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# ----------------------------------------------------------------------------------
# The run


def last_checkpoint(run_dir: Path | str) -> Path | None:
    """The newest complete checkpoint (one with ``trainer_state.json``) of a run, if any."""
    ckpts = Path(run_dir) / "checkpoints"
    found = []
    if ckpts.is_dir():
        for d in ckpts.glob("checkpoint-*"):
            tail = d.name.rsplit("-", 1)[-1]
            if tail.isdigit() and (d / "trainer_state.json").is_file():
                found.append((int(tail), d))
    return max(found)[1] if found else None


def _use_bf16(cfg: TrainConfig) -> bool:
    import torch

    if cfg.precision == "fp32" or not torch.cuda.is_available():
        return False
    return cfg.precision == "bf16" or torch.cuda.is_bf16_supported()


def _checkpointing_args(on: bool) -> dict[str, Any]:
    """Gradient (activation) checkpointing arguments under this transformers' names."""
    from dataclasses import fields as dc_fields

    from transformers import TrainingArguments

    names = {f.name for f in dc_fields(TrainingArguments)}
    if not on:
        return {}
    prefix = "activation" if "activation_checkpointing" in names else "gradient"
    return {
        f"{prefix}_checkpointing": True,
        f"{prefix}_checkpointing_kwargs": {"use_reentrant": False},
    }


def _build_model(cfg: TrainConfig) -> tuple[Any, Any]:
    model, tok = models.load(cfg.model)
    model.config.use_cache = False
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        unknown = [m for m in cfg.target_modules if m not in names and m != "all-linear"]
        if unknown:
            raise TrainConfigError(
                f"target module(s) {', '.join(unknown)} not found in {cfg.model}"
            )
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=(
                "all-linear" if cfg.target_modules == ["all-linear"] else list(cfg.target_modules)
            ),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    return model, tok


def _make_trainer_class() -> type:
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    class CompletionTrainer(Trainer):
        """Trainer with completion-only loss, LM head applied only where labels exist."""

        def __init__(
            self, *args: Any, sampler: LengthGroupedSampler, micro_batches: int = 1, **kwargs: Any
        ) -> None:
            super().__init__(*args, **kwargs)
            self._sampler = sampler
            self.micro_batches = micro_batches
            self.model_accepts_loss_kwargs = True  # compute_loss normalizes by num_items_in_batch
            self.tokens_seen = 0

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return self._sampler

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            self.tokens_seen += int(inputs["attention_mask"].sum())
            labels = inputs["labels"]
            # Under DDP (nproc > 1) ``model`` is the DistributedDataParallel wrapper: the
            # pieces below must run inside its forward, or no gradient is all-reduced.
            ddp = isinstance(model, torch.nn.parallel.DistributedDataParallel)
            inner = model.module if ddp else model
            base = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
            decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
            head = base.get_output_embeddings()
            if decoder is None or head is None or base.config.model_type not in FAST_LOSS_TYPES:
                if ddp:  # the Trainer's own loss: normalised over the global batch
                    return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
                out = model(**inputs)
                return (out.loss, out) if return_outputs else out.loss
            ids, mask = inputs["input_ids"], inputs["attention_mask"]

            def summed(ids: Any, mask: Any, labels: Any) -> tuple[Any, int]:
                loss = torch.zeros((), device=ids.device)
                n_kept = 0
                for rows in split_by_length(mask.sum(1), self.micro_batches):
                    width = int(mask[rows].sum(1).max())
                    hidden = decoder(
                        input_ids=ids[rows, :width],
                        attention_mask=mask[rows, :width],
                        use_cache=False,
                    ).last_hidden_state
                    target = labels[rows, 1:width]
                    keep = target != -100
                    logits = head(hidden[:, :-1][keep]).float()
                    loss = loss + F.cross_entropy(logits, target[keep], reduction="sum")
                    n_kept += int(keep.sum())
                return loss, n_kept

            if ddp:
                with _forward_as(inner, summed):
                    loss, n_kept = model(ids, mask, labels)
            else:
                loss, n_kept = summed(ids, mask, labels)
            denom = num_items_in_batch if num_items_in_batch is not None else max(n_kept, 1)
            if torch.is_tensor(denom):
                denom = denom.to(loss.device)
            loss = loss / denom
            if ddp and num_items_in_batch is not None and self.args.average_tokens_across_devices:
                # DDP averages the ranks' gradients; each rank's loss is its share of a sum
                # over the global batch's tokens, so scale back up (as Trainer.compute_loss).
                loss = loss * self.accelerator.num_processes
            return (loss, {"loss": loss}) if return_outputs else loss

    return CompletionTrainer


@contextlib.contextmanager
def _forward_as(module: Any, fn: Callable[..., Any]) -> Iterator[None]:
    """While the block runs, calling ``module`` runs ``fn`` (so a DDP wrapper around it
    prepares its gradient all-reduce for what ``fn`` computes)."""
    module.forward = fn
    try:
        yield
    finally:
        del module.forward


def _make_callback(
    run_dir: Path,
    total: int,
    progress: Progress | None,
    should_stop: Callable[[], bool] | None,
    elapsed_before: float,
) -> Any:
    from transformers import TrainerCallback

    class RunCallback(TrainerCallback):
        """Writes metrics.jsonl, reports progress, and stops (with a checkpoint) on request."""

        def __init__(self) -> None:
            self.trainer: Any = None
            self.started = time.time()
            self.last_t = self.started
            self.last_tokens = 0
            self.last_step: int | None = None
            self.stopped = False
            self.first_step: int | None = None
            self.interval_start: float | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.started = self.last_t = time.time()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.interval_start is None:
                self.interval_start = time.time()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if should_stop is not None and should_stop() and state.global_step < total:
                self.stopped = True
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
        ) -> None:
            if not logs or "loss" not in logs:
                return
            now = time.time()
            step = state.global_step
            if self.first_step is None:
                self.first_step = step - 1
            tokens = self.trainer.tokens_seen if self.trainer is not None else 0
            tokens = distributed.sum_across(tokens)  # every rank logs: a collective is safe
            if not state.is_world_process_zero:
                return
            dt = max(now - (self.interval_start or self.last_t), 1e-9)
            self.interval_start = None
            run_s = now - self.started
            done_here = step - self.first_step
            eta = run_s / done_here * (total - step) if done_here > 0 else None
            rec = {
                "step": step,
                "loss": float(logs["loss"]),
                "lr": float(logs.get("learning_rate", 0.0)),
                "grad_norm": float(logs["grad_norm"]) if "grad_norm" in logs else None,
                "tokens": tokens,
                "tokens_per_s": round((tokens - self.last_tokens) / dt, 1),
                "elapsed": round(elapsed_before + run_s, 2),
                "eta": round(eta, 1) if eta is not None else None,
            }
            self.last_t, self.last_tokens = now, tokens
            with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec) + "\n")
            if progress is not None:
                progress(step, total, rec)

    return RunCallback()


def read_metrics(run_dir: Path | str) -> list[dict[str, Any]]:
    """The metrics lines of a run (empty when it has none yet)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash: appended lines are not atomic
            continue
    return out


def _trim_metrics(run_dir: Path, upto_step: int) -> float:
    """Drop metric lines past ``upto_step`` (work lost in a crash); return the elapsed so far."""
    keep = [r for r in read_metrics(run_dir) if r.get("step", 0) <= upto_step]
    storage.write_jsonl(run_dir / "metrics.jsonl", keep, ensure_ascii=True)
    return float(keep[-1]["elapsed"]) if keep else 0.0


def save_config(cfg: TrainConfig, run_dir: Path) -> None:
    storage.write_json(run_dir / "config.json", cfg.to_dict())


def train(
    cfg: TrainConfig,
    run_dir: Path | str,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    interruptible: Callable[[], AbstractContextManager[Any]] | None = None,
) -> dict[str, Any]:
    """Fine-tune as ``cfg`` says, writing into ``run_dir``; return the result summary.

    ``resume=True`` continues from the last complete checkpoint in ``run_dir`` (a
    fresh start when there is none).  The result's ``status`` is ``completed`` or
    ``stopped`` (``should_stop`` returned True; a checkpoint was written).
    ``interruptible`` (a job's :meth:`JobContext.interruptible`) wraps the preparation
    (imports, model loading, tokenizing), where a cancel may stop the run at once.
    """
    if cfg.nproc > 1 and not distributed.is_rank():
        with (interruptible or contextlib.nullcontext)():
            validate(cfg)
        return distributed.launch(
            cfg, run_dir, resume=resume, progress=progress, should_stop=should_stop
        )
    world = distributed.world_size()
    main = distributed.is_main()
    # Everything up to the first step has nothing to save: a cancel inside it stops at once.
    with (interruptible or contextlib.nullcontext)():
        validate(cfg)
        run_dir = Path(run_dir).resolve()
        if world == 1:
            save_config(cfg, run_dir)  # under DDP the launcher has written it
        ckpt = last_checkpoint(run_dir) if resume else None
        if main and not resume and (run_dir / "metrics.jsonl").exists():
            (run_dir / "metrics.jsonl").unlink()
        elapsed_before = 0.0
        if ckpt is not None:
            done = json.loads((ckpt / "trainer_state.json").read_text())["global_step"]
            elapsed_before = _trim_metrics(run_dir, done) if main else 0.0

        import torch
        import transformers
        from transformers import TrainingArguments

        transformers.logging.set_verbosity_error()
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        transformers.set_seed(cfg.seed)
        model, tok = _build_model(cfg)
        examples = build_examples(cfg, tok)
        sampler = LengthGroupedSampler(
            [len(e["input_ids"]) for e in examples], cfg.batch_size, cfg.seed, cfg.group_by_length
        )
        bf16 = _use_bf16(cfg)
        args = TrainingArguments(
            output_dir=str(run_dir / "checkpoints"),
            max_steps=cfg.steps,
            per_device_train_batch_size=cfg.batch_size // world,  # the global batch, split
            gradient_accumulation_steps=cfg.grad_accum,
            learning_rate=cfg.lr,
            lr_scheduler_type=cfg.lr_scheduler,
            warmup_steps=cfg.warmup_steps,
            weight_decay=cfg.weight_decay,
            logging_steps=1,
            save_strategy="steps",
            save_steps=cfg.save_every,
            save_total_limit=cfg.keep_checkpoints,
            seed=cfg.seed,
            bf16=bf16,
            use_cpu=not torch.cuda.is_available(),
            report_to="none",
            disable_tqdm=True,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            optim="adamw_torch",
            **_checkpointing_args(cfg.gradient_checkpointing),
            **(
                {"ddp_backend": "nccl" if torch.cuda.is_available() else "gloo"}
                if world > 1
                else {}
            ),
        )
        callback = _make_callback(run_dir, cfg.steps, progress, should_stop, elapsed_before)
        trainer = _make_trainer_class()(
            model=model,
            args=args,
            train_dataset=examples,
            data_collator=lambda feats: collate(feats, tok.pad_token_id),
            callbacks=[callback],
            sampler=sampler,
            micro_batches=cfg.micro_batches,
        )
        callback.trainer = trainer
    started = time.time()
    try:
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
    except torch.OutOfMemoryError as exc:
        raise TrainingError(
            f"out of memory at step {trainer.state.global_step} (batch size {cfg.batch_size}, "
            f"max length {cfg.max_length}): lower them and resume; earlier checkpoints are kept"
        ) from exc
    metrics = read_metrics(run_dir)
    result: dict[str, Any] = {
        "status": "stopped" if callback.stopped else "completed",
        "step": trainer.state.global_step,
        "steps": cfg.steps,
        "final_loss": metrics[-1]["loss"] if metrics else None,
        "resumed_from": str(ckpt) if ckpt is not None else None,
        "examples": len(examples),
        "seconds": round(time.time() - started, 2),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "bf16": bf16,
        "checkpoint": str(last_checkpoint(run_dir) or ""),
    }
    if world > 1:
        result["nproc"] = world
    if not main:  # rank 0 writes the outputs and the result
        return result
    if not callback.stopped:
        result.update(_save_outputs(cfg, trainer.model, tok, run_dir))
    storage.write_json(run_dir / "result.json", result)
    return result


def _save_outputs(cfg: TrainConfig, model: Any, tok: Any, run_dir: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    target = run_dir / ("adapter" if cfg.method == "lora" else "model")
    _atomic_save(target, lambda d: (model.save_pretrained(str(d)), tok.save_pretrained(str(d))))
    out["adapter" if cfg.method == "lora" else "model"] = str(target)
    if cfg.method == "lora" and cfg.merge:
        merged = run_dir / "merged"
        base = model.merge_and_unload()
        _atomic_save(merged, lambda d: (base.save_pretrained(str(d)), tok.save_pretrained(str(d))))
        out["merged"] = str(merged)
    return out


def _atomic_save(target: Path, write: Callable[[Path], Any]) -> None:
    with storage.staged_dir(target) as tmp:
        write(tmp)


def load_trained(run_dir: Path | str) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a finished run: merged, full, or base + adapter."""
    run_dir = Path(run_dir)
    for name in ("merged", "model"):
        if (run_dir / name / "config.json").is_file():
            return models.load(str(run_dir / name))
    if (run_dir / "adapter").is_dir():
        from peft import PeftModel

        cfg = config_from_dict(json.loads((run_dir / "config.json").read_text()))
        base, tok = models.load(cfg.model)
        return PeftModel.from_pretrained(base, str(run_dir / "adapter")), tok
    raise BadInput(f"{run_dir} holds no trained model (adapter/, model/ or merged/)")


# ----------------------------------------------------------------------------------
# The ``train`` job kind (declared in cookbook_core.jobs.store; ``ctx`` is its JobContext)


def validate_job(config: dict[str, Any]) -> dict[str, Any]:
    """Check a ``train`` job's config (a :class:`TrainConfig` dict) before it is queued;
    the config to store, with data paths (and a local model path) made absolute."""
    cfg = config_from_dict(config)
    validate(cfg)
    for key in ("data", "natural_data"):
        value = getattr(cfg, key)
        if value:
            setattr(cfg, key, str(Path(value).resolve()))
    if Path(cfg.model).expanduser().exists():
        cfg.model = str(Path(cfg.model).expanduser().resolve())
    return cfg.to_dict()


def run_job(ctx: Any) -> dict[str, Any]:
    """Fine-tune from the job's saved config into its run directory (resumable; a cancel
    request writes a checkpoint and returns ``stopped``)."""
    cfg = config_from_dict(ctx.config)

    def progress(step: int, total: int, info: dict[str, Any]) -> None:
        ctx.progress(
            step,
            total,
            unit="steps",
            loss=info["loss"],
            tokens_per_s=info["tokens_per_s"],
            eta=info["eta"],
        )

    print(
        f"[{time.strftime('%H:%M:%S')}] loading {cfg.model} and the data "
        "(a cancel stops the job at once until training starts)",
        flush=True,
    )
    return train(
        cfg,
        ctx.run_dir,
        resume=ctx.resume,
        progress=progress,
        should_stop=ctx.cancelled,
        interruptible=ctx.interruptible,
    )
