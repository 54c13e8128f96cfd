"""CLI subcommands for fine-tuning and jobs: ``cookbook train`` and ``cookbook jobs ...``.

``cookbook train`` submits a ``train`` job (the config is checked first: bad input
exits with code 2 before anything runs).  With ``--background`` it prints the job id
and returns; otherwise it follows the job with a progress bar showing the loss, and
Ctrl-C cancels it (the worker writes a checkpoint; ``cookbook jobs resume ID``
continues).  ``cookbook jobs list|show|logs|cancel|resume`` inspect and control jobs;
``cookbook jobs repair`` rebuilds a corrupt job database from the run folders.
This module only parses arguments and prints; the work is in ``jobs``/``training``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from typing import Any

from cookbook_core.errors import CookbookError


def _train_config(args: argparse.Namespace) -> dict[str, Any]:
    """The ``train`` job's config: every declared flag, plus ``--full`` and the LoRA alpha
    (2 x rank unless given)."""
    from cookbook_core import configs
    from cookbook_core.selfguide import natural_rows
    from cookbook_core.train.config import TrainConfig, lora_alpha_for

    alpha = args.lora_alpha if args.lora_alpha is not None else lora_alpha_for(args.lora_r)
    method = "full" if args.full else "lora"
    natural = natural_rows.resolve(args.natural_data)  # sni: the pack's rows, as a file
    return configs.from_args(
        TrainConfig, args, method=method, lora_alpha=alpha, natural_data=natural
    ).to_dict()


def cmd_train(args: argparse.Namespace) -> int:
    from cookbook_core.jobs import store as jobs

    job = jobs.submit("train", _train_config(args), name=args.name)
    print(f"job {job.id} ({job.state}); run directory {job.run_dir}", file=sys.stderr)
    if args.background:
        print(job.id)
        return 0
    return follow_job(job.id)


def follow_job(job_id: str) -> int:
    """Show a job's progress until it ends; Ctrl-C cancels it.  Exit code from its state."""
    from tqdm import tqdm

    from cookbook_core.jobs import store as jobs

    bar = None
    try:
        while True:
            jobs.pump()
            job = jobs.get(job_id)
            p = job.progress
            if p.get("total"):
                if bar is None:
                    bar = tqdm(
                        total=int(p["total"]),
                        desc=job.kind,
                        unit=p.get("unit", "it"),
                        initial=int(p.get("done", 0)),
                    )
                bar.n = int(p.get("done", 0))
                post = {k: f"{p[k]:.4g}" for k in ("loss", "tokens_per_s") if p.get(k) is not None}
                bar.set_postfix(post, refresh=True)
            if not job.active:
                break
            time.sleep(1.0)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
            bar = None
        print(f"\ncancelling {job_id} (writing a checkpoint)...", file=sys.stderr)
        jobs.cancel(job_id)
        job = jobs.wait(job_id, timeout=600)
    finally:
        if bar is not None:
            bar.close()
    return _report_end(job)


def _report_end(job: Any) -> int:
    from cookbook_core.jobs import store as jobs

    if job.state == "succeeded":
        res = jobs.read_result(job) or {}
        extra = f"; final loss {res['final_loss']:.4f}" if res.get("final_loss") is not None else ""
        print(f"job {job.id} succeeded{extra}; outputs in {job.run_dir}")
        return 0
    if job.state in ("cancelled", "lost"):
        print(
            f"job {job.id} {job.state}: {job.reason}. Continue with: cookbook jobs resume {job.id}",
            file=sys.stderr,
        )
        return 130 if job.state == "cancelled" else 1
    raise CookbookError(f"job {job.id} {job.state}: {job.reason} (log: {job.run_dir / 'log.txt'})")


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%m-%d %H:%M:%S") if ts else "-"


def _progress_text(p: dict[str, Any]) -> str:
    if not p.get("total"):
        return ""
    text = f"{p.get('done', 0):g}/{p['total']:g} {p.get('unit', '')}".strip()
    if p.get("loss") is not None:
        text += f" loss {p['loss']:.4f}"
    return text


def cmd_jobs_list(args: argparse.Namespace) -> int:
    from cookbook_core.jobs import store as jobs

    rows = jobs.list_jobs(kind=args.kind)
    if args.json:
        print(json.dumps([j.to_dict() for j in rows], indent=2, default=str))
        return 0
    if not rows:
        print("no jobs")
        return 0
    width = max(len(j.id) for j in rows)
    print(f"{'ID':<{width}}  {'KIND':<8}  {'STATE':<9}  {'CREATED':<14}  PROGRESS / REASON")
    for j in rows:
        info = _progress_text(j.progress) if j.state in ("running", "succeeded") else ""
        if j.reason and j.state != "succeeded":
            info = (info + "  " if info else "") + j.reason
        print(f"{j.id:<{width}}  {j.kind:<8}  {j.state:<9}  {_when(j.created):<14}  {info}")
    return 0


