"""Saving a drafted template: provenance in its docstring, only if it passed every stage.

:func:`save_candidate` writes one candidate into the user's template folder
(``<COOKBOOK_HOME>/templates`` by default: untrusted, so the saved draft is listed by
parsing and runs only in the sandbox) through
:func:`~cookbook_core.sandbox.runner.save_template` (static validation, atomic write,
the previous version kept under ``.history/``, trusted folders refused).  Before
writing it:

* refuses a candidate that failed any stage (:class:`NotSaveable`, with its stage
  and reason);
* adds provenance to the module docstring (:func:`stamp`): the model and backend
  that answered, the prompt's hash, the date, the scores on real rows next to the
  shipped template's, and the candidate's repair history;
* runs the whole pipeline again on the exact text it is about to write (the
  stamped source), in the sandbox, so nothing that has not passed can be written,
  whoever built the :class:`~cookbook_core.drafting.loop.Candidate`;
* refuses a template name that another template file already declares (two
  declarations of one name break template discovery).

The file name is the template's declared name.  API keys never reach provenance:
only the model name, backend kind, URL and served name are written.  What this
module does not do: make a saved draft trusted (a person reviews it and lists its
folder in ``COOKBOOK_TRUSTED_TEMPLATES``).
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path
from typing import Any

from cookbook_core import artifacts, discovery, paths
from cookbook_core.drafting.checks import check_source
from cookbook_core.drafting.loop import Candidate, Drafting
from cookbook_core.errors import BadInput
from cookbook_core.sandbox import runner as sandbox


class NotSaveable(BadInput):
    """The candidate did not pass every stage, so it is not written anywhere."""


def _clean(value: Any) -> str:
    text = " ".join(str(value).split())
    return "".join(ch for ch in text if ch.isprintable() and ch not in "{}\\\"'")[:200]


def _pct(x: Any) -> str:
    return f"{x:.1%}" if isinstance(x, (int, float)) else "n/a"


def provenance_lines(drafting: Drafting, candidate: Candidate, when: dt.datetime) -> list[str]:
    """The provenance block written into a saved draft's docstring."""
    s = candidate.outcome.scores
    by = ", ".join(f"{_clean(k)}={_clean(v)}" for k, v in candidate.answered_by.items())
    rows = drafting.rows
    lines = [
        "Provenance (written by `cookbook templates draft`):",
        f"- drafted by: {by}",
        f"- prompt: sha256 {drafting.prompt_hash}; worked examples: "
        f"{', '.join(e.name for e in drafting.examples) or 'none'}; "
        f"{len(rows.shown)} real rows of {rows.task.name} shown",
        f"- date: {when.strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"- candidate: {candidate.id} (round {candidate.round})",
        f"- scores on {s.get('rows', 0)} real rows of {rows.task.name} not shown in the prompt: "
        f"alignment {_pct(s.get('alignment'))} (checker accepts the gold answer), wrong "
        f"answers accepted {_pct(s.get('wrong_accept'))}; own samples accepted "
        f"{_pct(s.get('self_accept'))}, corrupted answers rejected "
        f"{_pct(s.get('corrupt_reject'))}",
    ]
    base = drafting.baseline()
    if base and "alignment" in base:
        lines.append(
            f"- shipped {base['template']} on the same rows: alignment "
            f"{_pct(base['alignment'])}, wrong answers accepted {_pct(base.get('wrong_accept'))}"
        )
    history = [*candidate.history, f"round {candidate.round}: passed"]
    lines.append("- history: " + "; ".join(_clean(h) for h in history))
    lines.append("Untrusted model output: it runs only in the sandbox until a person reviews it.")
    return lines


def stamp(source: str, lines: list[str]) -> str:
    """``source`` with ``lines`` appended to its module docstring (one is added when
    it has none)."""
    tree = ast.parse(source)
    text = "\n".join(lines)
    body = tree.body
    first = body[0] if body else None
    src_lines = source.split("\n")
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
        and first.col_offset == 0
        and first.end_lineno is not None
        and first.end_col_offset is not None
        and not src_lines[first.end_lineno - 1][first.end_col_offset :].strip()
    ):
        doc = ast.get_docstring(tree) or ""
        new = _docstring(f"{doc}\n\n{text}" if doc else text)
        return "\n".join([*src_lines[: first.lineno - 1], new, *src_lines[first.end_lineno :]])
    return _docstring(text) + "\n\n" + source


def _docstring(text: str) -> str:
    safe = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'"""{safe}\n"""'


def save_candidate(
    drafting: Drafting,
    candidate: Candidate,
    folder: Path | None = None,
    *,
    now: dt.datetime | None = None,
) -> Path:
    """Write a passing candidate, stamped with provenance, and return its path."""
    if not candidate.passed or candidate.outcome.source is None:
        raise NotSaveable(
            f"candidate {candidate.id} failed at stage {candidate.outcome.stage!r}: "
            f"{candidate.outcome.reason}; only a candidate that passed every stage can be saved"
        )
    when = now or dt.datetime.now(dt.UTC)
    stamped = stamp(candidate.outcome.source, provenance_lines(drafting, candidate, when))
    again = check_source(
        stamped, drafting.rows.measured, drafting.cfg.settings, candidate.artifacts
    )
    if not again.passed:
        raise NotSaveable(
            f"candidate {candidate.id} did not pass again as it would be saved: "
            f"{again.stage}: {again.reason}"
        )
    name = again.template_name or ""
    folder = (folder or paths.user_templates_dir()).resolve()
    target = folder / f"{name}.py"
    dirs = [*paths.template_dirs(), folder]
    for entry in discovery.scan(list(dict.fromkeys(dirs))):
        if entry.name == name and entry.file.resolve() != target:
            raise BadInput(
                f"a template named {name!r} already exists in {entry.file}: rename the draft "
                "or remove that file before saving"
            )
    path = sandbox.save_template(name, stamped, folder)
    for art, text in sorted(candidate.artifacts.items()):  # checked with it just above
        artifacts.save(
            path,
            art,
            text,
            {
                "made_by": "model",
                "model": candidate.answered_by,
                "drafted_with": f"candidate {candidate.id}",
                "date": when.isoformat(timespec="seconds"),
            },
        )
    return path


def save_best(drafting: Drafting, folder: Path | None = None) -> tuple[Candidate, Path]:
    """Save the best passing candidate; :class:`NotSaveable` with every reason if none passed."""
    best = drafting.best()
    if best is None:
        reasons = "; ".join(
            f"{c.id}: {c.outcome.stage} - {c.outcome.reason}" for c in drafting.ranked()
        )
        raise NotSaveable(f"no candidate passed every stage, nothing saved ({reasons or 'none'})")
    return best, save_candidate(drafting, best, folder)
