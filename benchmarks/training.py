"""Benchmark: our trainer vs a plain TRL ``SFTTrainer`` on the same model, data and steps.

Usage: ``python benchmarks/training.py [--steps 10] [--batch-size 8] [--n 400]
[--seeds 0,1,2] [--repeats 1] [--contenders trl,ours]``.

Every run trains one contender in its own child process (so each one's peak memory
is its own) on the embedded SmolLM2-135M-Instruct with the same LoRA (r, alpha,
dropout, target modules), learning rate and schedule (linear, no warmup, no weight
decay: TrainingArguments' defaults on both sides), batch size, seed, steps and
training rows (a mixture of templates, so lengths vary).  With the same seed both
sides see the same batches in the same order and start from the same LoRA weights
(our sampler uses the permutation of transformers' default sampler; both seed
before PEFT initializes the adapter), and both average the loss over the batch's
completion tokens, so their losses are directly comparable.  Contenders:

* ``ours``: :func:`cookbook_core.train.training.train` with its defaults (LM head only on
  completion positions, no gradient checkpointing).
* ``trl``: ``SFTTrainer`` with TRL's defaults (prompt/completion in conversational
  form, completion-only loss, gradient checkpointing on as TRL ships it); only the
  precision is matched to ours (fp32 on CPU, bf16 on CUDA) so the losses compare.
  TRL's chat formatting also trains the ``\n`` after ``<|im_end|>`` (one more
  completion token per row, counted in its tokens).
* ``trl-nogc``: the same with gradient checkpointing off; ``ours-grouped``: ours with
  length-grouped batches across the dataset (a different data order);
  ``ours-split``: ours with each batch run as 4 length-sorted pieces.

Runs alternate which contender goes first for each (seed, repeat), so a load change
on a shared machine does not always hit the same side.  Reported per contender
(medians over runs): tokens/s (non-padding tokens processed per second of
``train()``), tokens per CPU-second (CPU time of the whole child: model load,
tokenization and training, the same for both; steadier than wall time on a shared
machine, above all with ``--threads 1``, where no thread spins waiting for another),
samples/s, peak memory (CPU: max RSS of the child; CUDA: max allocated), the mean
training loss and the completion-only loss on held-out rows after training ("at
the same loss"); then ours/baseline ratios as the median over paired runs (same
seed and repeat) and the held-out loss differences.  They are measurements, not a
pass or fail.  Requires ``trl`` (``requirements-bench.txt``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEMPLATES = [
    ("document_qa", {}),
    ("yes_no_qa", {}),
    ("last_word", {}),
    ("multiple_choice_qa", {}),
    ("retrieval", {}),
]
HELD_OUT = 48


def make_data(folder: Path, n: int, seed: int) -> tuple[Path, Path]:
    """A mixed dataset, split into train.jsonl and heldout.jsonl (the last rows)."""
    from cookbook_core import dataset_io
    from cookbook_core.generate import GenerateConfig, Source, generate

    ds = folder / f"mix-n{n}-s{seed}"
    if not ds.exists():
        generate(GenerateConfig([Source(t, 1.0, p) for t, p in TEMPLATES], n=n, seed=seed), ds)
    rows = [
        {"prompt": r["prompt"], "completion": r["completion"]} for r in dataset_io.iter_rows(ds)
    ]
    train, held = folder / "train.jsonl", folder / "heldout.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:-HELD_OUT]))
    held.write_text("".join(json.dumps(r) + "\n" for r in rows[-HELD_OUT:]))
    return train, held


def heldout_loss(model: Any, tok: Any, path: Path) -> float:
    """Mean completion-token loss (our formatting) on held-out rows, batch of 8."""
    import torch

    from cookbook_core.train import training

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    feats = [training.encode_example(tok, r["prompt"], r["completion"], 1024) for r in rows]
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(feats), 8):
            batch = {
                k: v.to(device)
                for k, v in training.collate(feats[i : i + 8], tok.pad_token_id).items()
            }
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
    return total / count


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_mem_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(which: str, spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    import peft  # noqa: F401  (imports outside the measured CPU time, on both sides)
    import transformers  # noqa: F401

    if which.startswith("trl"):
        import datasets  # noqa: F401
        import trl  # noqa: F401

    from cookbook_core.train import models, training

    lora = dict(
        r=spec["lora_r"],
        lora_alpha=2 * spec["lora_r"],
        lora_dropout=0.05,
        target_modules=list(training.DEFAULT_TARGET_MODULES),
    )
    train_path, held_path = Path(spec["train"]), Path(spec["held"])
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        cpu0 = _cpu_s()
        if which.startswith("ours"):
            cfg = training.TrainConfig(
                group_by_length=which == "ours-grouped",
                micro_batches=4 if which == "ours-split" else 1,
                data=str(train_path),
                steps=spec["steps"],
                batch_size=spec["batch_size"],
                lr=spec["lr"],
                lora_r=lora["r"],
                lora_alpha=lora["lora_alpha"],
                lora_dropout=lora["lora_dropout"],
                seed=spec["seed"],
                save_every=10**9,
                max_length=1024,
            )
            res = training.train(cfg, tmp)
            cpu = _cpu_s() - cpu0
            seconds = res["seconds"]
            metrics = training.read_metrics(tmp)
            tokens = metrics[-1]["tokens"]
            losses = [m["loss"] for m in metrics]
            peak = _peak_mem_mb()
            model, tok = training.load_trained(tmp)
        else:
            import datasets
            from peft import LoraConfig
            from trl import SFTConfig, SFTTrainer

            model, tok = models.load("default")
            rows = [json.loads(line) for line in train_path.read_text().splitlines()]
            ds = datasets.Dataset.from_list(
                [
                    {
                        "prompt": [{"role": "user", "content": r["prompt"]}],
                        "completion": [{"role": "assistant", "content": r["completion"]}],
                    }
                    for r in rows
                ]
            )
            extra = {"gradient_checkpointing": False} if which == "trl-nogc" else {}
            args = SFTConfig(
                output_dir=tmp,
                max_steps=spec["steps"],
                per_device_train_batch_size=spec["batch_size"],
                learning_rate=spec["lr"],
                seed=spec["seed"],
                logging_steps=1,
                save_strategy="no",
                report_to="none",
                bf16=cuda and torch.cuda.is_bf16_supported(),
                use_cpu=not cuda,
                disable_tqdm=True,
                **extra,
            )
            trainer = SFTTrainer(
                model=model,
                args=args,
                train_dataset=ds,
                processing_class=tok,
                peft_config=LoraConfig(task_type="CAUSAL_LM", **lora),
            )
            started = time.time()
            trainer.train()
            # CPU time from the child's start, like ours: load + tokenize + train
            seconds, cpu = time.time() - started, _cpu_s() - cpu0
            logs = [h for h in trainer.state.log_history if "loss" in h]
            tokens = logs[-1]["num_tokens"]
            losses = [h["loss"] for h in logs]
            peak = _peak_mem_mb()
            model = trainer.model
        held = heldout_loss(model, tok, held_path)
    samples = spec["steps"] * spec["batch_size"]
    return {
        "which": which,
        "seconds": round(seconds, 2),
        "tokens": int(tokens),
        "tokens_per_s": round(tokens / seconds, 1),
        "cpu_s": round(cpu, 1),
        "tokens_per_cpu_s": round(tokens / cpu, 1),
        "samples_per_s": round(samples / seconds, 3),
        "peak_mem_mb": round(peak, 1),
        "train_loss_mean": round(sum(losses) / len(losses), 4),
        "train_losses": [round(x, 4) for x in losses],
        "heldout_loss": round(held, 4),
        "device": "cuda" if cuda else "cpu",
    }


def _run_child(which: str, spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", which, "--spec", json.dumps(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{which} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len("RESULT ") :])


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarize(runs: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """A table of per-contender medians and the ours/baseline ratios of paired runs.

    Each ratio is taken between two runs of the same (seed, repeat), which ran next
    to each other in time, and the median over those pairs is reported.
    """
    names = list(dict.fromkeys(r["which"] for r in runs))
    lines = [
        f"{'trainer':<13} {'runs':>4} {'tokens/s':>9} {'tok/CPU-s':>10} {'samples/s':>10} "
        f"{'peak MB':>8} {'train loss':>11} {'held-out loss':>14}"
    ]
    for name in names:
        rs = [r for r in runs if r["which"] == name]
        lines.append(
            f"{name:<13} {len(rs):>4} {_median([r['tokens_per_s'] for r in rs]):>9.1f} "
            f"{_median([r['tokens_per_cpu_s'] for r in rs]):>10.1f} "
            f"{_median([r['samples_per_s'] for r in rs]):>10.3f} "
            f"{_median([r['peak_mem_mb'] for r in rs]):>8.0f} "
            f"{_median([r['train_loss_mean'] for r in rs]):>11.4f} "
            f"{_median([r['heldout_loss'] for r in rs]):>14.4f}"
        )
    ratios = []
    key = lambda r: (r["seed"], r["repeat"])  # noqa: E731
    for name in [n for n in names if n.startswith("ours")]:
        for base in [n for n in names if n.startswith("trl")]:
            b_by = {key(r): r for r in runs if r["which"] == base}
            pairs = [(r, b_by[key(r)]) for r in runs if r["which"] == name and key(r) in b_by]
            if not pairs:
                continue

            def med(field: str, pairs: list[Any] = pairs) -> float:
                return _median([o[field] / b[field] for o, b in pairs])

            dloss = [o["heldout_loss"] - b["heldout_loss"] for o, b in pairs]
            ratios.append(
                f"{name} / {base} (median of {len(pairs)} paired runs): "
                f"tokens/s x{med('tokens_per_s'):.2f}, "
                f"tokens per CPU-second x{med('tokens_per_cpu_s'):.2f}, "
                f"samples/s x{med('samples_per_s'):.2f}, "
                f"peak memory x{med('peak_mem_mb'):.2f}; held-out loss difference "
                f"median {_median(dloss):+.4f} (range {min(dloss):+.4f} to {max(dloss):+.4f})"
            )
    return "\n".join(lines), ratios


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--n", type=int, default=400, help="rows generated (the last 48 held out)")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds (data order)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of every (contender, seed)")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per run (1 keeps CPU time honest on a loaded machine)",
    )
    ap.add_argument(
        "--contenders",
        default="trl,ours",
        help="comma-separated, from trl, ours, trl-nogc, ours-grouped, ours-split",
    )
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, json.loads(args.spec))), flush=True)
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from cookbook_core import paths
    from cookbook_core.train import models

    models.ensure_embedded()
    folder = paths.cache_dir("bench", "training")
    train, held = make_data(folder, args.n, 0)
    contenders = args.contenders.split(",")
    seeds = [int(x) for x in args.seeds.split(",")]
    runs: list[dict[str, Any]] = []
    slot = 0
    for repeat in range(args.repeats):
        for seed in seeds:
            spec = {
                "train": str(train),
                "held": str(held),
                "steps": args.steps,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "lora_r": args.lora_r,
                "seed": seed,
                "threads": args.threads,
            }
            # Alternate which contender goes first, so a load change on the shared
            # machine does not always land on the same side.
            order = contenders if slot % 2 == 0 else contenders[::-1]
            slot += 1
            for which in order:
                print(
                    f"running {which} seed {seed} repeat {repeat} ...", file=sys.stderr, flush=True
                )
                res = {**_run_child(which, spec), "seed": seed, "repeat": repeat}
                res["load_avg_1m"] = round(os.getloadavg()[0], 2)
                runs.append(res)
                print(json.dumps(res), file=sys.stderr, flush=True)

    table, ratios = summarize(runs)
    print("\n" + table)
    for line in ratios:
        print(line)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "runs": runs, "ratios": ratios}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
