"""Benchmark: our evaluator vs lm-evaluation-harness, same model, same rows, same tasks.

Usage::

    python benchmarks/eval_vs_lm_eval.py [--limit 50] [--tasks arc_easy,piqa]
        [--data-dir ../shared/data] [--lm-eval-batch-size 16] [--batch-tokens N]
        [--threads N]

Needs ``lm-eval`` in the environment (a dev/benchmark dependency; measured with
``lm-eval[hf]==0.4.13``).  For each task (default: arc_easy, arc_challenge,
hellaswag, piqa, boolq, winogrande, openbookqa) lm-eval is pointed at the same
``<data-dir>/<set>/public_500.jsonl`` rows through a local-file task config
(``dataset_path: json``) written with lm-eval's own prompt conventions for that
task (see :func:`lm_eval_task_config`) and run with ``--limit`` (the first N rows,
as ours).  Both use the embedded SmolLM2-135M-Instruct (fp32, CPU), loaded once
each before timing; tasks alternate which of the two runs first, to spread the
noise of a shared machine.

Reported per task: acc and acc_norm of both and their difference (required: within
0.5 points), the per-example agreement of the chosen answers (acc and acc_norm
predictions), examples/s of both and the speed ratio ours/lm-eval (target >= 1.5).
The process exits with code 1 when a task misses the 0.5-point parity requirement.
A JSON report goes to ``--report`` (default ``<home>/cache/bench/eval_vs_lm_eval.json``).

``--end-to-end`` measures what a user waits for instead: per task, ``cookbook eval``
and ``lm-eval run`` each as a fresh process (interpreter, imports, model load, the rows,
writing results), alternating which goes first, under each of ``--conditions``:
``quiet`` (nothing else running) and ``job`` (a LoRA training job of the embedded model
runs in the background the whole time, as in the studio).  Reported: seconds of both,
the ratio lm-eval/ours (target >= 2x on every task) and the accuracy of both (equal
to 0.5 points, or the run exits 1).  Printed first: each side's matmul FLOPs over the
rows (:func:`flop_counts`), whose ratio bounds the speed-up once start-up is amortized.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_TASKS = (
    "arc_easy",
    "arc_challenge",
    "hellaswag",
    "piqa",
    "boolq",
    "winogrande",
    "openbookqa",
)
PARITY_POINTS = 0.5
SPEED_TARGET = 1.5


def lm_eval_task_config(task: str, data_file: Path) -> dict[str, Any]:
    """An lm-eval task config reading our normalized rows with lm-eval's prompts for ``task``."""
    base: dict[str, Any] = {
        "task": f"cookbook_{task}",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0},
    }
    if task in ("arc_easy", "arc_challenge", "piqa"):  # arc_easy.yaml, piqa.yaml
        base.update(
            doc_to_text="Question: {{question}}\nAnswer:",
            doc_to_target="{{answer_index}}",
            doc_to_choice="{{choices}}",
        )
    elif task in ("hellaswag", "openbookqa"):  # query already preprocessed / question_stem
        base.update(
            doc_to_text="{{question}}",
            doc_to_target="{{answer_index}}",
            doc_to_choice="{{choices}}",
        )
    elif task == "boolq":  # super_glue/boolq/default.yaml
        base.update(
            doc_to_text="{{context}}\nQuestion: {{question}}?\nAnswer:",
            doc_to_target="{{ 1 if answer == 'yes' else 0 }}",
            doc_to_choice=["no", "yes"],
        )
        base["metric_list"] = base["metric_list"][:1]
    elif task == "winogrande":  # winogrande/default.yaml (partial scoring)
        base.update(
            doc_to_text="{{answer_index}}",
            doc_to_target="{{continuation}}",
            doc_to_choice="{{context_options}}",
        )
        base["metric_list"] = base["metric_list"][:1]
    else:
        raise SystemExit(f"no lm-eval config for task {task}")
    return base