def cmd_jobs_show(args: argparse.Namespace) -> int:
    from cookbook_core.jobs import store as jobs

    jobs.pump()
    job = jobs.get(args.id)
    result = jobs.read_result(job)
    if args.json:
        print(json.dumps({**job.to_dict(), "result": result}, indent=2, default=str))
        return 0
    print(f"{job.id}  ({job.kind}{', ' + job.name if job.name else ''})")
    print(f"state:     {job.state}" + (f"  ({job.reason})" if job.reason else ""))
    print(
        f"created:   {_when(job.created)}   started: {_when(job.started)}   "
        f"finished: {_when(job.finished)}   attempts: {job.attempts}"
    )
    print(f"pid:       {job.pid or '-'}   heartbeat: {_when(job.heartbeat)}")
    print(f"progress:  {_progress_text(job.progress) or '-'}")
    print(f"run dir:   {job.run_dir}")
    print("config:    " + json.dumps(job.config, indent=2).replace("\n", "\n           "))
    if result:
        print(
            "result:    " + json.dumps(result, indent=2, default=str).replace("\n", "\n           ")
        )
    return 0


def cmd_jobs_logs(args: argparse.Namespace) -> int:
    from cookbook_core.jobs import store as jobs

    job = jobs.get(args.id)
    sys.stdout.write(jobs.read_log(job.id, tail=args.tail))
    if not args.follow:
        return 0
    path = job.run_dir / "log.txt"
    pos = path.stat().st_size if path.exists() else 0
    try:
        while True:
            if path.exists() and path.stat().st_size > pos:
                with open(path, "rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
                pos += len(chunk)
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            jobs.pump()
            if not jobs.get(job.id).active and (not path.exists() or path.stat().st_size == pos):
                return 0
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    from cookbook_core.jobs import store as jobs

    job = jobs.cancel(args.id, force=args.force)
    if job.active:
        print(f"job {job.id}: cancel requested (the worker checkpoints and exits)")
        if args.wait:
            job = jobs.wait(job.id, timeout=600)
    print(f"job {job.id} is {job.state}")
    return 0


def cmd_jobs_resume(args: argparse.Namespace) -> int:
    from cookbook_core.jobs import store as jobs

    job = jobs.resume(args.id)
    print(
        f"job {job.id} is {job.state} again (continues from its last checkpoint)", file=sys.stderr
    )
    return follow_job(job.id) if args.follow else 0


def cmd_jobs_repair(args: argparse.Namespace) -> int:
    from cookbook_core.jobs import store as jobs

    restored, skipped, backup = jobs.repair()
    kept = f"; the old database is kept at {backup}" if backup else ""
    print(f"rebuilt {jobs.db_path()} from {len(restored)} run folder(s){kept}")
    for item in skipped:
        print(f"  skipped {item}", file=sys.stderr)
    jobs.reconcile()
    return 0


def add_commands(sub: Any) -> None:
    """Add ``train`` and ``jobs`` to the ``cookbook`` command."""
    from cookbook_core import configs
    from cookbook_core.train.config import TrainConfig

    t = sub.add_parser(
        "train",
        help="fine-tune a model on a dataset (LoRA or full), as a job",
        description="Fine-tune on a prompt/completion dataset. Loss on the completion only; "
        "checkpoints every --save-every steps; Ctrl-C cancels with a checkpoint.",
    )
    configs.add_arguments(t, TrainConfig)  # every option, as declared in train.config
    t.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    t.add_argument(
        "--lora-alpha",
        type=float,
        default=None,
        help=configs.help_text(TrainConfig, "lora_alpha", with_default=False)
        + " (default: 2 x --lora-r)",
    )
    t.add_argument("--name", default=None, help="a label for the job")
    t.add_argument("--background", action="store_true", help="submit and return the job id")
    t.set_defaults(func=cmd_train)

    jp = sub.add_parser("jobs", help="list, inspect, cancel and resume background jobs")
    js = jp.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    p = js.add_parser("list", help="all jobs, newest first (marks vanished workers lost)")
    p.add_argument("--kind", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs_list)
    p = js.add_parser("show", help="one job: state, progress, config, result")
    p.add_argument("id", help="job id (or a unique prefix)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs_show)
    p = js.add_parser("logs", help="a job's worker log")
    p.add_argument("id")
    p.add_argument("--tail", type=int, default=None, help="only the last N lines")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until it ends")
    p.set_defaults(func=cmd_jobs_logs)
    p = js.add_parser("cancel", help="cancel a queued or running job (SIGTERM to its group)")
    p.add_argument("id")
    p.add_argument("--force", action="store_true", help="SIGKILL: no checkpoint is written")
    p.add_argument("--wait", action="store_true", help="wait until the worker has exited")
    p.set_defaults(func=cmd_jobs_cancel)
    p = js.add_parser(
        "repair",
        help="rebuild a corrupt or lost job database from the run folders (keeps a copy)",
    )
    p.set_defaults(func=cmd_jobs_repair)
    p = js.add_parser("resume", help="re-queue a lost, cancelled or failed training job")
    p.add_argument("id")
    p.add_argument("--follow", action="store_true", help="show its progress until it ends")
    p.set_defaults(func=cmd_jobs_resume)
