"""CLI subcommands ``cookbook selfguide ...``: run SELF-GUIDE on a task and inspect runs.

``selfguide tasks`` lists the Super-NaturalInstructions pack; ``selfguide run``
runs the pipeline in the foreground (``<home>/selfguide/<run id>/``, or ``--out``;
running again on the same folder continues after the last completed stage), or as
a ``selfguide`` job with ``--job`` (followed) / ``--background`` (prints the job id);
``selfguide show RUN`` prints a run's funnel (the drop-reason table) and the
baseline vs fine-tuned metrics; ``selfguide list`` lists runs.  Bad input (unknown
task, task without demonstrations or labels, bad numbers) exits with code 2 before
the model loads; a vote that keeps nothing exits with code 1 and prints the funnel.
This module only parses arguments and prints; the work is in ``selfguide``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def _config(args: argparse.Namespace) -> Any:
    from cookbook_core.selfguide.pipeline import SelfGuideConfig

    return SelfGuideConfig(
        task=args.task,
        data_dir=args.data_dir,
        model=args.model,
        backend=args.backend,
        n_inputs=args.n_inputs,
        round_size=args.round_size,
        input_temperature=args.input_temperature,
        input_top_k=args.input_top_k,
        input_length_filter=args.input_length_filter,
        n_outputs=args.n_outputs,
        output_temperature=args.output_temperature,
        output_top_k=args.output_top_k,
        output_length_filter=args.output_length_filter,
        min_share=args.min_share,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        eval_split=args.eval_split,
        eval_limit=args.eval_limit,
        seed=args.seed,
    )


def print_eval(ev: dict[str, Any]) -> None:
    """Baseline vs fine-tuned, one line per metric."""
    if not ev:
        print("no evaluation yet")
        return
    print(f"evaluation on {ev.get('n')} {ev.get('split')} rows:")
    metrics = list((ev.get("baseline") or ev.get("finetuned") or {}).keys())
    for m in metrics:
        cells = []
        for which in ("baseline", "finetuned"):
            v = (ev.get(which) or {}).get(m)
            if v is None:
                cells.append(f"{which} -")
                continue
            lo, hi = v["ci95"]
            ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
            cells.append(f"{which} {v['value']:.4f}{ci}")
        print(f"  {m:<14} " + "   ".join(cells))


def cmd_tasks(args: argparse.Namespace) -> int:
    from cookbook_core.selfguide import tasks as selfguide_tasks

    for name in selfguide_tasks.list_tasks(args.data_dir):
        t = selfguide_tasks.load_task(name, args.data_dir)
        s = t.summary()
        print(
            f"{s['task']:<9} {s['family']:<15} {s['role']:<9} {s['metric']:<12} "
            f"demos {s['demonstrations']:<3} {s['ni_task']}"
        )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from cookbook_core.selfguide import pipeline as selfguide

    cfg = _config(args)
    if args.job or args.background:
        from cookbook_core.cli.jobs import follow_job
        from cookbook_core.jobs import store as jobs

        job = jobs.submit("selfguide", cfg.to_dict(), name=args.name)
        print(f"job {job.id} ({job.state}); run directory {job.run_dir}", file=sys.stderr)
        if args.background:
            print(job.id)
            return 0
        code = follow_job(job.id)
        run_dir = jobs.get(job.id).run_dir
        if selfguide.is_run(run_dir):
            _show(selfguide.summary(run_dir))
        return code
    if args.out:
        from cookbook_core import storage

        storage.check_output(args.out, folder=True)
    cfg = selfguide.validate(cfg)  # bad input fails here, before the model loads
    out = args.out or str(selfguide.selfguide_root() / selfguide.new_run_id(cfg.task))
    print(f"run folder {out}", file=sys.stderr)
    started = time.time()

    def progress(stage: str, done: int, total: int, **info: Any) -> None:
        if args.quiet:
            return
        extra = f" loss {info['loss']:.4f}" if info.get("loss") is not None else ""
        print(
            f"[{time.time() - started:7.1f}s] {stage:<9} {done}/{total}{extra}",
            file=sys.stderr,
            flush=True,
        )

    try:
        result = selfguide.run(cfg, out, progress=progress)
    except selfguide.EmptyVote as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _show(selfguide.summary(result["run_dir"]))
    return 0 if result["status"] == "completed" else 1


def _show(s: dict[str, Any]) -> None:
    from cookbook_core.selfguide.pipeline import funnel_text

    cfg = s["config"]
    print(f"SELF-GUIDE run {s['run_dir']}")
    print(
        f"task {cfg['task']}  model {cfg['model']}  completed: {', '.join(s['state']['completed'])}"
    )
    print(funnel_text(s["funnel"]))
    if s["dataset"]:
        print(f"kept pairs: {s['pairs']} (dataset {s['dataset']})")
    print_eval(s["eval"])


def cmd_show(args: argparse.Namespace) -> int:
    from cookbook_core.selfguide import pipeline as selfguide

    s = selfguide.summary(selfguide.find_run(args.run))
    if args.json:
        print(json.dumps(s, indent=2, default=str))
        return 0
    _show(s)
    if args.examples:
        recs = selfguide.read_jsonl(s["run_dir"] + "/pairs.jsonl")[: args.examples]
        for r in recs:
            print(f"\n--- input: {r['meta']['input']}\n    output: {r['completion']}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from cookbook_core.selfguide import pipeline as selfguide

    runs = selfguide.list_runs()
    if not runs:
        print("no SELF-GUIDE runs yet (cookbook selfguide run --task TASK)")
    for r in runs:
        print(f"{r['run_id']:<40} {r['task']:<9} {', '.join(r['completed'])}")
    return 0


def _bool_flag(p: argparse.ArgumentParser, name: str, help_text: str) -> None:
    p.add_argument(
        f"--{name}",
        dest=name.replace("-", "_"),
        action=argparse.BooleanOptionalAction,
        default=None,
        help=help_text,
    )


def add_commands(sub: Any) -> None:
    """Register ``cookbook selfguide``."""
    sp = sub.add_parser(
        "selfguide",
        help="SELF-GUIDE: the model writes, labels and filters its own task data, then is "
        "fine-tuned on it",
        description="SELF-GUIDE (arXiv 2407.12874) on a Super-NaturalInstructions task from "
        "../shared/data/natural_instructions. Example: cookbook selfguide run --task task1345 "
        "--n-inputs 24 --steps 8",
    )
    ssub = sp.add_subparsers(dest="selfguide_command", required=True)

    p = ssub.add_parser("tasks", help="list the task pack")
    p.add_argument("--data-dir", help="folder holding natural_instructions/ (default: shared data)")
    p.set_defaults(func=cmd_tasks)

    p = ssub.add_parser(
        "run",
        help="run the pipeline: inputs, outputs + vote, baseline, fine-tune, evaluate",
        description="Stages: inputs (generated in rounds, filtered: empty, length, noise, "
        "duplicate), outputs (n samples per input, majority vote with a minimum share; "
        "classification keeps exact labels and balances classes), baseline (few-shot "
        "prompting on test rows), train (LoRA, completion-only, same prompt as evaluation), "
        "finetuned (evaluation). Defaults are small so a CPU run takes minutes.",
    )
    p.add_argument("--task", "-t", required=True, help="task id, e.g. task1345 (see: tasks)")
    p.add_argument("--data-dir", help="folder holding natural_instructions/ (default: shared data)")
    p.add_argument("--model", default="default", help="model name or folder (default: embedded)")
    p.add_argument(
        "--backend",
        choices=["auto", "transformers", "served"],
        default="auto",
        help="served: a running `cookbook serve` server (default auto: served when one runs)",
    )
    g = p.add_argument_group("input generation")
    g.add_argument("--n-inputs", type=int, default=24, help="raw inputs to generate (default 24)")
    g.add_argument("--round-size", type=int, default=8, help="prompts per round (default 8)")
    g.add_argument(
        "--input-temperature",
        type=float,
        help="sampling temperature (default: 0.7 classification, 0.9 generation)",
    )
    g.add_argument("--input-top-k", type=int, default=40, help="top-k (default 40; 0: off)")
    _bool_flag(
        g,
        "input-length-filter",
        "drop inputs outside mean ± 2 std of the demonstration inputs' lengths "
        "(default: on for classification)",
    )
    g = p.add_argument_group("output generation and vote")
    g.add_argument("--n-outputs", type=int, default=3, help="samples per input (default 3)")
    g.add_argument("--output-temperature", type=float, default=0.2, help="(default 0.2)")
    g.add_argument("--output-top-k", type=int, default=10, help="(default 10; 0: off)")
    _bool_flag(
        g,
        "output-length-filter",
        "drop samples outside mean ± 2 std of the demonstration outputs' lengths "
        "(default: on for generation)",
    )
    g.add_argument(
        "--min-share",
        type=float,
        default=0.3,
        help="the voted answer's minimum share of the surviving samples (default 0.3)",
    )
    g = p.add_argument_group("fine-tuning and evaluation")
    g.add_argument("--steps", type=int, default=8, help="LoRA steps (default 8)")
    g.add_argument("--batch-size", type=int, default=4, help="(default 4)")
    g.add_argument("--lr", type=float, default=3e-4, help="learning rate (default 3e-4)")
    g.add_argument("--eval-split", choices=["test", "validation"], default="test")
    g.add_argument("--eval-limit", type=int, default=20, help="test rows scored (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", help="run folder (default: <home>/selfguide/<run id>); reused to continue"
    )
    p.add_argument("--job", action="store_true", help="run as a background job and follow it")
    p.add_argument("--background", action="store_true", help="submit a job and print its id")
    p.add_argument("--name", help="job name (with --job/--background)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_run)

    p = ssub.add_parser("show", help="a run's funnel and baseline vs fine-tuned metrics")
    p.add_argument("run", help="run id (foreground or job) or run folder")
    p.add_argument("--examples", type=int, default=0, help="also print the first N kept pairs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = ssub.add_parser("list", help="SELF-GUIDE runs, newest first")
    p.set_defaults(func=cmd_list)
