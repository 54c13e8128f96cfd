"""CLI subcommand ``cookbook templates draft``: a language model drafts templates for a task.

It builds the drafting prompt from the task, asks the model for ``-k`` candidates
(through the managed vLLM server when one serves ``--model``, the model in this
process otherwise, or any OpenAI-compatible ``--base-url`` with the key read from
the variable named by ``--api-key-env``), puts every candidate through static
checks, a sandboxed preview, its own checker and its rule's alignment on the task's
real rows, sends failures back for up to ``--rounds`` repair rounds, and prints a
progress line per candidate, then the ranked table with every failure's reason and
how many candidates passed each stage.  The shipped template for the task is shown
on the same rows twice: measured like a draft (its checker, in the sandbox) and with
its hand-written natural-text rule from ``align.alignment``.  ``--save`` writes the
best passing candidate into the user's (untrusted) template folder with provenance;
nothing is saved when none passed.  Each finished run's summary is kept for the
results page (:mod:`cookbook_core.drafting.record`).  ``--show-prompt`` prints the prompt and asks no
model.  Exit codes: 0 when a candidate passed, 1 when none did, 2 for bad input.
This module parses options and prints; the work is in ``cookbook_core.drafting``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

STAGE_WIDTH = 9


def _config(args: argparse.Namespace) -> Any:
    from cookbook_core.drafting.checks import Settings
    from cookbook_core.drafting.loop import DraftConfig
    from cookbook_core.sandbox.runner import Limits

    return DraftConfig(
        task=args.task,
        model=args.model,
        data_dir=args.data_dir,
        examples=args.examples,
        align_rows=args.align_rows,
        description=args.description,
        worked=args.worked,
        include_own=args.include_own,
        k=args.k,
        rounds=args.rounds,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k or None,
        settings=Settings(
            n_samples=args.samples,
            seed=args.seed,
            limits=Limits(cpu_seconds=args.cpu_seconds, wall_seconds=args.cpu_seconds * 3.0),
        ),
    )


def _fmt(x: Any) -> str:
    return f"{x:.1%}" if isinstance(x, float) else ("-" if x is None else str(x))


def print_progress(event: str, **info: Any) -> None:
    """One line per event on stderr (prompt built, model asked, candidate checked)."""
    if event == "prompt":
        line = f"prompt: {info['chars']} characters (sha256 {info['prompt_hash']})"
    elif event == "asking":
        what = "candidates" if info["round"] == 0 else "repairs of failed candidates"
        n = info["k"] if info["round"] == 0 else info["prompts"]
        line = f"round {info['round']}: asking the model for {n} {what} ..."
    elif event == "candidate":
        c = info["candidate"]
        verdict = "PASSED" if c.passed else f"failed at {c.outcome.stage}"
        extra = f"  alignment {_fmt(c.outcome.scores.get('alignment'))}" if c.passed else ""
        line = f"  {c.id:<7} {verdict}{extra}  {c.outcome.reason or ''}"
    elif event == "done":
        line = f"done: {info['passed']} of {info['total']} candidates passed every stage"
    else:
        line = event
    print(line, file=sys.stderr, flush=True)


def handwritten_alignment(drafting: Any) -> dict[str, Any] | None:
    """The shipped template's hand-written natural-text rule (``align.alignment``) on
    the rows the drafts were measured on, or None when it has no rule for them."""
    from cookbook_core.align import alignment
    from cookbook_core.drafting import contracts

    name = contracts.SHIPPED_FOR_TASK.get(drafting.rows.task.name)
    if name is None:
        return None
    try:
        verdicts = alignment.apply_rule(name, drafting.rows.measured_raw)
    except alignment.AlignmentError:
        return None
    return {"template": name, **alignment.gold_summary(verdicts)}


def print_table(table: list[dict[str, Any]], width: int = 110) -> None:
    """The ranked candidates: stage reached, scores, failure reason."""
    head = (
        f"{'rank':>4}  {'id':<7} {'stage':<{STAGE_WIDTH}} {'align':>6} {'wrong':>6} "
        f"{'margin':>7} {'own':>5} {'corrupt':>7}  reason"
    )
    print(head)
    print("-" * min(width, len(head) + 40))
    for r in table:
        reason = r["reason"] if len(r["reason"]) <= 90 else r["reason"][:87] + "..."
        margin = "-" if r["margin"] is None else f"{r['margin']:+.3f}"
        print(
            f"{r['rank']:>4}  {r['id']:<7} {r['stage']:<{STAGE_WIDTH}} "
            f"{_fmt(r['alignment']):>6} {_fmt(r['wrong_accept']):>6} {margin:>7} "
            f"{_fmt(r['self_accept']):>5} {_fmt(r['corrupt_reject']):>7}  {reason}"
        )


def cmd_draft(args: argparse.Namespace) -> int:
    from cookbook_core.drafting import asking, record, saving
    from cookbook_core.drafting.loop import Drafting

    cfg = _config(args)
    drafting = Drafting.prepare(cfg)
    if args.show_prompt:
        print(drafting.prompt)
        return 0
    print(
        f"drafting templates for {drafting.rows.task.name}: {cfg.k} candidates, "
        f"{cfg.rounds} repair round(s); {len(drafting.rows.shown)} rows shown, "
        f"{len(drafting.rows.measured)} rows to measure alignment; worked examples: "
        f"{', '.join(e.name for e in drafting.examples) or 'none'}",
        file=sys.stderr,
    )
    backend = open_backend(args)
    asker = asking.Asker(
        backend,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
    )
    drafting.run(asker, progress=None if args.quiet else print_progress)
    summary = drafting.summary()
    summary["baseline_handwritten"] = handwritten_alignment(drafting)
    record.store(
        summary,
        record.command(cfg, args.backend, args.base_url),
        summary["baseline_handwritten"],
    )
    saved: Path | None = None
    if args.save:
        best = drafting.best()
        if best is not None:
            _, saved = saving.save_best(drafting, Path(args.save_to) if args.save_to else None)
        summary["saved"] = str(saved) if saved else None
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_report(summary, saved, args.save)
    return 0 if summary["best"] else 1


def _print_report(summary: dict[str, Any], saved: Path | None, wanted_save: bool) -> None:
    print()
    print_table(summary["table"])
    f = summary["funnel"]
    print(
        f"\npassed each stage (of {f['candidates']} candidates, repairs included): "
        + ", ".join(f"{s} {f[s]}" for s in ("extract", "static", "preview", "checker", "alignment"))
    )
    base, hand = summary["baseline"], summary.get("baseline_handwritten")
    if base and "alignment" in base:
        print(
            f"shipped {base['template']} on the same {base['rows']} rows: checker alignment "
            f"{_fmt(base['alignment'])}, wrong answers accepted {_fmt(base['wrong_accept'])}"
            + (
                f"; hand-written rule (align.alignment) {_fmt(hand['gold_alignment'])}"
                if hand
                else ""
            )
        )
    by = summary["answered_by"]
    print(f"model: {', '.join(f'{k}={v}' for k, v in by.items())}; prompt {summary['prompt_hash']}")
    if summary["best"]:
        print(f"best: {summary['best']}")
    if wanted_save:
        if saved is not None:
            print(f"saved {summary['best']} to {saved} (untrusted: runs only in the sandbox)")
        else:
            print("nothing saved: no candidate passed every stage")


def add_endpoint_args(p: argparse.ArgumentParser) -> None:
    """The options that choose which model answers (shared with ``templates artifact``)."""
    p.add_argument(
        "--model",
        default="default",
        help="model name or folder (default: the embedded model); with --base-url, the "
        "local tokenizer of the served model",
    )
    p.add_argument("--base-url", help="any OpenAI-compatible endpoint (/v1/completions)")
    p.add_argument("--served-model", help="with --base-url: the model name the endpoint knows")
    p.add_argument(
        "--api-key-env",
        help="with --base-url: NAME of the environment variable holding the API key "
        "(the key is never written anywhere)",
    )
    p.add_argument(
        "--backend",
        choices=["auto", "transformers", "served"],
        default="auto",
        help="auto (default): the managed server for --model when one runs, else in-process",
    )


def open_backend(args: argparse.Namespace) -> Any:
    """The backend :func:`add_endpoint_args`'s options choose."""
    from cookbook_core.drafting import asking

    return asking.open_backend(
        args.model,
        base_url=args.base_url,
        served_model=args.served_model,
        api_key_env=args.api_key_env,
        backend=args.backend,
    )