def run_lm_eval(lm: Any, task: str, data_file: Path, limit: int, tmp: Path) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    folder = tmp / f"lm_eval_{task}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"cookbook_{task}.yaml").write_text(
        json.dumps(lm_eval_task_config(task, data_file), indent=2)
    )
    tm = TaskManager(include_path=str(folder), include_defaults=False)
    t0 = time.perf_counter()
    res = simple_evaluate(
        model=lm,
        tasks=[f"cookbook_{task}"],
        limit=limit,
        task_manager=tm,
        bootstrap_iters=0,
        log_samples=True,
        verbosity="ERROR",
    )
    seconds = time.perf_counter() - t0
    assert res is not None
    metrics = res["results"][f"cookbook_{task}"]
    samples = sorted(res["samples"][f"cookbook_{task}"], key=lambda s: s["doc_id"])
    return {
        "seconds": seconds,
        "acc": metrics.get("acc,none"),
        "acc_norm": metrics.get("acc_norm,none"),
        "lls": [[float(r[0]) for r in s["filtered_resps"]] for s in samples],
        "n": len(samples),
    }


def run_ours(backend: Any, task: str, data_dir: Path, limit: int, tmp: Path) -> dict[str, Any]:
    from cookbook_core.eval import evaluation

    cfg = evaluation.EvalConfig(tasks=[task], data_dir=str(data_dir), limit=limit)
    t0 = time.perf_counter()
    summary = evaluation.evaluate(cfg, tmp / f"ours_{task}", backend=backend)
    seconds = time.perf_counter() - t0
    s = summary["tasks"][task]
    records = evaluation.read_records(tmp / f"ours_{task}", task)
    return {
        "seconds": seconds,
        "acc": s["metrics"]["acc"]["value"],
        "acc_norm": s["metrics"].get("acc_norm", {}).get("value"),
        "lls": [r["loglikelihoods"] for r in records],
        "records": records,
        "n": len(records),
    }


