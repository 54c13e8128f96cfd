"""``cookbook experiment ...``: reproduce the paper's effects with one command each.

``experiment single-task --template document_qa`` evaluates the base model on the
template's real task, fine-tunes, evaluates again and prints the gain with a paired
bootstrap interval; ``experiment mix --template ... --task-group gpt4all`` runs
Cookbook-Mix end to end; ``--background`` queues either as a resumable job.
``experiment list|show`` read stored results; ``experiment report`` rewrites
``docs/RESULTS.md`` and its figures from them.  The work is
:mod:`cookbook_core.experiments.core` and :mod:`cookbook_core.experiments.report`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def _print_single(res: dict[str, Any]) -> None:
    print(f"{res['name']}: {res['command']}")
    print(f"{'task':<20} {'rows':>5} {'base':>7} {'tuned':>7} {'gain':>7}  95% CI")
    for r in res["rows"]:
        lo, hi = r["gain_ci95"]
        print(
            f"{r['task']:<20} {r['rows']:>5} {r['base']:7.1f} {r['tuned']:7.1f} "
            f"{r['gain']:+7.1f}  [{lo:+.1f}, {hi:+.1f}]  ({r['metric']})"
        )
        split = r.get("gain_by_alignment") or {}
        if split.get("explanation"):
            print(f"  does alignment explain it? {split['explanation']}")


def _print_mix(res: dict[str, Any]) -> None:
    import pandas as pd

    print(f"{res['name']}: {res['command']}")
    print(pd.DataFrame(res["comparison"]).T.round(1).to_string())
    v = res.get("validation", {})
    if "stats" in v:
        s = v["stats"]
        print(
            f"linear fit: mean |error| {s['mean_abs_error']:.2f} pts, median "
            f"{s['median_abs_error']:.2f} pts over {s['cells']} cells"
        )
    p = res.get("protocol", {})
    if "fit_stats" in p:
        from cookbook_core.mix import protocol

        print("paper's validation protocol (paired bootstrap 95% intervals):")
        for line in protocol.verdicts(p):
            print(f"- {line}")


def _run(kind: str, cfg: Any, args: argparse.Namespace) -> int:
    from cookbook_core.cli.sweep import ray_options, stage_bar
    from cookbook_core.experiments import core as experiments

    ray = ray_options(args)
    experiments.check(kind, cfg)
    if args.background:
        job_id = experiments.submit(kind, cfg)
        print(f"queued job {job_id}; follow with `cookbook jobs logs {job_id}`")
        return 0
    fn = experiments.run_single_task if kind == "single-task" else experiments.run_mix
    res = fn(cfg, progress=stage_bar(args.quiet), ray=ray)
    (_print_single if kind == "single-task" else _print_mix)(res)
    return 0


def cmd_single(args: argparse.Namespace) -> int:
    from cookbook_core.experiments import core as experiments
    from cookbook_core.selfguide import natural_rows as natural

    extra: dict[str, Any] = {}
    if args.natural_data:
        extra["natural_data"] = natural.resolve(args.natural_data, args.data_dir)
        extra["natural_n"] = args.natural_n or natural.DEFAULT_N
    elif args.natural_n:
        print("cookbook: --natural-n needs --natural-data (e.g. --natural-data sni)")
        return 2
    cfg = experiments.SingleTaskConfig(
        template=args.template,
        tasks=args.task,
        n=args.n,
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        limit=args.limit,
        data_dir=args.data_dir,
        name=args.name,
        train_extra=extra,
    )
    return _run("single-task", cfg, args)


def cmd_mix(args: argparse.Namespace) -> int:
    from cookbook_core.experiments import core as experiments

    cfg = experiments.MixConfig(
        templates=args.template,
        tasks=[*args.task, *args.task_group] or ["gpt4all"],
        n=args.n,
        steps=args.steps,
        limit=args.limit,
        dirichlet=args.dirichlet,
        pairs=args.pairs,
        objective=args.objective,
        data_dir=args.data_dir,
        name=args.name,
        train_extra={
            k: v for k, v in (("lr", args.lr), ("batch_size", args.batch_size)) if v is not None
        },
        metrics=args.metric,
    )
    return _run("mix", cfg, args)


def cmd_list(args: argparse.Namespace) -> int:
    from cookbook_core.experiments import core as experiments

    names = experiments.list_experiments()
    if not names:
        print("no experiments yet: try `cookbook experiment single-task --template document_qa`")
    for name in names:
        res = experiments.read(name)
        print(f"{name:<32} {res['kind']:<12} {res['finished']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from cookbook_core.experiments import core as experiments

    res = experiments.read(args.name)
    if args.json:
        print(json.dumps(res, indent=2))
    elif res["kind"] == "single-task":
        _print_single(res)
    else:
        _print_mix(res)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cookbook_core import storage
    from cookbook_core.experiments import report as results

    storage.check_output(args.out, folder=True)
    draw = None
    if not args.no_figures:
        from cookbook_core.studio.figures_experiments import write_pngs as draw
    path = results.write_report(args.out, draw=draw)
    print(f"wrote {path}")
    return 0


def add_commands(sub: Any) -> None:
    from cookbook_core.cli.sweep import add_executor_arguments

    ep = sub.add_parser(
        "experiment", help="reproduce the paper's effects (single-task gain, Cookbook-Mix)"
    )
    esub = ep.add_subparsers(dest="experiment_command", required=True, metavar="ACTION")

    p = esub.add_parser(
        "single-task",
        help="base vs fine-tuned on a template's real task, with a bootstrap interval",
    )
    p.add_argument(
        "--template",
        required=True,
        help="a template, or dataset:PATH (a dataset folder, e.g. one written by `cookbook "
        "generate` with other --param or --token-space values; give --task)",
    )
    p.add_argument("--task", action="append", default=[], help="default: the template's tasks")
    p.add_argument("-n", type=int, default=2000, help="training samples")
    p.add_argument("--steps", type=int, default=80, help="LoRA steps (batch 8: ~6 s each on CPU)")
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--limit", type=int, default=100, help="evaluation rows per task")
    p.add_argument("--data-dir", help="evaluation data folder (default: $COOKBOOK_EVAL_DATA)")
    p.add_argument(
        "--natural-data",
        help="natural-language prompt/completion rows mixed into the fine-tune: a JSONL or "
        "dataset folder, or sni (the SELF-GUIDE pack's held-in validation rows)",
    )
    p.add_argument(
        "--natural-n", type=int, help="natural rows mixed in (default 128 with --natural-data)"
    )
    p.add_argument(
        "--name", help="experiment name (default: single-TEMPLATE, -naturalN with natural rows)"
    )
    p.add_argument("--background", action="store_true", help="queue as a resumable job")
    p.add_argument("--quiet", action="store_true")
    add_executor_arguments(p)
    p.set_defaults(func=cmd_single)

    p = esub.add_parser("mix", help="Cookbook-Mix end to end: sweep, fit, optimize, compare")
    p.add_argument("--template", action="append", required=True, help="template (repeat)")
    p.add_argument("--task", action="append", default=[])
    p.add_argument("--task-group", action="append", default=[], help="default: gpt4all")
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--dirichlet", type=int, default=2, help="validation mixtures")
    p.add_argument(
        "--pairs",
        action="store_true",
        help="also every uniform (50/50) pair (the paper's protocol)",
    )
    p.add_argument("--lr", type=float, help="learning rate (default: training's)")
    p.add_argument("--batch-size", type=int, help="batch size (default: training's)")
    p.add_argument(
        "--objective",
        default="maxmin",
        choices=["mean", "maxmin", "entropy", "both"],
        help="optimizer objective; both: train the mean and the max-min mixtures",
    )
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        help="matrix metric: METRIC for every task that has it (acc_norm, f1, accuracy, ...) "
        "or TASK=METRIC (repeat); default each task's first. Rerunning with another "
        "--metric re-reads the same cells (nothing is trained or evaluated again)",
    )
    p.add_argument("--data-dir")
    p.add_argument("--name", help="experiment (and sweep) name")
    p.add_argument("--background", action="store_true")
    p.add_argument("--quiet", action="store_true")
    add_executor_arguments(p)
    p.set_defaults(func=cmd_mix)

    p = esub.add_parser("list", help="finished experiments")
    p.set_defaults(func=cmd_list)

    p = esub.add_parser("show", help="one experiment's numbers")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = esub.add_parser("report", help="rewrite docs/RESULTS.md and its figures from the results")
    p.add_argument("--out", default="docs", help="folder for RESULTS.md and results/*.png")
    p.add_argument("--no-figures", action="store_true", help="tables only (no PNG export)")
    p.set_defaults(func=cmd_report)
