"""SELF-GUIDE: the model writes, labels and filters its own task data, then is fine-tuned on it.

The pipeline (Zhao et al. 2024, arXiv 2407.12874; ``../shared/spec/PAPERS.md`` §2)
for one Super-NaturalInstructions task (:mod:`cookbook_core.selfguide.tasks`),
run by :func:`run` in stages, each writing its data into the run directory:

1. ``inputs``: input generation in rounds of ``round_size`` prompts.  Each prompt
   holds the instruction, every demonstration input as a high-quality example and
   1 to min(``max_low_quality``, pool) inputs kept by earlier rounds as low-quality
   examples; a classification prompt also names a randomly drawn target label.
   Sampled with ``input_temperature`` / ``input_top_k``.  Each round's inputs go
   through the input filters (:func:`selfguide_filters.filter_inputs`).  Files:
   ``inputs_raw.jsonl`` (every generation, its prompt's label, kept or the stage
   and detail that dropped it) and ``inputs_kept.jsonl``.
2. ``outputs``: ``n_outputs`` samples per kept input at low temperature, prompted
   exactly like evaluation (:func:`task_prompt`: instruction, demonstrations, input;
   answers end where :func:`answer_stop` says, in annotation and evaluation alike),
   then the self-consistency vote (:func:`selfguide_filters.vote`); classification
   keeps exact labels only and balances classes (seeded).  Files:
   ``outputs_raw.jsonl`` (every sample and the vote), ``pairs.jsonl``, and the kept
   pairs as a dataset that training and Cookbook-Mix read (``dataset/``: the same
   ``manifest.json`` + ``data.jsonl`` layout as :mod:`cookbook_core.generate`).
3. ``baseline``: see 5 (run before training so the loaded base model is reused).
4. ``train``: LoRA fine-tuning through :func:`training.train` on ``dataset/``
   (completion-only loss; the prompt is :func:`task_prompt`, the one evaluation uses),
   into ``train/``.
5. ``baseline`` and ``finetuned``: greedy answers of the base model (few-shot
   prompting: the same prompt with the demonstrations) and of the fine-tuned model
   on the task's test rows; exact match (the authors' last-label extraction, NI
   normalization) for classification, token-level ROUGE-L plus the authors'
   character-level variant for generation.  Files: ``eval_baseline.jsonl``,
   ``eval_finetuned.jsonl`` (per example) and ``eval.json``.

``funnel.json`` holds the drop-reason table (generated → each input filter → vote →
balance → trained).  ``state.json`` lists completed stages; a resumed run skips them
(training itself resumes from its last checkpoint).  When the vote keeps nothing,
:class:`EmptyVote` says so and the funnel shows where everything went.

Generation uses :mod:`cookbook_core.eval.inference` (transformers on CPU, vLLM on GPU).
The ``selfguide`` job kind's :func:`validate_job` and :func:`run_job` are here (declared
in :mod:`cookbook_core.jobs.store`).  Not done: the paper's choice of the
best epoch on validation data, and its per-family hyper-parameter search.
"""

from __future__ import annotations

import gc
import json
import math
import random
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cookbook_core import paths, storage
from cookbook_core.errors import BadInput, CookbookError
from cookbook_core.eval import scoring
from cookbook_core.jobs import store as jobs
from cookbook_core.selfguide import filters as sf
from cookbook_core.selfguide.config import (  # noqa: F401 - re-exported: the config lives there
    FAMILY_DEFAULTS,
    SelfGuideConfig,
    SelfGuideConfigError,
)
from cookbook_core.selfguide.tasks import NITask, load_task
from cookbook_core.train import models

STAGES = ("inputs", "outputs", "baseline", "train", "finetuned")
CHUNK = 4  # prompts per backend call between progress reports / cancel checks

Progress = Callable[..., None]


class SelfGuideError(CookbookError):
    """The pipeline started and failed."""


class EmptyVote(SelfGuideError):
    """No input survived the filters and the vote: nothing to fine-tune on."""


class Stopped(CookbookError):
    """Raised inside :func:`run` when ``should_stop`` returns True."""


config_from_dict = SelfGuideConfig.from_dict  # the JSON form back (unknown keys: an error)


