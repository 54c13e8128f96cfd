"""The ``cookbook`` command: a thin argparse front over the library.

Subcommands here: ``templates list|show|preview`` and ``generate``.  Other modules
add their own subcommands through :data:`EXTENSIONS` (each exposes
``add_commands(subparsers)``).  Errors the user can fix (:class:`BadInput`) print one
clear message and exit with code 2; failures during work (:class:`CookbookError`)
exit with code 1.  No heavy import happens before a subcommand needs it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cookbook_core.errors import BadInput, CookbookError

# Modules that contribute subcommands: each has add_commands(subparsers).
EXTENSIONS: list[str] = [
    "cookbook_core.cli.jobs",
    "cookbook_core.cli.eval",
    "cookbook_core.cli.mix",
    "cookbook_core.cli.align",
    "cookbook_core.cli.experiment",
    "cookbook_core.cli.selfguide",
    "cookbook_core.cli.serve",
]

Handler = Callable[[argparse.Namespace], int]


def _parse_kv(items: Sequence[str]) -> list[tuple[str | None, str, str]]:
    """``[NAME.]key=value`` strings as (template or None, key, raw value)."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--param {item!r}: expected KEY=VALUE or TEMPLATE.KEY=VALUE")
        target, dot, name = key.rpartition(".")
        out.append((target if dot else None, name, value))
    return out


def params_for(template_names: Sequence[str], items: Sequence[str]) -> dict[str, dict[str, str]]:
    """Distribute ``--param`` values to templates.

    ``key=value`` goes to every listed template that has ``key`` (an error when none
    has it); ``NAME.key=value`` goes to template NAME only.
    """
    from cookbook_core import discovery

    out: dict[str, dict[str, str]] = {n: {} for n in template_names}
    for target, key, value in _parse_kv(items):
        if target is not None:
            if target not in out:
                raise BadInput(
                    f"--param {target}.{key}: {target!r} is not among the chosen templates"
                    f"{discovery.suggest(target, list(out))}"
                )
            out[target][key] = value
            continue
        owners = [n for n in template_names if key in discovery.get(n).params]
        if not owners:
            known = sorted({p for n in template_names for p in discovery.get(n).params})
            raise BadInput(
                f"--param {key}: no chosen template has a parameter {key!r}"
                f"{discovery.suggest(key, known)} (parameters: {', '.join(known) or 'none'})"
            )
        for n in owners:
            out[n][key] = value
    return out


def _parse_source(text: str) -> tuple[str, float]:
    name, sep, weight = text.partition(":")
    if not sep:
        return name, 1.0
    try:
        w = float(weight)
    except ValueError:
        raise BadInput(f"--template {text!r}: weight {weight!r} is not a number") from None
    if not w > 0:
        raise BadInput(f"--template {text!r}: weight must be > 0")
    return name, w


# ----------------------------------------------------------------------------------
# templates


def cmd_templates_list(args: argparse.Namespace) -> int:
    from cookbook_core import discovery

    entries = discovery.scan()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "family": e.family,
                        "tasks": list(e.tasks),
                        "file": str(e.file),
                        "error": e.error,
                        "summary": e.doc.split("\n\n")[0].replace("\n", " "),
                    }
                    for e in entries
                ],
                indent=2,
            )
        )
        return 0
    width = max((len(e.name) for e in entries), default=4)
    for e in entries:
        if e.ok:
            summary = e.doc.split(".")[0].replace("\n", " ")
            tasks = ",".join(e.tasks)
            tasks = tasks if len(tasks) <= 34 else tasks[:31] + "..."
            print(f"{e.name:<{width}}  {e.family:<10}  {tasks:<34}  {summary[:70]}")
        else:
            print(f"{e.name:<{width}}  BROKEN      {e.file}: {e.error}")
    return 0


def cmd_templates_show(args: argparse.Namespace) -> int:
    from cookbook_core import discovery

    tpl = discovery.get(args.name)
    print(f"{tpl.name}  ({tpl.family}; stands for: {', '.join(tpl.tasks)})")
    print(f"file: {tpl.source_file}\nsha256: {discovery.source_sha256(tpl)}\n")
    print(textwrap.indent(tpl.doc, "  ") + "\n")
    print("parameters:")
    for p in tpl.params.values():
        print(f"  {p.name} = {p.default!r}   ({p.describe()})  {p.help}")
    if args.source and tpl.source_file:
        print("\n" + Path(tpl.source_file).read_text())
    return 0


