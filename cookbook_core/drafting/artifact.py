"""Drafting a template's data artifact with a language model, checked in the sandbox.

A template declares an artifact with a one-line description of its JSON
(``@template(..., artifacts={"rhymes": "..."})``, see :mod:`cookbook_core.artifacts`).
:func:`draft` asks a model once per round for that JSON (the prompt holds the
description, the template's source and, when one exists, the start of the current
version), takes the JSON text out of the answer (:func:`extract_json`, no parsing
here), and checks it with :func:`check`: the template runs **inside the sandbox**
with the candidate (the child parses it; bad JSON, a template that fails on it, or
samples its own checker rejects are each one reason), and only a candidate that
passes is saved as the next version beside the template, with provenance (model,
prompt hash, date, what was checked).  A failed round is sent back with its reason
for up to ``rounds`` repair rounds.  :func:`add` puts a JSON file a person wrote
through the same check.

What this does not do: draft template code (:mod:`.loop`), or parse the candidate
outside the sandbox.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cookbook_core import artifacts, discovery
from cookbook_core.errors import BadInput
from cookbook_core.sandbox import runner
from cookbook_core.templates import TemplateError

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[ \t]*$", re.MULTILINE)
EXCERPT_CHARS = 1500  # of the current version, shown to the model as the shape to follow


@dataclass
class Attempt:
    """One round: the answer, the JSON text taken from it, where it stopped and why."""

    round: int
    answer: str
    text: str | None
    stage: str  # "extract", "sandbox", "checker" or "passed"
    reason: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.stage == "passed"


@dataclass
class Target:
    """The template an artifact belongs to, as read from its file (never imported)."""

    template: str
    name: str
    description: str
    file: Path
    source: str
    trusted: bool
    declared: tuple[str, ...] = ()  # every artifact the template declares (this one too)


def target(template: str, name: str) -> Target:
    """The template ``template`` and its declared artifact ``name`` (BadInput otherwise)."""
    entry = discovery.find(template)
    if not entry.ok:
        raise BadInput(f"template {template!r} ({entry.file}) does not load: {entry.error}")
    if name not in entry.artifacts:
        declared = ", ".join(entry.artifacts) or "none"
        raise BadInput(
            f"template {template!r} declares no artifact {name!r} (declared: {declared}); "
            f'add it to @template(..., artifacts={{"{name}": "what the JSON holds"}})'
        )
    source = entry.file.read_text(encoding="utf-8")
    found = runner.run_source(
        source, name=template, n=0, validate=not entry.trusted, artifacts={}
    )  # the description comes from the template itself, in the sandbox
    if not found.ok:
        raise BadInput(f"template {template!r} does not load in the sandbox: {found.error}")
    desc = next(t for t in found.templates if t["name"] == template)["artifacts"].get(name, "")
    return Target(template, name, desc, entry.file, source, entry.trusted, entry.artifacts)


def prompt(t: Target) -> str:
    """What the model is asked: the description, the template code, the current shape."""
    current = None
    if artifacts.versions(t.file, t.name):
        _, current = artifacts.latest_texts(t.file, (t.name,), t.template)[t.name]
    return prompt_for(t.name, t.description, t.source, t.file.name, current)


def prompt_for(
    name: str, description: str, source: str, filename: str = "", current: str | None = None
) -> str:
    """The request for artifact ``name`` of the template ``source`` (also used by the
    template drafting loop for a candidate that declares one)."""
    where = f" ({filename})" if filename else ""
    parts = [
        f'Write the data file "{name}" that the template below reads with artifact("{name}").',
        f"What it must hold: {description}",
        "Answer with the JSON only, inside one ```json code fence. Use many real entries; "
        "every entry must work with the template's code and pass its checker.",
        f"The template{where}:\n```python\n{source.strip()}\n```",
    ]
    if current is not None:
        parts.append(f"The start of the current version:\n```json\n{current[:EXCERPT_CHARS]}\n```")
    return "\n\n".join(parts)


def repair_prompt(base: str, attempt: Attempt) -> str:
    """The prompt again, with the failed answer and its reason."""
    shown = (attempt.text or attempt.answer)[:EXCERPT_CHARS]
    return (
        f"{base}\n\nYour previous answer began:\n```\n{shown}\n```\n"
        f"It failed ({attempt.stage}): {attempt.reason}\nWrite a corrected JSON file."
    )


def extract_json(answer: str) -> str | None:
    """The JSON text in ``answer``: the first fenced block (a ``json`` one preferred), else
    the span from the first ``[`` or ``{`` to the last ``]`` or ``}``.  Not parsed here."""
    fences = list(_FENCE.finditer(answer or ""))
    blocks = [
        (fences[i].group(1).lower(), answer[fences[i].end() + 1 : fences[i + 1].start()])
        for i in range(0, len(fences) - 1, 2)
    ]
    for lang, body in sorted(blocks, key=lambda b: b[0] != "json"):
        if body.strip() and lang in ("json", ""):
            return body.strip()
    starts = [i for i in (answer.find("["), answer.find("{")) if i >= 0] if answer else []
    if not starts:
        return None
    end = max(answer.rfind("]"), answer.rfind("}"))
    text = answer[min(starts) : end + 1].strip()
    return text or None


def check(t: Target, text: str, *, n_samples: int = 16, seed: int = 0) -> Attempt:
    """Run the template with ``text`` as its artifact, in the sandbox: the child parses
    the JSON, the template draws ``n_samples`` samples, its checker judges each."""
    if len(text.encode("utf-8")) > artifacts.MAX_BYTES:
        return Attempt(0, "", text, "extract", f"larger than {artifacts.MAX_BYTES:,} bytes")
    others = artifacts.latest_texts(t.file, tuple(n for n in t.declared if n != t.name), t.template)
    given = {n: txt for n, (_, txt) in others.items()} | {t.name: text}
    res = runner.run_source(
        t.source, name=t.template, n=n_samples, seed=seed, validate=not t.trusted, artifacts=given
    )
    if not res.ok:
        return Attempt(0, "", text, "sandbox", res.error)
    rejected = [s for s in res.samples if s.get("follows_rule") is False]
    if rejected:
        return Attempt(
            0,
            "",
            text,
            "checker",
            f"the template's checker rejects {len(rejected)} of its {len(res.samples)} "
            "samples made with this data",
            res.samples,
        )
    return Attempt(0, "", text, "passed", "", res.samples)


def _save(t: Target, attempt: Attempt, provenance: dict[str, Any]) -> artifacts.ArtifactRef:
    assert attempt.passed and attempt.text is not None
    checked = {"samples": len(attempt.samples), "checker_accepts_all": True}
    return artifacts.save(t.file, t.name, attempt.text, {**provenance, "checked": checked})


@dataclass
class Drafted:
    """The rounds of one drafting run and the version saved (None when none passed)."""

    target: Target
    attempts: list[Attempt]
    saved: artifacts.ArtifactRef | None


def draft(
    t: Target,
    asker: Any,
    *,
    rounds: int = 1,
    seed: int = 0,
    n_samples: int = 16,
    answered_by: dict[str, Any] | None = None,
    progress: Callable[[Attempt], None] | None = None,
) -> Drafted:
    """Ask ``asker`` (a :class:`~cookbook_core.drafting.asking.Asker`) for the artifact,
    check each answer in the sandbox, repair up to ``rounds`` times, save the first that
    passes."""
    if not 0 <= rounds <= 10:
        raise BadInput(f"--rounds must be between 0 and 10, got {rounds}")
    base = prompt(t)
    ask = base
    attempts: list[Attempt] = []
    for r in range(rounds + 1):
        answer = asker.ask([ask], k=1, seed=seed + r)[0][0].text
        text = extract_json(answer)
        if text is None:
            got = Attempt(r, answer, None, "extract", "no JSON in the answer")
        else:
            got = check(t, text, n_samples=n_samples, seed=seed)
            got.round, got.answer = r, answer
        attempts.append(got)
        if progress is not None:
            progress(got)
        if got.passed:
            ref = _save(
                t,
                got,
                {
                    "made_by": "model",
                    "model": answered_by or {},
                    "prompt_sha256": hashlib.sha256(ask.encode()).hexdigest(),
                    "round": r,
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            )
            return Drafted(t, attempts, ref)
        ask = repair_prompt(base, got)
    return Drafted(t, attempts, None)


def add(
    t: Target, path: Path, *, n_samples: int = 16
) -> tuple[Attempt, artifacts.ArtifactRef | None]:
    """Check a JSON file a person wrote like a drafted one; save it as the next version
    when it passes."""
    try:
        text = artifacts.read_bytes(Path(path)).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"{path} is not UTF-8 text: {exc}") from None
    got = check(t, text, n_samples=n_samples)
    if not got.passed:
        return got, None
    prov = {
        "made_by": "file",
        "source_file": str(Path(path).resolve()),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return got, _save(t, got, prov)