def validate(cfg: SelfGuideConfig) -> SelfGuideConfig:
    """Raise ``BadInput`` for a request that cannot run (before any model loads); return it
    with the family defaults filled in and paths made absolute."""
    from cookbook_core.eval import inference

    task = load_task(cfg.task, cfg.data_dir)
    out = cfg.resolved(task)
    out.check()  # types, ranges and choices, as declared in selfguide.config
    task.rows(out.eval_split, limit=1)  # the split exists and has rows
    inference.choose_backend(out.backend, out.model)
    models.resolve(out.model)
    out.task = task.name
    out.data_dir = str(task.folder.parent.parent)
    if Path(out.model).expanduser().exists():
        out.model = str(Path(out.model).expanduser().resolve())
    return out


# ----------------------------------------------------------------------------------
# Prompts


def task_prompt(task: NITask, text: str) -> str:
    """The user prompt for answering one input: instruction, demonstrations, the input.

    Used for output annotation, fine-tuning, the few-shot baseline and the fine-tuned
    model's evaluation alike (wrapped in the chat template by ``training.format_prompt``).
    """
    demos = "\n\n".join(f"Input: {d.input}\nOutput: {d.output}" for d in task.demonstrations)
    return (
        f"{task.instruction}\n\nExamples:\n\n{demos}\n\n"
        f"Now answer the following the same way.\nInput: {text}\nOutput:"
    )


def answer_stop(task: NITask) -> tuple[str, ...]:
    """Where an answer ends, in annotation and evaluation alike: at its first line break
    (every gold output and demonstration output in the pack is one line)."""
    if any("\n" in d.output for d in task.demonstrations):
        return ("\n\n",)
    return ("\n",)


def input_prompt(task: NITask, low_quality: Sequence[str], label: str | None) -> str:
    """The user prompt that asks the model for one new task input."""
    parts = [
        f"Task instruction: {task.instruction}",
        "Your job is not to solve this task but to write one new input for it.",
        "High-quality example inputs:\n\n"
        + "\n\n".join(f"Example {i}:\n{d.input}" for i, d in enumerate(task.demonstrations, 1)),
    ]
    if low_quality:
        parts.append(
            "Low-quality example inputs (write a better one than these):\n\n"
            + "\n\n".join(f"Example {i}:\n{t}" for i, t in enumerate(low_quality, 1))
        )
    if label is not None:
        parts.append(f'Write a new input whose correct answer is "{label}".')
    parts.append(
        "Write one new input in the same style as the high-quality examples. "
        "Reply with the new input only."
    )
    return "\n\n".join(parts)