def cmd_templates_check(args: argparse.Namespace) -> int:
    from cookbook_core.sandbox import runner as sandbox

    path = Path(args.path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    problems = sandbox.validate_source(source, str(path))
    for p in problems:
        print(f"{path}:{p.line}:{p.col}: {p.message}", file=sys.stderr)
    if problems:
        print(f"rejected: {len(problems)} problem(s)", file=sys.stderr)
        return 2
    print(f"{path}: ok")
    return 0


def _preview_sandboxed(args: argparse.Namespace) -> int:
    from cookbook_core import tokens
    from cookbook_core.sandbox import runner as sandbox

    raw = dict(kv.split("=", 1) for kv in args.param if "=" in kv)
    res = sandbox.preview_file(
        args.file,
        name=args.name,
        n=args.n,
        seed=args.seed,
        params=raw,
        token_space=args.token_space or tokens.DEFAULT_SPEC,
    )
    if not res.ok:
        print(f"cookbook: template failed in the sandbox: {res.error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res.samples, indent=2, ensure_ascii=False))
        return 0
    for i, s in enumerate(res.samples):
        verdict = "follows rule" if s["follows_rule"] else "BREAKS RULE"
        print(f"── sample {i} (seed {args.seed}, sandboxed) · {verdict} " + "─" * 10)
        print(s["prompt"])
        print(f">>> {s['completion']}\n")
    print(f"({res.elapsed_s * 1000:.0f} ms in the sandbox)")
    return 0


def cmd_templates_preview(args: argparse.Namespace) -> int:
    from cookbook_core import discovery, tokens

    if args.file:
        return _preview_sandboxed(args)
    if not args.name:
        raise BadInput("give a template NAME or --file PATH")
    entry = discovery.find(args.name)
    if entry.ok and not entry.trusted:  # never imported here: previewed in the sandbox
        args.file = str(entry.file)
        return _preview_sandboxed(args)
    tpl = discovery.get(args.name)
    params = tpl.resolve_params(params_for([tpl.name], args.param)[tpl.name])
    space = tokens.load(args.token_space or tpl.token_space or tokens.DEFAULT_SPEC)
    samples = tpl.preview_records(space.tokens, args.n, args.seed, params)
    if args.json:
        print(json.dumps(samples, indent=2, ensure_ascii=False))
        return 0
    for i, s in enumerate(samples):
        verdict = "follows rule" if s["follows_rule"] else "BREAKS RULE"
        print(f"── sample {i} (seed {args.seed}) · {verdict} " + "─" * 20)
        print(s["prompt"])
        print(f">>> {s['completion']}\n")
    return 0


# ----------------------------------------------------------------------------------
# generate


def cmd_generate(args: argparse.Namespace) -> int:
    from cookbook_core import dataset_io, discovery, storage
    from cookbook_core.generate import GenerateConfig, Source, generate, manifest_summary

    sources = [_parse_source(t) for t in args.template]
    names = [n for n, _ in sources]
    for n in names:
        discovery.get(n)  # unknown names fail here, with a suggestion
    per = params_for(names, args.param)
    cfg = GenerateConfig(
        sources=[Source(n, w, per[n]) for n, w in sources],
        n=args.n,
        seed=args.seed,
        format=args.format,
        token_space=args.token_space,
        token_space_size=args.token_space_size,
        workers=args.workers,
        max_fault_rate=args.max_fault_rate,
        layout=args.layout,
    )
    if args.out:
        storage.check_output(args.out, folder=True)
    out = Path(args.out) if args.out else dataset_io.datasets_root() / _default_name(cfg)
    bar = _progress_bar(args.n, "generate")
    try:
        manifest = generate(cfg, out, overwrite=args.overwrite, progress=bar.update_to)
    finally:
        bar.close()
    print(
        f"wrote {manifest['n']} samples to {out} ({manifest['bytes'] / 1e6:.1f} MB, "
        f"{manifest['samples_per_s']:.0f} samples/s)"
    )
    print(manifest_summary(manifest))
    return 0


def _default_name(cfg: Any) -> str:
    names = "+".join(s.template for s in cfg.sources)
    return f"{names}-n{cfg.n}-s{cfg.seed}"


class _Bar:
    def __init__(self, total: int, desc: str) -> None:
        from tqdm import tqdm

        # no monitor thread: a single-threaded process may fork its generation workers
        tqdm.monitor_interval = 0
        self._bar = tqdm(total=total, desc=desc, unit="samples", unit_scale=True, mininterval=0.5)

    def update_to(self, done: int, total: int) -> None:
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        self._bar.close()


def _progress_bar(total: int, desc: str) -> _Bar:
    return _Bar(total, desc)


# ----------------------------------------------------------------------------------
# parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cookbook",
        description="Cookbook Studio: programmatic data-generating templates, "
        "datasets, fine-tuning and analysis.",
        epilog="Workspace root: $COOKBOOK_HOME (default ./data). "
        "Example: cookbook generate --template document_qa -n 1000 --out data/datasets/dqa",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tp = sub.add_parser("templates", help="list, show and preview templates")
    tsub = tp.add_subparsers(dest="templates_command", required=True, metavar="ACTION")
    p = tsub.add_parser("list", help="every template (broken files included)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_templates_list)
    p = tsub.add_parser("show", help="docstring, parameters and ranges of one template")
    p.add_argument("name")
    p.add_argument("--source", action="store_true", help="also print the source file")
    p.set_defaults(func=cmd_templates_show)
    p = tsub.add_parser(
        "preview",
        help="print N samples with the rule's verdict",
        description="Preview a shipped template by NAME, or any template file with --file "
        "(run isolated in the sandbox, after static validation).",
    )
    p.add_argument("name", nargs="?", help="template name (with --file: which template in it)")
    p.add_argument("--file", help="a template file to run in the sandbox")
    p.add_argument("-n", type=int, default=5, help="number of samples (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter (repeatable)",
    )
    p.add_argument(
        "--token-space",
        default=None,
        help="tokenizer (default), tokenizer:PATH, words, words:gcide",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_templates_preview)
    p = tsub.add_parser("check", help="static validation of a template file (no code runs)")
    p.add_argument("path")
    p.set_defaults(func=cmd_templates_check)
    importlib.import_module("cookbook_core.cli.draft").add_templates_commands(tsub)

    g = sub.add_parser(
        "generate",
        help="write a dataset from one template or a weighted mixture",
        description="Write a dataset (JSONL/Parquet/HF folder + manifest.json). "
        "The same template, params, seed and index always give the same sample, "
        "whatever --workers is.",
    )
    g.add_argument(
        "--template",
        "-t",
        action="append",
        required=True,
        metavar="NAME[:WEIGHT]",
        help="template and relative weight (repeat for a mixture)",
    )
    g.add_argument("-n", type=int, required=True, help="number of samples (exact)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", help="output folder (default: <home>/datasets/<names>-n<N>-s<seed>)")
    g.add_argument("--format", choices=["jsonl", "parquet", "hf"], default="jsonl")
    g.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    g.add_argument(
        "--layout",
        choices=["compact", "full"],
        default="compact",
        help="compact (default): prompt, completion, meta, with a long input that the "
        "prompt holds (a document) stored once as a span of the prompt; full: also the "
        "chat-form messages and every meta field in full (for readers without cookbook)",
    )
    g.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="[NAME.]KEY=VALUE",
        help="parameter override; KEY=VALUE applies to every template that has KEY",
    )
    g.add_argument(
        "--token-space",
        default="tokenizer",
        help="tokenizer (default: the embedded model's word-like tokens), "
        "tokenizer:PATH, words, words:gcide",
    )
    g.add_argument(
        "--token-space-size",
        type=int,
        default=None,
        help="cut the token space to this many tokens (seeded by --seed)",
    )
    g.add_argument(
        "--max-fault-rate",
        type=float,
        default=0.01,
        help="stop when a template raises on more than this share of attempts",
    )
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    g.set_defaults(func=cmd_generate)

    for modname in EXTENSIONS:
        importlib.import_module(modname).add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from cookbook_core import paths, threads

    threads.configure_process()  # before anything imports torch
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        paths.check_home()  # a workspace root that cannot be created fails here, not mid-work
        return int(args.func(args) or 0)
    except BadInput as exc:
        print(f"cookbook: error: {exc}", file=sys.stderr)
        return 2
    except CookbookError as exc:
        print(f"cookbook: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cookbook: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
