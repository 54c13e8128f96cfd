"""``cookbook align``: template alignment on real data, for one run or across runs.

Without ``--run``: gold alignment of a template's rule on a task's rows (no model).
With ``--run``: per-run generation alignment and accuracy on the aligned/unaligned
subsets; with ``--base`` too: the change against the base run, and the
alignment-vs-accuracy correlation when there are enough points.  ``--all-runs``: a
table of every evaluation run in the workspace that has the task.  ``--out`` writes
the per-example records (verdicts, evidence spans, answers) as JSONL.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cookbook_core import storage
from cookbook_core.errors import BadInput


def _params(template: str, items: list[str]) -> dict[str, float]:
    """``KEY=VALUE`` rule parameters, each one the rule of ``template`` has (numbers)."""
    from cookbook_core.align import alignment

    rule = alignment.RULES.get(template)
    known = sorted(rule.defaults) if rule else []
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise BadInput(f"--param {item!r}: expected KEY=VALUE")
        if rule is not None and key not in rule.defaults:
            raise BadInput(
                f"--param {item!r}: the rule of {template!r} has no parameter {key!r} "
                f"(its parameters: {', '.join(known) or 'none'}; a template's generation "
                "parameters, such as its mode, do not change the rule read on real rows)"
            )
        try:
            out[key] = float(value)
        except ValueError:
            raise BadInput(f"--param {item!r}: {value!r} is not a number") from None
    return out


def cmd_align(args: argparse.Namespace) -> int:
    from cookbook_core.align import alignment
    from cookbook_core.align import runs as alignment_runs

    if args.out:
        storage.check_output(args.out, folder=False)

    params = _params(args.template, args.param)
    if args.all_runs:
        return _all_runs(args, params)
    if not args.run:
        rows, verdicts = alignment_runs.gold_alignment(
            args.template, args.task, args.data_dir, limit=args.limit, params=params
        )
        s = alignment.gold_summary(verdicts)
        print(
            f"{args.template} on {args.task} ({s['examples']} rows): gold alignment "
            f"{100 * s['gold_alignment']:.1f}%, rule abstained on {100 * s['abstained']:.1f}%"
        )
        for row, v in list(zip(rows, verdicts, strict=True))[: args.show]:
            mark = "aligned" if v.gold_aligned else ("abstained" if v.abstained else "not aligned")
            q = row.get("question", row.get("context", ""))[-80:]
            print(f"  [{mark}] {row['id']}: {q!r} -> rule {v.prediction!r}, gold {v.gold!r}")
        if args.out:
            _write(
                args.out,
                [{"id": r["id"], **v.__dict__} for r, v in zip(rows, verdicts, strict=True)],
            )
        return 0
    if args.base:
        table = alignment_runs.compare(args.template, args.task, args.base, args.run)
    else:
        import pandas as pd

        table = pd.DataFrame(
            [
                {
                    "run": r,
                    **alignment_runs.summarize(
                        alignment_runs.run_frame(args.template, args.task, r)
                    ),
                }
                for r in args.run
            ]
        )
    cols = [
        c
        for c in (
            "run",
            "n",
            "gold_alignment",
            "generation_alignment",
            "accuracy",
            "accuracy_aligned",
            "accuracy_unaligned",
            "delta_alignment",
            "delta_accuracy",
        )
        if c in table.columns
    ]
    shown = table[cols].copy()
    for c in cols[2:]:
        shown[c] = (100 * shown[c]).round(1)
    print(shown.to_string(index=False))
    if args.base:
        from cookbook_core.align import gain

        for run in args.run:  # does alignment explain the gain? (per example)
            print(
                f"{run}: {gain.explain(gain.split_runs(args.template, args.task, args.base, run))}"
            )
    if args.base and len(args.run) >= 3:
        r, lo, hi = alignment_runs.correlation(table[table["role"] == "run"])
        print(f"correlation of Δalignment and Δaccuracy: r = {r:.2f} (95% CI {lo:.2f} to {hi:.2f})")
    if args.out:
        frames = [
            alignment_runs.run_frame(args.template, args.task, r)
            for r in ([args.base] if args.base else []) + list(args.run)
        ]
        _write(args.out, [rec for f in frames for rec in f.to_dict("records")])
    return 0


def _all_runs(args: argparse.Namespace, params: dict[str, float]) -> int:
    from cookbook_core.align import runs as alignment_runs

    table = alignment_runs.runs_table(args.template, args.task, params=params)
    if table.empty:
        raise alignment_runs.MissingEvaluation(
            f"no evaluation run in the workspace has task {args.task!r}: run "
            f"`cookbook eval --task {args.task} ...` first"
        )
    shown = table.drop(columns=["note"]).copy()
    for c in (
        "gold_alignment",
        "generation_alignment",
        "accuracy",
        "accuracy_aligned",
        "accuracy_unaligned",
    ):
        shown[c] = (100 * shown[c].astype(float)).round(1)
    print(f"{args.template} on {args.task}: {len(table)} evaluation run(s), percentages")
    print(shown.to_string(index=False))
    for _, row in table[table["note"] != ""].iterrows():
        print(f"  {row['run']}: {row['note']}")
    if args.out:
        _write(args.out, table.to_dict("records"))
    return 0


def _write(path: str, records: list[dict[str, Any]]) -> None:
    storage.write_jsonl(path, records, default=str)  # atomic: no half-written file
    print(f"wrote {len(records)} records to {Path(path)}")


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "align",
        help="template alignment: does gold data / a model follow a template's rule?",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--template", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--data-dir", help="data folder laid out like ../shared/data (gold alignment)")
    p.add_argument("--limit", type=int)
    p.add_argument("--run", action="append", default=[], help="evaluation run id or folder")
    p.add_argument("--base", help="base run to compare --run against")
    p.add_argument(
        "--all-runs",
        action="store_true",
        help="one row per evaluation run in the workspace that has --task: gold alignment, "
        "generation alignment, accuracy",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="rule parameter, e.g. k=5 for document_qa",
    )
    p.add_argument("--show", type=int, default=5, help="examples to print (gold mode)")
    p.add_argument("--out", help="write per-example records as JSONL")
    p.set_defaults(func=cmd_align)