def _token_len(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _budget(tokenizer: Any, texts: Sequence[str], cap: int) -> int:
    """New-token budget for generating texts like ``texts``: twice the longest + 8, capped."""
    return max(8, min(cap, 2 * max(_token_len(tokenizer, t) for t in texts) + 8))


# ----------------------------------------------------------------------------------
# Run directory helpers


def _write_json(path: Path, data: Any) -> None:
    storage.write_json(path, data, default=str)


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    storage.write_jsonl(path, rows)


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Rows of a JSONL file of a run (empty when it does not exist yet)."""
    return storage.read_jsonl(path, missing_ok=True)


def read_state(run_dir: Path | str) -> dict[str, Any]:
    path = Path(run_dir) / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {"completed": []}


def _mark_done(run_dir: Path, stage: str, info: dict[str, Any]) -> None:
    state = read_state(run_dir)
    if stage not in state["completed"]:
        state["completed"].append(stage)
    state.setdefault("stages", {})[stage] = info
    _write_json(run_dir / "state.json", state)


def read_funnel(run_dir: Path | str) -> dict[str, Any]:
    path = Path(run_dir) / "funnel.json"
    return json.loads(path.read_text()) if path.is_file() else {"stages": []}


def _save_funnel(run_dir: Path, funnel: sf.Funnel, **extra: Any) -> dict[str, Any]:
    data = {**read_funnel(run_dir), **extra, "stages": funnel.rows()}
    _write_json(run_dir / "funnel.json", data)
    return data


def funnel_text(funnel: dict[str, Any]) -> str:
    """The drop-reason table as plain text (stage, entered, dropped, kept, reason)."""
    lines = [f"{'stage':<14}{'entered':>8}{'dropped':>9}{'kept':>6}  reason"]
    for s in funnel.get("stages", []):
        lines.append(
            f"{s['stage']:<14}{s['entered']:>8}{s['dropped']:>9}{s['kept']:>6}  {s['reason']}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------
# The pipeline


class _Runner:
    def __init__(
        self,
        cfg: SelfGuideConfig,
        run_dir: Path,
        backend: Any,
        progress: Progress | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.task = load_task(cfg.task, cfg.data_dir)
        self._backend = backend
        self._own_backend = backend is None
        self._progress = progress
        self.should_stop = should_stop

    # -- plumbing -----------------------------------------------------------------

    def backend(self) -> Any:
        if self._backend is None:
            from cookbook_core.eval import inference

            self._backend = inference.load_backend(self.cfg.model, backend=self.cfg.backend)
        return self._backend

    def release_backend(self) -> None:
        """Free an engine this run loaded itself (before training needs the memory)."""
        if self._own_backend and self._backend is not None:
            self._backend = None
            gc.collect()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:  # pragma: no cover
                pass

    def progress(self, stage: str, done: int, total: int, **info: Any) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Stopped(stage)
        if self._progress is not None:
            self._progress(stage, done, total, **info)

    def formatted(self, prompt: str) -> str:
        from cookbook_core.train.training import format_prompt

        return format_prompt(self.backend().tokenizer, prompt)

    def sample(
        self,
        stage: str,
        prompts: list[str],
        sampling: Any,
        max_new: int,
        total: int,
        base: int,
        stop: Sequence[str] = (),
    ) -> list[list[Any]]:
        out: list[list[Any]] = []
        for a in range(0, len(prompts), CHUNK):
            chunk = [self.formatted(p) for p in prompts[a : a + CHUNK]]
            # each chunk its own seed: with one seed, chunks of equal prompts (the first
            # round of inputs) would repeat each other's samples
            rows = self.backend().sample(
                chunk, sampling=sampling.part(a), max_new_tokens=max_new, stop=stop
            )
            out += rows
            self.progress(stage, base + a + len(chunk), total)
        return out

    # -- stage 1: inputs ----------------------------------------------------------

    def stage_inputs(self) -> dict[str, Any]:
        from cookbook_core.eval.inference import Sampling

        cfg, task = self.cfg, self.task
        rng = random.Random(f"selfguide:{cfg.seed}:inputs")
        demo_inputs = [d.input for d in task.demonstrations]
        max_new = cfg.input_max_new_tokens or _budget(self.backend().tokenizer, demo_inputs, 384)
        raw: list[dict[str, Any]] = []
        kept: list[str] = []
        funnel = sf.Funnel()
        r = 0
        self.progress("inputs", 0, cfg.n_inputs, unit="inputs")
        while len(raw) < cfg.n_inputs:
            size = min(cfg.round_size, cfg.n_inputs - len(raw))
            prompts, labels, n_low = [], [], []
            for _ in range(size):
                k = min(cfg.max_low_quality, len(kept))
                low = rng.sample(kept, rng.randint(1, k)) if k else []
                label = rng.choice(task.labels) if task.is_classification else None
                prompts.append(input_prompt(task, low, label))
                labels.append(label)
                n_low.append(len(low))
            sampling = Sampling(
                temperature=float(cfg.input_temperature or 0.8),
                top_k=cfg.input_top_k,
                n=1,
                seed=cfg.seed * 100_003 + r,
            )
            gens = self.sample("inputs", prompts, sampling, max_new, cfg.n_inputs, len(raw))
            texts = [g[0].text for g in gens]
            verdicts, f = sf.filter_inputs(
                texts,
                demo_inputs=demo_inputs,
                optional_list=task.optional_list,
                length_filter=bool(cfg.input_length_filter),
                seen=kept,
            )
            funnel.merge(f)
            for i, (v, g, lab) in enumerate(zip(verdicts, gens, labels, strict=True)):
                raw.append(
                    {
                        "round": r,
                        "index": len(raw),
                        "prompt_label": lab,
                        "text": g[0].text,
                        "finish": g[0].finish,
                        "kept": v.kept,
                        "stage": v.stage,
                        "detail": v.detail,
                        "low_quality_examples": n_low[i],
                    }
                )
                if v.kept:
                    kept.append(v.text)
            r += 1
        _write_jsonl(self.run_dir / "inputs_raw.jsonl", raw)
        _write_jsonl(
            self.run_dir / "inputs_kept.jsonl",
            [{"index": i, "input": t} for i, t in enumerate(kept)],
        )
        full = sf.Funnel()
        full.add("generated", len(raw), 0, "raw inputs written by the model")
        full.merge(funnel)
        _save_funnel(self.run_dir, full)
        return {"raw": len(raw), "kept": len(kept), "rounds": r, "max_new_tokens": max_new}

    # -- stage 2: outputs ---------------------------------------------------------

    def stage_outputs(self) -> dict[str, Any]:
        from cookbook_core.eval.inference import Sampling

        cfg, task = self.cfg, self.task
        inputs = [r["input"] for r in read_jsonl(self.run_dir / "inputs_kept.jsonl")]
        input_stages = ("generated", *sf.INPUT_FILTERS)  # a rerun starts from these
        funnel = sf.Funnel.from_rows(
            r for r in read_funnel(self.run_dir)["stages"] if r["stage"] in input_stages
        )
        tok = self.backend().tokenizer
        demo_outputs = [d.output for d in task.demonstrations]
        max_new = cfg.output_max_new_tokens or _budget(tok, demo_outputs + list(task.labels), 256)
        bounds = sf.length_bounds(demo_outputs) if cfg.output_length_filter else None
        sampling = Sampling(
            temperature=cfg.output_temperature,
            top_k=cfg.output_top_k,
            n=cfg.n_outputs,
            seed=cfg.seed * 100_003 + 7,
        )
        self.progress("outputs", 0, len(inputs), unit="inputs")
        prompts = [task_prompt(task, t) for t in inputs]
        gens = self.sample(
            "outputs", prompts, sampling, max_new, len(inputs), 0, stop=answer_stop(task)
        )
        labels = list(task.labels) if task.is_classification else None
        raw, voted = [], []
        sample_drops: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for text, row in zip(inputs, gens, strict=True):
            v = sf.vote(
                [g.text for g in row],
                min_share=cfg.min_share,
                labels=labels,
                bounds=bounds,
                optional_list=task.optional_list,
            )
            for k, n in v.dropped.items():
                sample_drops[k] = sample_drops.get(k, 0) + n
            reasons[v.reason] = reasons.get(v.reason, 0) + 1
            raw.append(
                {
                    "input": text,
                    "samples": [g.text for g in row],
                    "finish": [g.finish for g in row],
                    "answer": v.answer,
                    "reason": v.reason,
                    "share": round(v.share, 4),
                    "counts": v.counts,
                    "dropped_samples": v.dropped,
                }
            )
            if v.answer is not None:
                voted.append((text, v.answer, v.share))
        _write_jsonl(self.run_dir / "outputs_raw.jsonl", raw)
        entered = len(inputs)
        n = reasons.get("no_samples", 0)
        funnel.add("vote_samples", entered, n, "every sample empty, out of length bounds or noise")
        entered -= n
        n = reasons.get("no_majority", 0)
        funnel.add(
            "vote_majority", entered, n, f"most frequent answer under {cfg.min_share:.0%} share"
        )
        entered -= n
        class_counts: dict[str, int] = {}
        if task.is_classification:
            n = reasons.get("not_a_label", 0)
            funnel.add("label", entered, n, "voted answer is not exactly a label")
            keep, class_counts = sf.balance_classes([a for _, a, _ in voted], seed=cfg.seed)
            funnel.add(
                "balance", len(voted), len(voted) - len(keep), "downsampled to the smallest class"
            )
            voted = [voted[i] for i in keep]
        extra = {
            "output_samples": {"total": len(inputs) * cfg.n_outputs, "dropped": sample_drops},
            "vote_reasons": reasons,
            "classes_before_balance": class_counts,
        }
        data = _save_funnel(self.run_dir, funnel, **extra)
        if not voted:
            raise EmptyVote(
                f"the filters and the vote kept no example out of {funnel.steps[0].entered} "
                f"generated inputs, so there is nothing to fine-tune on; the funnel "
                f"({self.run_dir / 'funnel.json'}) shows where everything was dropped:\n"
                + funnel_text(data)
            )
        pairs = [
            {
                "prompt": task_prompt(task, text),
                "completion": answer,
                "meta": {"task": task.name, "input": text, "share": round(share, 4)},
            }
            for text, answer, share in voted
        ]
        _write_jsonl(self.run_dir / "pairs.jsonl", pairs)
        write_dataset(self.run_dir / "dataset", pairs, self.cfg, task)
        return {"inputs": len(inputs), "pairs": len(pairs), "max_new_tokens": max_new}

    # -- stage 3: train -----------------------------------------------------------

    def train_config(self) -> Any:
        from cookbook_core.train.training import TrainConfig

        cfg = self.cfg
        return TrainConfig(
            data=str(self.run_dir / "dataset"),
            model=cfg.model,
            steps=cfg.steps,
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            max_length=cfg.max_length,
            lora_r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            seed=cfg.seed,
            save_every=max(1, min(cfg.steps, 20)),
        )

    def stage_train(self, resume: bool) -> dict[str, Any]:
        from cookbook_core.train import training

        self.release_backend()

        def progress(step: int, total: int, info: dict[str, Any]) -> None:
            if self._progress is not None:
                self._progress("train", step, total, unit="steps", loss=info["loss"])

        result = training.train(
            self.train_config(),
            self.run_dir / "train",
            resume=resume,
            progress=progress,
            should_stop=self.should_stop,
        )
        if result["status"] == "stopped":
            raise Stopped("train")
        funnel = sf.Funnel.from_rows(read_funnel(self.run_dir)["stages"])
        funnel.add("trained", result["examples"], 0, f"{result['steps']} LoRA steps")
        _save_funnel(self.run_dir, funnel)
        return {k: result[k] for k in ("step", "final_loss", "examples", "seconds", "device")}

    # -- stages 4-5: evaluation ---------------------------------------------------

    def stage_eval(self, which: str) -> dict[str, Any]:
        from cookbook_core.eval import inference

        cfg, task = self.cfg, self.task
        rows = task.rows(cfg.eval_split, limit=cfg.eval_limit)
        if which == "baseline":
            backend = self.backend()
        else:
            self.release_backend()
            backend = inference.load_backend(
                cfg.model, adapter=self.run_dir / "train" / "adapter", backend=cfg.backend
            )
        from cookbook_core.train.training import format_prompt

        tok = backend.tokenizer
        max_new = cfg.eval_max_new_tokens or _budget(
            tok, [d.output for d in task.demonstrations] + list(task.labels), 256
        )
        prompts = [format_prompt(tok, task_prompt(task, r["input"])) for r in rows]
        self.progress(which, 0, len(rows), unit="examples")
        gens = []
        for a in range(0, len(prompts), CHUNK):
            gens += backend.generate(
                prompts[a : a + CHUNK], max_new_tokens=max_new, stop=answer_stop(task)
            )
            self.progress(which, len(gens), len(rows), unit="examples")
        records = [
            {
                "id": r["id"],
                "input": r["input"],
                "gold": r["output"],
                "generation": g.text,
                "finish": g.finish,
                **score_answer(task, g.text, r["output"]),
            }
            for r, g in zip(rows, gens, strict=True)
        ]
        _write_jsonl(self.run_dir / f"eval_{which}.jsonl", records)
        summary = summarize_scores(task, records, seed=cfg.seed)
        data = read_eval(self.run_dir)
        data.update({"metric": task.metric, "split": cfg.eval_split, "n": len(records)})
        data[which] = summary
        _write_json(self.run_dir / "eval.json", data)
        if which == "finetuned":
            del backend
            gc.collect()
        return summary


def score_answer(task: NITask, generation: str, gold: str) -> dict[str, Any]:
    """Per-example scores of a generation (after :func:`selfguide_filters.clean`, as the
    vote sees answers): exact match of the last label in it (classification), or both
    ROUGE-L variants (generation)."""
    if task.is_classification:
        pred = scoring.last_label(sf.clean(generation), task.labels)
        em = float(pred is not None and scoring.normalize_ni(pred) == scoring.normalize_ni(gold))
        return {"prediction": pred, "scores": {"exact_match": em}}
    return {
        "prediction": sf.clean(generation),
        "scores": {
            "rouge_l": scoring.rouge_l(sf.clean(generation), gold),
            "rouge_l_chars": scoring.rouge_l_chars(sf.clean(generation), gold),
        },
    }


def summarize_scores(task: NITask, records: Sequence[dict[str, Any]], seed: int = 0) -> dict:
    """Mean of each metric over the records with a bootstrap 95% interval."""
    names = ["exact_match"] if task.is_classification else ["rouge_l", "rouge_l_chars"]
    out: dict[str, Any] = {}
    for m in names:
        values = [float(r["scores"][m]) for r in records]
        lo, hi = scoring.bootstrap_mean_ci(values, seed=seed)
        out[m] = {
            "value": sum(values) / len(values) if values else math.nan,
            "ci95": [None if math.isnan(lo) else lo, None if math.isnan(hi) else hi],
        }
    return out


def read_eval(run_dir: Path | str) -> dict[str, Any]:
    path = Path(run_dir) / "eval.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_dataset(
    out: Path, pairs: Sequence[dict[str, Any]], cfg: SelfGuideConfig, task: NITask
) -> dict[str, Any]:
    """The kept pairs as a dataset folder in :mod:`cookbook_core.generate`'s layout
    (``manifest.json`` + ``data.jsonl`` with ``prompt``/``completion``/``messages``/
    ``meta``); its one source is named ``selfguide:<task>`` so Cookbook-Mix can use it
    as a column next to templates."""
    from cookbook_core import __version__

    with storage.staged_dir(out) as tmp:
        rows = [
            {
                "prompt": p["prompt"],
                "completion": p["completion"],
                "messages": [
                    {"role": "user", "content": p["prompt"]},
                    {"role": "assistant", "content": p["completion"]},
                ],
                "meta": {**p["meta"], "template": f"selfguide:{task.name}"},
            }
            for p in pairs
        ]
        _write_jsonl(tmp / "data.jsonl", rows)
        manifest = {
            "kind": "cookbook-dataset",
            "version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "n": len(rows),
            "seed": cfg.seed,
            "format": "jsonl",
            "data": "data.jsonl",
            "bytes": (tmp / "data.jsonl").stat().st_size,
            "templates": [
                {
                    "name": f"selfguide:{task.name}",
                    "file": None,
                    "params": {"selfguide": cfg.to_dict()},
                    "weight": 1.0,
                    "share": 1.0,
                    "count": len(rows),
                    "faults": 0,
                    "attempts": len(rows),
                    "first_fault": None,
                }
            ],
            "extra": {"source": "selfguide", "task": task.name, "ni_task": task.ni_name},
        }
        storage.write_json(tmp / "manifest.json", manifest)
    return manifest


def run(
    cfg: SelfGuideConfig,
    run_dir: Path | str,
    *,
    backend: Any = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run (or continue) the pipeline in ``run_dir``; return the result summary.

    Stages listed in ``state.json`` are skipped, so calling this again after a crash
    or a stop continues where the run left off (the config must be the same).
    ``backend``: an already loaded base-model backend to reuse for generation (else
    one is loaded).  ``progress(stage, done, total, **info)``; ``should_stop`` is polled
    between chunks and training steps: the result's ``status`` is then ``stopped``.
    """
    cfg = validate(cfg)
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.json"
    if saved.is_file():
        before = json.loads(saved.read_text())
        if before != cfg.to_dict():
            diff = sorted(k for k in before if before.get(k) != cfg.to_dict().get(k))
            raise SelfGuideConfigError(
                f"{run_dir} holds a SELF-GUIDE run with other settings ({', '.join(diff)}); "
                "use a new run folder"
            )
    else:
        _write_json(saved, cfg.to_dict())
    runner = _Runner(cfg, run_dir, backend, progress, should_stop)
    started = time.time()
    status = "completed"
    try:
        for stage in STAGES:
            state = read_state(run_dir)
            if stage in state["completed"]:
                continue
            t0 = time.time()
            if stage == "inputs":
                info = runner.stage_inputs()
            elif stage == "outputs":
                info = runner.stage_outputs()
            elif stage == "train":
                info = runner.stage_train(resume=True)
            else:
                info = runner.stage_eval(stage)
            info["seconds"] = round(time.time() - t0, 2)
            _mark_done(run_dir, stage, info)
    except Stopped:
        status = "stopped"
    finally:
        runner.release_backend()
    result = {
        "status": status,
        "run_dir": str(run_dir),
        "task": cfg.task,
        "completed": read_state(run_dir)["completed"],
        "seconds": round(time.time() - started, 2),
        "funnel": read_funnel(run_dir).get("stages", []),
        "eval": read_eval(run_dir),
    }
    return result


# ----------------------------------------------------------------------------------
# Reading runs back (CLI, studio)


def selfguide_root() -> Path:
    """``<home>/selfguide``: foreground runs (job runs live under ``<home>/runs``)."""
    return paths.home() / "selfguide"


def new_run_id(task: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{task}-{secrets.token_hex(2)}"


def is_run(run_dir: Path | str) -> bool:
    return (Path(run_dir) / "config.json").is_file() and (
        (Path(run_dir) / "state.json").is_file() or (Path(run_dir) / "funnel.json").is_file()
    )


def list_runs() -> list[dict[str, Any]]:
    """Every SELF-GUIDE run (foreground and job runs), newest first."""
    found: list[Path] = []
    if selfguide_root().is_dir():
        found += [d for d in selfguide_root().iterdir() if d.is_dir()]
    if jobs.runs_root().is_dir():
        for d in jobs.runs_root().iterdir():
            job = d / "job.json"
            if job.is_file():
                try:
                    if json.loads(job.read_text()).get("kind") == "selfguide":
                        found.append(d)
                except json.JSONDecodeError:
                    continue
    out = []
    for d in found:
        if not is_run(d):
            continue
        cfg = json.loads((d / "config.json").read_text())
        out.append(
            {
                "run_id": d.name,
                "run_dir": str(d),
                "task": cfg.get("task"),
                "completed": read_state(d)["completed"],
                "modified": (d / "config.json").stat().st_mtime,
            }
        )
    return sorted(out, key=lambda r: r["modified"], reverse=True)


def find_run(run: str) -> Path:
    """A run folder from a run id (foreground or job) or a path."""
    p = Path(run).expanduser()
    if is_run(p):
        return p.resolve()
    for candidate in (selfguide_root() / run, jobs.runs_root() / run):
        if is_run(candidate):
            return candidate
    raise BadInput(f"no SELF-GUIDE run {run!r} (see: cookbook selfguide list)")


def summary(run_dir: Path | str) -> dict[str, Any]:
    """What a run holds: config, completed stages, funnel, evaluation, counts."""
    run_dir = Path(run_dir)
    return {
        "run_dir": str(run_dir),
        "config": json.loads((run_dir / "config.json").read_text()),
        "state": read_state(run_dir),
        "funnel": read_funnel(run_dir),
        "eval": read_eval(run_dir),
        "pairs": len(read_jsonl(run_dir / "pairs.jsonl")),
        "dataset": str(run_dir / "dataset") if (run_dir / "dataset").is_dir() else None,
    }


# ----------------------------------------------------------------------------------
# The ``selfguide`` job kind


def validate_job(config: dict[str, Any]) -> dict[str, Any]:
    """Job validator: the config checked and completed (``BadInput`` on error)."""
    return validate(config_from_dict(config)).to_dict()


def run_job(ctx: Any) -> dict[str, Any]:
    """Job runner: the pipeline in the job's run folder, with progress per stage."""
    cfg = config_from_dict(ctx.config)

    def progress(stage: str, done: int, total: int, **info: Any) -> None:
        ctx.progress(
            done,
            total,
            stage=stage,
            stage_index=STAGES.index(stage) + 1,
            stages=len(STAGES),
            **{"unit": stage, **info},
        )

    return run(cfg, ctx.run_dir, progress=progress, should_stop=ctx.cancelled)
