"""The ``cookbook`` command: a thin argparse front over the library.

Subcommands here: ``templates list|show|preview`` and ``generate``.  Other modules
add their own subcommands through :data:`EXTENSIONS` (each exposes
``add_commands(subparsers)``).  Errors the user can fix (:class:`BadInput`) print one
clear message and exit with code 2; failures during work (:class:`CookbookError`)
exit with code 1; Ctrl-C exits with 130, and a SIGTERM during ``generate``
(:func:`sigterm_as_interrupt`) cleans up the same way and exits with 143.  No heavy
import happens before a subcommand needs it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
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


class Terminated(KeyboardInterrupt):
    """A SIGTERM, raised like Ctrl-C so that the same clean-up runs (exit code 143)."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread (and
    later SIGTERMs are ignored until the clean-up is done); the old handler comes back
    after.  Outside the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


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
    has it); ``NAME.key=value`` goes to template NAME only.  An untrusted template's
    parameters come from the sandbox (it is never imported here).
    """
    from cookbook_core import discovery
    from cookbook_core.sandbox.generation import template_for

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
        owners = [n for n in template_names if key in template_for(n).params]
        if not owners:
            known = sorted({p for n in template_names for p in template_for(n).params})
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


def generate_config(args: argparse.Namespace) -> Any:
    """The :class:`~cookbook_core.generate_config.GenerateConfig` of ``cookbook generate``:
    every declared flag, plus the sources from ``--template`` and ``--param``."""
    from cookbook_core import configs
    from cookbook_core.generate_config import GenerateConfig, Source
    from cookbook_core.sandbox.generation import template_for

    sources = [_parse_source(t) for t in args.template]
    names = [n for n, _ in sources]
    for n in names:
        template_for(n)  # unknown names fail here, with a suggestion; untrusted: sandboxed
    per = params_for(names, args.param)
    return configs.from_args(
        GenerateConfig, args, sources=[Source(n, w, per[n]) for n, w in sources]
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from cookbook_core import dataset_io, storage
    from cookbook_core.generate import generate, manifest_summary

    cfg = generate_config(args)
    ray = None
    if getattr(args, "executor", "local") == "ray":
        from cookbook_core import generate_ray, raylink

        raylink.import_ray()
        ray = generate_ray.RayGenerate(address=args.address)
    elif getattr(args, "address", None):
        raise BadInput("--address needs --executor ray")
    if args.out:
        storage.check_output(args.out, folder=True)
    out = Path(args.out) if args.out else dataset_io.datasets_root() / _default_name(cfg)
    bar: _Bar | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:  # from the first block on: a refused run prints only its error
            bar = _progress_bar(total, "generate")
        bar.update_to(done, total)

    try:
        with sigterm_as_interrupt():  # the hidden temporary folder is removed, as on Ctrl-C
            manifest = generate(cfg, out, overwrite=args.overwrite, progress=progress, ray=ray)
    finally:
        if bar is not None:
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
    from cookbook_core import configs
    from cookbook_core.generate_config import GenerateConfig

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
    importlib.import_module("cookbook_core.cli.artifact").add_templates_commands(tsub)

    g = sub.add_parser(
        "generate",
        help="write a dataset from one template or a weighted mixture",
        description="Write a dataset (JSONL/Parquet/HF folder + manifest.json). "
        "The same template, params, seed and index always give the same sample, "
        "whatever --workers is. Free disk space is checked first (bytes per sample "
        "estimated from the first 64 samples of each template); templates in untrusted "
        "folders run only inside the sandbox, writing the same bytes.",
    )
    g.add_argument(
        "--template",
        "-t",
        action="append",
        required=True,
        metavar="NAME[:WEIGHT]",
        help="template and relative weight (repeat for a mixture)",
    )
    configs.add_arguments(g, GenerateConfig)  # every option, as declared in generate_config
    g.add_argument("--out", help="output folder (default: <home>/datasets/<names>-n<N>-s<seed>)")
    g.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="[NAME.]KEY=VALUE",
        help="parameter override; KEY=VALUE applies to every template that has KEY",
    )
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    g.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: --workers processes here (default); ray: the blocks as Ray tasks, the "
        "same bytes (the output folder must be on a filesystem every node sees)",
    )
    g.add_argument(
        "--address",
        default=None,
        help="Ray cluster for --executor ray: auto or HOST:PORT (default: $RAY_ADDRESS, "
        "else a private local cluster)",
    )
    g.set_defaults(func=cmd_generate)

    for modname in EXTENSIONS:
        importlib.import_module(modname).add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from cookbook_core import paths, threads

    threads.configure_process()  # before anything imports torch
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False):
        # --quiet also silences the libraries' own bars ("Loading weights", the embedded
        # model's one-time conversion): transformers and huggingface_hub read the first
        # when they are imported, tqdm reads the second for every bar.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        paths.check_home()  # a workspace root that cannot be created fails here, not mid-work
        return int(args.func(args) or 0)
    except BadInput as exc:
        print(f"cookbook: error: {exc}", file=sys.stderr)
        return 2
    except CookbookError as exc:
        print(f"cookbook: failed: {exc}", file=sys.stderr)
        return 1
    except Terminated:
        print("cookbook: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("cookbook: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
