"""CLI subcommand ``cookbook templates artifact``: the data files templates declare.

* ``list TEMPLATE``: each declared artifact with its description and stored versions
  (SHA-256, who made it);
* ``draft TEMPLATE NAME``: a language model writes the JSON (the managed server, the
  model in this process, or any ``--base-url``), checked in the sandbox with the
  template's own code and checker, repaired up to ``--rounds`` times, saved as the next
  version when it passes;
* ``add TEMPLATE NAME FILE``: the same check for a file a person wrote.

Exit codes: 0 saved (or listed), 1 nothing passed, 2 bad input.  The work is in
``cookbook_core.artifacts`` and ``cookbook_core.drafting.artifact``.
"""

from __future__ import annotations

import argparse
from typing import Any


def cmd_list(args: argparse.Namespace) -> int:
    from cookbook_core import artifacts, discovery

    entry = discovery.find(args.template)
    if not entry.artifacts:
        print(f"{args.template} declares no artifacts")
        return 0
    for name in entry.artifacts:
        vs = artifacts.versions(entry.file, name)
        print(f"{name}: {len(vs)} version(s) in {artifacts.folder(entry.file)}")
        for v in vs:
            ref = artifacts.ref(entry.file, name, v)
            prov = artifacts.provenance(ref) or {}
            size = ref.path.stat().st_size
            made = f"made by {prov.get('made_by', '?')} {prov.get('date', '')}".rstrip()
            print(f"  v{v}  {size:>9,} bytes  sha256 {ref.sha256[:12]}  {made}")
    return 0


def _report(attempt: Any) -> None:
    status = "passed" if attempt.passed else f"failed at {attempt.stage}: {attempt.reason}"
    print(f"round {attempt.round}: {status}", flush=True)


def cmd_draft(args: argparse.Namespace) -> int:
    from cookbook_core.cli.draft import open_backend
    from cookbook_core.drafting import artifact, asking

    t = artifact.target(args.template, args.name)
    backend = open_backend(args)
    asker = asking.Asker(
        backend,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k or None,
    )
    done = artifact.draft(
        t,
        asker,
        rounds=args.rounds,
        seed=args.seed,
        n_samples=args.samples,
        answered_by=asking.describe_backend(backend),
        progress=_report,
    )
    if done.saved is None:
        print(f"nothing saved: no answer passed in {len(done.attempts)} round(s)")
        return 1
    print(
        f"saved {done.saved.path} (version {done.saved.version}, sha256 {done.saved.sha256[:12]})"
    )
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from cookbook_core.drafting import artifact

    t = artifact.target(args.template, args.name)
    got, ref = artifact.add(t, args.file, n_samples=args.samples)
    if ref is None:
        print(f"not saved: failed at {got.stage}: {got.reason}")
        return 1
    print(f"saved {ref.path} (version {ref.version}, sha256 {ref.sha256[:12]})")
    return 0


def add_templates_commands(tsub: Any) -> None:
    """Add ``artifact`` (list, draft, add) to the ``cookbook templates`` subcommands."""
    from cookbook_core.cli.draft import add_endpoint_args

    p = tsub.add_parser(
        "artifact",
        help="data files a template declares (list, draft with a model, add a file)",
        description="Artifacts are versioned JSON files stored beside a template "
        "(<stem>.artifacts/NAME.vN.json) and read with template_helpers.artifact(NAME). "
        "Drafted or added data is checked in the sandbox with the template's own code "
        "and checker before it is saved; datasets record the version and SHA-256 used.",
    )
    asub = p.add_subparsers(dest="artifact_command", required=True)
    a = asub.add_parser("list", help="declared artifacts and their stored versions")
    a.add_argument("template")
    a.set_defaults(func=cmd_list)

    a = asub.add_parser("draft", help="a language model writes the artifact's JSON")
    a.add_argument("template")
    a.add_argument("name", help="artifact name, as declared in @template(artifacts=...)")
    add_endpoint_args(a)
    a.add_argument("--rounds", type=int, default=1, help="repair rounds (default 1)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--max-new-tokens", type=int, default=1024)
    a.add_argument("--temperature", type=float, default=0.7)
    a.add_argument("--top-k", type=int, default=50, help="0: no top-k cut")
    a.add_argument("--samples", type=int, default=16, help="sandboxed samples checked")
    a.set_defaults(func=cmd_draft)

    a = asub.add_parser("add", help="check a JSON file in the sandbox and save it as a version")
    a.add_argument("template")
    a.add_argument("name")
    a.add_argument("file")
    a.add_argument("--samples", type=int, default=16, help="sandboxed samples checked")
    a.set_defaults(func=cmd_add)