def add_templates_commands(tsub: Any) -> None:
    """Add ``draft`` to the ``cookbook templates`` subcommands."""
    p = tsub.add_parser(
        "draft",
        help="let a language model draft templates for a task (checked in the sandbox)",
        description="Ask a model for candidate templates for TASK, check each (static checks, "
        "sandboxed preview, its own checker, its rule on the task's real rows), repair "
        "failures, and print a ranked table with every failure's reason.",
    )
    p.add_argument("--task", required=True, help="task name (e.g. squad, boolq, em_abt_buy)")
    p.add_argument("--examples", type=int, default=3, help="real rows shown in the prompt")
    p.add_argument(
        "--description", help="task description: TEXT or a FILE holding it (default: built in)"
    )
    add_endpoint_args(p)
    p.add_argument("-k", type=int, default=4, help="candidates asked for (default 4)")
    p.add_argument("--rounds", type=int, default=1, help="repair rounds (default 1)")
    p.add_argument("--seed", type=int, default=0, help="sampling and preview seed")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="answer length limit")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=50, help="0: no top-k cut")
    p.add_argument("--worked", type=int, default=2, help="shipped templates shown (default 2)")
    p.add_argument(
        "--include-own",
        action="store_true",
        help="also show the shipped template that stands for the task",
    )
    p.add_argument("--align-rows", type=int, default=200, help="real rows measured (default 200)")
    p.add_argument("--samples", type=int, default=8, help="sandboxed samples per candidate")
    p.add_argument("--cpu-seconds", type=int, default=5, help="sandbox CPU limit per run")
    p.add_argument("--data-dir", help="data folder (default: $COOKBOOK_EVAL_DATA)")
    p.add_argument("--save", action="store_true", help="save the best passing candidate")
    p.add_argument("--save-to", help="with --save: folder (default: <home>/templates)")
    p.add_argument("--show-prompt", action="store_true", help="print the prompt, ask no model")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_draft)