def compare(task: str, ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Per-example agreement of the chosen answers (and the raw log-likelihood gap)."""
    from cookbook_core.eval import scoring, tasks

    t = tasks.get(task)
    n = min(ours["n"], theirs["n"])
    agree = agree_norm = 0
    max_gap = 0.0
    lm_lls = theirs["lls"]
    for i in range(n):
        rec = ours["records"][i]
        our_lls = ours["lls"][i]
        their = lm_lls[i]
        doc_choices = _choices(t, rec)
        a1, n1 = scoring.mc_predictions(our_lls, doc_choices)
        a2, n2 = scoring.mc_predictions(their, doc_choices)
        agree += a1 == a2
        agree_norm += n1 == n2
        max_gap = max(max_gap, max(abs(x - y) for x, y in zip(our_lls, their, strict=True)))
    return {
        "agreement_acc": agree / n if n else None,
        "agreement_acc_norm": agree_norm / n if n else None,
        "max_loglik_gap": max_gap,
    }


def _choices(task: Any, rec: dict[str, Any]) -> list[str]:
    if task.name == "winogrande":
        return list(rec["prompt"]) if isinstance(rec["prompt"], list) else [rec["prompt"]] * 2
    return [c[1:] if c.startswith(" ") else c for c in rec["continuations"]]


# ----------------------------------------------------------------------------------
# End to end: both command lines as fresh processes, quiet and beside a training job

E2E_TARGET = 2.0


def _timed(argv: list[str], env: dict[str, str], log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as fh:
        rc = subprocess.run(argv, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"{argv[0]} ... failed ({rc}); log: {log}")
    return seconds


def ours_cli(task: str, data_dir: Path, limit: int, out: Path, env: dict[str, str]) -> dict:
    cookbook = str(Path(sys.executable).with_name("cookbook"))
    argv = [cookbook, "eval", "--task", task, "--limit", str(limit), "--data-dir", str(data_dir)]
    argv += ["--backend", "transformers", "--out", str(out), "--quiet"]
    seconds = _timed(argv, env, out.with_suffix(".log"))
    summary = json.loads((out / "summary.json").read_text())["tasks"][task]["metrics"]
    return {
        "seconds": seconds,
        "acc": summary["acc"]["value"],
        "acc_norm": summary.get("acc_norm", {}).get("value"),
    }


def lm_eval_cli(
    task: str, data_file: Path, limit: int, folder: Path, model: Path, batch: int, env: dict
) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"cookbook_{task}.yaml").write_text(
        json.dumps(lm_eval_task_config(task, data_file), indent=2)
    )
    argv = [sys.executable, "-m", "lm_eval", "run", "--model", "hf"]
    argv += ["--model_args", f"pretrained={model}", "dtype=float32", "--device", "cpu"]
    argv += ["--tasks", f"cookbook_{task}", "--include_path", str(folder), "--limit", str(limit)]
    argv += ["--batch_size", str(batch), "--output_path", str(folder / "out"), "-v", "ERROR"]
    seconds = _timed(argv, env, folder / "run.log")
    (found,) = sorted((folder / "out").rglob("results_*.json"))[-1:]
    metrics = json.loads(found.read_text())["results"][f"cookbook_{task}"]
    return {
        "seconds": seconds,
        "acc": metrics.get("acc,none"),
        "acc_norm": metrics.get("acc_norm,none"),
    }


def flop_counts(names: list[str], data_dir: Path, limit: int, model_dir: Path) -> dict:
    """Per task, the matmul FLOPs of each side's forward passes over the rows.

    Ours: each packed unit (a context once, then every choice's own tokens) through the
    linear layers, the LM head only at scored tokens.  lm-eval 0.4: every distinct model
    input (its logits cache merges requests with identical inputs, such as one-token
    answers after one context) through the linear layers, the LM head at every position.
    Attention and padding are left out of both.  At equal matmul speed, lm-eval's
    FLOPs / ours is the most our speed-up can be once start-up no longer counts.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from cookbook_core.eval import tasks
    from cookbook_core.eval.backends import packing
    from cookbook_core.train import models

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    linear = [m for m in model.get_decoder().modules() if isinstance(m, torch.nn.Linear)]
    body = 2 * sum(m.weight.numel() for m in linear)
    head = 2 * model.get_output_embeddings().weight.numel()
    tok = models.load_tokenizer(str(model_dir))
    out = {}
    for name in names:
        task = tasks.get(name)
        rows = tasks.load(task, data_dir, limit=limit).rows
        groups = [task.loglik_requests(row)[1] for row in rows]
        reqs = packing.make_requests(tok, groups, 10**9)
        units = packing.make_units(reqs)
        ours = sum(body * u.length + head * sum(len(r.targets) for r in u.reqs) for u in units)
        distinct = {tuple(r.inp) for g in reqs for r in g}
        theirs = sum((body + head) * len(inp) for inp in distinct)
        out[name] = {"ours_gflop": ours / 1e9, "lm_eval_gflop": theirs / 1e9}
    return out


def start_training_job(tmp: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A long LoRA training of the embedded model in the background (its own process)."""
    cookbook = str(Path(sys.executable).with_name("cookbook"))
    data = tmp / "job_data"
    gen = [cookbook, "generate", "-t", "document_qa", "-n", "400", "--out", str(data)]
    subprocess.run(gen, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    argv = [cookbook, "train", "--data", str(data), "--steps", "100000", "--batch-size", "4"]
    log = (tmp / "job.log").open("w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(20)  # past model loading: the job is training when the first run starts
    if proc.poll() is not None:
        raise SystemExit(f"the background training job ended early; log: {tmp / 'job.log'}")
    return proc


def end_to_end(args: argparse.Namespace, names: list[str], data_dir: Path) -> int:
    from cookbook_core.eval import tasks

    rows: list[dict[str, Any]] = []
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="eval_e2e_") as tmp_s:
        tmp = Path(tmp_s)
        env = {
            **os.environ,
            "COOKBOOK_HOME": str(tmp / "home"),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
        }
        # the model is converted once, before any timing, in the workspace both sides use
        conv = "from cookbook_core.train import models; print(models.ensure_embedded())"
        done = subprocess.run([sys.executable, "-c", conv], env=env, capture_output=True, text=True)
        model = Path(done.stdout.strip().splitlines()[-1])
        flops = flop_counts(names, data_dir, args.limit, model)
        for name, f in flops.items():
            print(
                f"{name:<14} matmul GFLOP: ours {f['ours_gflop']:.0f}, lm-eval "
                f"{f['lm_eval_gflop']:.0f} (compute bound on lm-eval/ours: "
                f"{f['lm_eval_gflop'] / f['ours_gflop']:.2f}x)",
                flush=True,
            )
        for cond in conditions:
            job = start_training_job(tmp / f"job_{cond}", env) if cond == "job" else None
            try:
                for k, name in enumerate(names):
                    data_file = data_dir / tasks.get(name).folder / "public_500.jsonl"
                    where = tmp / cond / name
                    where.mkdir(parents=True)
                    runs = {
                        "ours": lambda n=name, w=where: ours_cli(
                            n, data_dir, args.limit, w / "ours", env
                        ),
                        "lm": lambda n=name, f=data_file, w=where: lm_eval_cli(
                            n, f, args.limit, w / "lm", model, args.lm_eval_batch_size, env
                        ),
                    }
                    order = ["ours", "lm"] if k % 2 == 0 else ["lm", "ours"]
                    got = {side: runs[side]() for side in order}
                    rows.append(_e2e_row(cond, name, got["ours"], got["lm"]) | flops[name])
            finally:
                if job is not None:
                    job.terminate()
                    job.wait(timeout=60)
    for cond in conditions:
        sel = [r for r in rows if r["condition"] == cond]
        total = sum(r["lm_eval_s"] for r in sel) / sum(r["ours_s"] for r in sel)
        worst = min(sel, key=lambda r: r["ratio"])
        verdict = "met" if worst["ratio"] >= E2E_TARGET else "missed"
        print(
            f"{cond}: all tasks lm-eval/ours {total:.2f}x; worst {worst['task']} "
            f"{worst['ratio']:.2f}x (target >= {E2E_TARGET}x on every task: {verdict})"
        )
    parity = all(r["acc_diff_points"] <= PARITY_POINTS for r in rows)
    report = Path(args.report) if args.report else Path(tempfile.gettempdir()) / "eval_e2e.json"
    report.write_text(json.dumps({"config": vars(args), "rows": rows}, indent=2))
    print(f"accuracy parity {'OK' if parity else 'FAILED'}; report: {report}")
    return 0 if parity else 1


def _e2e_row(cond: str, task: str, ours: dict, theirs: dict) -> dict[str, Any]:
    row = {
        "condition": cond,
        "task": task,
        "ours_s": ours["seconds"],
        "lm_eval_s": theirs["seconds"],
        "ratio": theirs["seconds"] / ours["seconds"],
        "ours_acc": ours["acc"],
        "lm_eval_acc": theirs["acc"],
        "acc_diff_points": abs(ours["acc"] - theirs["acc"]) * 100,
        "load_1min": os.getloadavg()[0],
    }
    print(
        f"{cond:<6} {task:<14} ours {row['ours_s']:6.1f} s | lm-eval {row['lm_eval_s']:6.1f} s "
        f"| lm-eval/ours {row['ratio']:.2f}x | acc {row['ours_acc']:.3f} vs "
        f"{row['lm_eval_acc']:.3f} | load {row['load_1min']:.1f}",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--lm-eval-batch-size", type=int, default=16)
    ap.add_argument("--batch-tokens", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for both")
    ap.add_argument("--report", default=None)
    ap.add_argument(
        "--end-to-end",
        action="store_true",
        help="time both command lines as fresh processes (start-up included)",
    )
    ap.add_argument(
        "--conditions",
        default="quiet,job",
        help="with --end-to-end: quiet, job (beside a background training job), or both",
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    from cookbook_core import paths
    from cookbook_core.eval import inference, tasks
    from cookbook_core.train import models

    data_dir = Path(args.data_dir).resolve()
    names = [n.strip() for n in args.tasks.split(",") if n.strip()]
    for n in names:
        tasks.get(n)
    if args.end_to_end:
        return end_to_end(args, names, data_dir)
    os.environ.setdefault("HF_DATASETS_CACHE", str(paths.cache_dir("bench", "hf_datasets")))
    try:
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        print("lm-eval is not installed: pip install 'lm-eval[hf]==0.4.13'", file=sys.stderr)
        return 2
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = models.ensure_embedded()
    model, tok = models.load("default")
    backend = inference.TransformersBackend(model, tok, batch_tokens=args.batch_tokens)
    lm = HFLM(
        pretrained=str(folder),
        dtype="float32",
        device="cpu",
        batch_size=args.lm_eval_batch_size,
    )
    print(
        f"model {folder} | torch threads {torch.get_num_threads()} | limit {args.limit} | "
        f"lm-eval batch size {args.lm_eval_batch_size} | our batch tokens {backend.batch_tokens}, "
        f"rows {backend.max_batch}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="eval_bench_") as tmp_s:
        tmp = Path(tmp_s)
        for k, name in enumerate(names):
            task = tasks.get(name)
            data_file = data_dir / task.folder / "public_500.jsonl"
            if k % 2 == 0:
                ours = run_ours(backend, name, data_dir, args.limit, tmp)
                theirs = run_lm_eval(lm, name, data_file, args.limit, tmp)
            else:
                theirs = run_lm_eval(lm, name, data_file, args.limit, tmp)
                ours = run_ours(backend, name, data_dir, args.limit, tmp)
            cmp = compare(name, ours, theirs)
            row = {
                "task": name,
                "n": ours["n"],
                "ours_acc": ours["acc"],
                "lm_eval_acc": theirs["acc"],
                "ours_acc_norm": ours["acc_norm"],
                "lm_eval_acc_norm": theirs["acc_norm"] if ours["acc_norm"] is not None else None,
                "ours_s": ours["seconds"],
                "lm_eval_s": theirs["seconds"],
                "ours_ex_per_s": ours["n"] / ours["seconds"],
                "lm_eval_ex_per_s": theirs["n"] / theirs["seconds"],
                **cmp,
            }
            row["speed_ratio"] = row["ours_ex_per_s"] / row["lm_eval_ex_per_s"]
            diffs = [abs(row["ours_acc"] - row["lm_eval_acc"]) * 100]
            if row["ours_acc_norm"] is not None and row["lm_eval_acc_norm"] is not None:
                diffs.append(abs(row["ours_acc_norm"] - row["lm_eval_acc_norm"]) * 100)
            row["max_diff_points"] = max(diffs)
            row["parity_ok"] = row["max_diff_points"] <= PARITY_POINTS
            rows.append(row)
            _print_row(row)
    tot_n = sum(r["n"] for r in rows)
    ours_s = sum(r["ours_s"] for r in rows)
    lm_s = sum(r["lm_eval_s"] for r in rows)
    agree = sum(r["agreement_acc"] * r["n"] for r in rows) / tot_n
    agree_norm_rows = [r for r in rows if r["lm_eval_acc_norm"] is not None]
    agree_norm = sum(r["agreement_acc_norm"] * r["n"] for r in agree_norm_rows) / max(
        1, sum(r["n"] for r in agree_norm_rows)
    )
    overall = {
        "examples": tot_n,
        "ours_s": ours_s,
        "lm_eval_s": lm_s,
        "speed_ratio": (tot_n / ours_s) / (tot_n / lm_s),
        "agreement_acc": agree,
        "agreement_acc_norm": agree_norm,
        "parity_ok": all(r["parity_ok"] for r in rows),
    }
    print(
        f"\nALL {tot_n} examples: ours {tot_n / ours_s:.2f} ex/s, lm-eval {tot_n / lm_s:.2f} ex/s, "
        f"speed ratio {overall['speed_ratio']:.2f}x (target >= {SPEED_TARGET}x); "
        f"agreement acc {agree:.1%}, acc_norm {agree_norm:.1%}; parity "
        f"{'OK' if overall['parity_ok'] else 'FAILED'} (every task within {PARITY_POINTS} points)"
    )
    report = Path(args.report) if args.report else paths.cache_dir("bench") / "eval_vs_lm_eval.json"
    report.write_text(
        json.dumps(
            {
                "config": vars(args),
                "lm_eval_version": _version("lm-eval"),
                "tasks": rows,
                "overall": overall,
            },
            indent=2,
        )
    )
    print(f"report: {report}")
    return 0 if overall["parity_ok"] else 1


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _print_row(r: dict[str, Any]) -> None:
    norm = (
        f"acc_norm {r['ours_acc_norm']:.4f} vs {r['lm_eval_acc_norm']:.4f}"
        if r["lm_eval_acc_norm"] is not None
        else "acc_norm -"
    )
    print(
        f"{r['task']:<14} n={r['n']:<4} acc {r['ours_acc']:.4f} vs {r['lm_eval_acc']:.4f} | {norm} | "
        f"agree {r['agreement_acc']:.1%}/{r['agreement_acc_norm']:.1%} | max ll gap "
        f"{r['max_loglik_gap']:.2e} | {r['ours_ex_per_s']:.2f} vs {r['lm_eval_ex_per_s']:.2f} ex/s "
        f"= {r['speed_ratio']:.2f}x | {'OK' if r['parity_ok'] else 'PARITY FAIL'}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
