"""CLI subcommand ``cookbook eval``: evaluate a model (+ adapter) on real benchmarks.

In the foreground (default) it runs in this process with a progress bar and writes
``<home>/evals/<run id>/``; with ``--job`` it submits an ``eval`` job (followed like a
training job; ``--background`` returns its id at once).  ``--list-tasks`` prints the
task registry and groups.  Bad input (unknown task, missing data field, empty file,
adapter from another base model) exits with code 2 before the model loads.  This
module only parses arguments and prints; the work is in ``evaluation``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cookbook_core.errors import BadInput


def _kv(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise BadInput(f"{what} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _config(args: argparse.Namespace) -> Any:
    """The evaluation config: every declared flag, plus the repeatable task and file flags."""
    from cookbook_core import configs
    from cookbook_core.eval.config import EvalConfig

    return configs.from_args(
        EvalConfig,
        args,
        tasks=list(args.task),
        data_files=_kv(args.data, "--data"),
        fields=_kv(args.field, "--field"),
    )


def _list_tasks() -> int:
    from cookbook_core.eval import tasks

    width = max(len(n) for n in tasks.TASKS)
    for t in tasks.TASKS.values():
        print(f"{t.name:<{width}}  {t.method:<13}  {t.folder:<22}  {t.description}")
    print("\ngroups:")
    for g, members in tasks.GROUPS.items():
        print(f"  {g}: {', '.join(members)}")
    return 0


def print_summary(summary: dict[str, Any]) -> None:
    """A table: task, metric, value, 95% interval, n."""
    for name, s in summary.get("tasks", {}).items():
        for m, v in s["metrics"].items():
            lo, hi = v["ci95"]
            ci = f"[{lo:.4f}, {hi:.4f}]" if lo is not None and hi is not None else ""
            print(f"{name:<18} {m:<12} {v['value']:>9.4f}  {ci:<20} n={s['n']}")
        if s.get("n_truncated"):
            print(f"{'':<18} ({s['n_truncated']} truncated generations/contexts, see records)")


def cmd_eval(args: argparse.Namespace) -> int:
    if args.list_tasks:
        return _list_tasks()
    if not args.task:
        raise BadInput("give at least one --task (see: cookbook eval --list-tasks)")
    from cookbook_core import storage
    from cookbook_core.eval import evaluation

    if args.out:
        storage.check_output(args.out, folder=True)
    cfg = _config(args)
    if args.job:
        from cookbook_core.cli.jobs import follow_job
        from cookbook_core.jobs import store as jobs

        job = jobs.submit("eval", cfg.to_dict(), name=args.name)
        print(f"job {job.id} ({job.state}); run directory {job.run_dir}", file=sys.stderr)
        if args.background:
            print(job.id)
            return 0
        code = follow_job(job.id)
        summary_path = jobs.get(job.id).run_dir / "summary.json"
        if code == 0 and summary_path.is_file():
            print_summary(json.loads(summary_path.read_text()))
        return code
    cfg = evaluation.validate(cfg)  # bad input fails here, before the model loads
    from tqdm import tqdm

    bar = tqdm(total=None, desc="eval", unit="ex", mininterval=0.5, disable=args.quiet)

    def progress(done: int, total: int, task: str = "") -> None:
        bar.total = total
        bar.set_description(task or "eval")
        bar.update(done - bar.n)

    try:
        summary = evaluation.evaluate(cfg, args.out, progress=progress)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)
        print(f"summary and records: {summary['run_dir']}")
    return 0


def add_commands(sub: Any) -> None:
    """Register ``cookbook eval``."""
    from cookbook_core import configs
    from cookbook_core.eval.config import EvalConfig

    p = sub.add_parser(
        "eval",
        help="evaluate a model (and adapter) on real benchmarks",
        description="Per-task accuracy on real benchmarks (lm-evaluation-harness conventions "
        "for multiple choice). Example: cookbook eval --task squad --task gpt4all --limit 200 "
        "--data-dir ../shared/data",
    )
    p.add_argument(
        "--task",
        "-t",
        action="append",
        default=[],
        help=configs.help_text(EvalConfig, "tasks"),
    )
    p.add_argument("--list-tasks", action="store_true", help="print the tasks and groups")
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="TASK=FILE",
        help=configs.help_text(EvalConfig, "data_files"),
    )
    p.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help=configs.help_text(EvalConfig, "fields"),
    )
    configs.add_arguments(p, EvalConfig)  # every other option, as declared in eval.config
    p.add_argument("--out", help="run folder (default: <home>/evals/<run id>)")
    p.add_argument("--job", action="store_true", help="run as a background eval job")
    p.add_argument("--background", action="store_true", help="with --job: do not follow it")
    p.add_argument("--name", help="job name (with --job)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)
