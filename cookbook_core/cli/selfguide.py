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
    from cookbook_core import configs
    from cookbook_core.selfguide.config import SelfGuideConfig

    return configs.from_args(SelfGuideConfig, args)


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


# --help headings for the config's options (the rest are listed above them)
_GROUPS = {
    "input generation": (
        "n_inputs",
        "round_size",
        "max_low_quality",
        "input_temperature",
        "input_top_k",
        "input_length_filter",
        "input_max_new_tokens",
    ),
    "output generation and vote": (
        "n_outputs",
        "output_temperature",
        "output_top_k",
        "output_length_filter",
        "output_max_new_tokens",
        "min_share",
    ),
    "fine-tuning": ("steps", "batch_size", "lr", "lora_r", "lora_alpha", "max_length"),
    "evaluation": ("eval_split", "eval_limit", "eval_max_new_tokens"),
}


def add_commands(sub: Any) -> None:
    """Register ``cookbook selfguide``."""
    from cookbook_core import configs
    from cookbook_core.selfguide.config import SelfGuideConfig

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
    p.add_argument("--data-dir", help=configs.help_text(SelfGuideConfig, "data_dir"))
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
    grouped = [n for names in _GROUPS.values() for n in names]
    configs.add_arguments(p, SelfGuideConfig, skip=grouped)  # as declared in selfguide.config
    for title, names in _GROUPS.items():
        configs.add_arguments(p.add_argument_group(title), SelfGuideConfig, names)
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
