"""The pipeline one drafted candidate goes through, each stage with one clear failure reason.

Stages, in order (a candidate stops at the first it fails):

1. ``extract``  code found in the answer (:mod:`.extract`); else "no code block".
2. ``static``   :func:`~cookbook_core.sandbox.runner.validate_source`: syntax
   errors, forbidden imports and calls, each with line and column.
3. ``preview``  ``n`` samples generated in the sandbox (bubblewrap, seccomp,
   limits).  A run that hits the CPU or wall-clock limit is a ``timeout``; an
   exception is reported with its type, message and line; a template without a
   ``@checker`` fails here too (its rule could not be checked).
4. ``checker``  the candidate's own checker, in a second sandboxed run, must accept
   every one of its own samples ("checker disagrees with its generator" otherwise)
   and reject corrupted answers (another sample's answer, the other yes/no label,
   another choice letter, the empty answer) at least ``min_reject`` of the time.
5. ``alignment`` the rule on real rows: the candidate's checker, in the sandbox,
   is asked about each real row's inputs (:mod:`.contracts`) with its gold answers
   and with one wrong answer.  *Alignment* is the share of rows for which the
   checker accepts a gold answer: how often the rule gives the real answer, the
   paper's gold-alignment statistic for a rule that is code.  Zero alignment fails;
   so does a rule that accepts every wrong answer (it tells nothing apart).  The
   share of wrong answers accepted is reported next to it and candidates are
   ranked by the *margin* (alignment minus wrong answers accepted), so a loose rule
   does not win by accepting everything.  No threshold above zero is imposed: the
   shipped templates' own rules, measured the same way, range from 0% (document_qa
   on SQuAD: real questions are not copied verbatim from the document) to about
   88% (entity_matching on Abt-Buy), and yes_no_qa on BoolQ accepts more wrong
   labels than gold ones.

Why measure the drafted rule this way: a drafted rule exists only as code, and
code from a model runs only in the sandbox, so the hand-written natural-text rules
of ``align.alignment`` (one per shipped template name) cannot apply to it; asking
its checker about real (inputs, gold answer) pairs inside the sandbox is the one
measurement that applies to any candidate, and applied to the shipped template of
the task (whose inputs have the same names) it gives a like-for-like baseline.
What it does not measure: whether a model fine-tuned on the template's data gets
better (that is an experiment), or whether the checker's rule is the generator's
(stage 4 only samples that).

Nothing here imports or executes candidate code in this process.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cookbook_core.drafting.contracts import RealRow
from cookbook_core.drafting.extract import extract_code
from cookbook_core.sandbox import runner as sandbox
from cookbook_core.sandbox.runner import Limits

STAGES = ("extract", "static", "preview", "checker", "alignment")
_FLIPS = {"yes": "no", "no": "yes", "true": "false", "false": "true"}


@dataclass
class Settings:
    """How hard the pipeline looks: samples, seed, sandbox limits, thresholds."""

    n_samples: int = 8
    seed: int = 0
    limits: Limits = field(default_factory=lambda: Limits(cpu_seconds=5, wall_seconds=15))
    min_reject: float = 0.75


@dataclass
class Outcome:
    """Where one candidate got to: the last stage passed, the failure, scores, samples."""

    source: str | None
    passed_stages: list[str] = field(default_factory=list)
    failed_stage: str | None = None
    reason: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    template_name: str | None = None

    @property
    def passed(self) -> bool:
        return self.failed_stage is None and STAGES[-1] in self.passed_stages

    @property
    def stage(self) -> str:
        """The stage reached: the failed one, or ``passed``."""
        return self.failed_stage or "passed"

    def fail(self, stage: str, reason: str) -> Outcome:
        self.failed_stage, self.reason = stage, reason
        return self

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "stage": self.stage}


def check_answer(
    answer: str,
    rows: Sequence[RealRow],
    settings: Settings,
    artifacts: Mapping[str, str] | None = None,
) -> Outcome:
    """The whole pipeline on a model's answer text (``artifacts``: name -> JSON text of
    the data files the template declares, parsed only in the sandbox)."""
    code = extract_code(answer)
    if code is None:
        return Outcome(None).fail("extract", "no code found in the answer (no ```python block)")
    out = check_source(code, rows, settings, artifacts)
    out.passed_stages.insert(0, "extract")
    return out


def check_source(
    source: str,
    rows: Sequence[RealRow],
    settings: Settings,
    artifacts: Mapping[str, str] | None = None,
) -> Outcome:
    """Stages 2-5 on template source code (see the module docstring)."""
    out = Outcome(source)
    problems = sandbox.validate_source(source)
    if problems:
        return out.fail("static", _static_reason(problems))
    out.passed_stages.append("static")

    res = sandbox.run_source(
        source,
        n=settings.n_samples,
        seed=settings.seed,
        limits=settings.limits,
        artifacts=artifacts,
    )
    if not res.ok:
        return out.fail("preview", _run_reason(res, "generating samples"))
    out.samples = res.samples
    declared = res.templates[0] if res.templates else {}
    out.template_name = declared.get("name")
    if not res.samples:
        return out.fail("preview", "the template produced no samples")
    if not declared.get("has_checker"):
        return out.fail("preview", "no @checker: the template's rule cannot be checked")
    out.passed_stages.append("preview")

    if not _own_samples(out, source, settings, artifacts):
        return out
    out.passed_stages.append("checker")
    if not _alignment(out, source, rows, settings, artifacts):
        return out
    out.passed_stages.append("alignment")
    return out


# ----------------------------------------------------------------------------------
# Reasons


def _static_reason(problems: Sequence[sandbox.Problem]) -> str:
    first = problems[0]
    kind = "syntax error" if first.message.startswith("syntax error") else "rejected"
    if "import" in first.message and "not allowed" in first.message:
        kind = "forbidden import"
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{kind} at line {first.line}, column {first.col}: {first.message}{more}"


def _run_reason(res: sandbox.SandboxResult, doing: str) -> str:
    where = f" (line {res.line})" if res.line else ""
    if res.error_type == "LimitExceeded":
        return f"timeout while {doing}: {res.message}"
    if res.error_type == "Crashed" and "SIGXCPU" in (res.message or ""):
        return f"timeout while {doing}: the CPU time limit was reached ({res.message})"
    return f"error while {doing}: {res.error_type}: {res.message}{where}"


# ----------------------------------------------------------------------------------
# Stage 4: the candidate's own checker


def corrupted(samples: Sequence[dict[str, Any]]) -> list[str]:
    """One wrong answer per sample: the flipped label, another choice letter, another
    sample's answer, or (when all answers are alike) the empty answer."""
    answers = [str(s["completion"]) for s in samples]
    letters = sorted({a.strip() for a in answers if len(a.strip()) == 1 and a.strip().isalpha()})
    out = []
    for i, own in enumerate(answers):
        norm = own.strip().lower()
        if norm in _FLIPS:
            flipped = _FLIPS[norm]
            out.append(flipped.capitalize() if own.strip()[:1].isupper() else flipped)
            continue
        if len(norm) == 1 and norm.isalpha():
            pool = [x for x in letters if x.lower() != norm] or [
                c for c in string.ascii_uppercase[:4] if c.lower() != norm
            ]
            out.append(pool[0])
            continue
        others = [a for a in answers if a.strip().lower() != norm and a.strip()]
        out.append(others[i % len(others)] if others else "")
    return out


def _own_samples(
    out: Outcome, source: str, settings: Settings, artifacts: Mapping[str, str] | None
) -> bool:
    verdicts = [s.get("follows_rule") for s in out.samples]
    rejected = [i for i, v in enumerate(verdicts) if v is not True]
    out.scores["self_accept"] = 1 - len(rejected) / len(verdicts)
    if rejected:
        i = rejected[0]
        out.fail(
            "checker",
            f"checker disagrees with its generator: it rejects {len(rejected)} of its own "
            f"{len(verdicts)} samples (e.g. sample {i}, answer "
            f"{_short(out.samples[i]['completion'])})",
        )
        return False
    wrong = corrupted(out.samples)
    asked = [
        {"completion": w, "meta": s["meta"]}
        for s, w in zip(out.samples, wrong, strict=True)
        if w.strip().lower() != str(s["completion"]).strip().lower()
    ]
    if not asked:
        out.fail("checker", "no corrupted answer could be made to test the checker")
        return False
    res = sandbox.check_source(source, asked, limits=settings.limits, artifacts=artifacts)
    if not res.ok:
        out.fail("checker", _run_reason(res, "checking corrupted answers"))
        return False
    accepted = sum(v["follows_rule"] is True for v in res.samples)
    out.scores["corrupt_reject"] = 1 - accepted / len(asked)
    if out.scores["corrupt_reject"] < settings.min_reject:
        out.fail(
            "checker",
            f"checker accepts corrupted answers: {accepted} of {len(asked)} wrong answers "
            f"pass its rule (needs at least {settings.min_reject:.0%} rejected)",
        )
        return False
    return True


# ----------------------------------------------------------------------------------
# Stage 5: the rule on real rows


def _alignment(
    out: Outcome,
    source: str,
    rows: Sequence[RealRow],
    settings: Settings,
    artifacts: Mapping[str, str] | None,
) -> bool:
    scores = measure_rows(source, rows, settings, artifacts)
    if "error" in scores:
        out.fail("alignment", scores.pop("error"))
        return False
    out.scores.update(scores)
    if scores["alignment"] == 0:
        out.fail(
            "alignment",
            f"zero alignment: the rule gives the real answer on 0 of {scores['rows']} real rows",
        )
        return False
    if scores["wrong_accept"] == 1.0:
        out.fail(
            "alignment",
            f"the rule accepts every wrong answer on real rows (and {scores['alignment']:.0%} "
            "of the gold answers): it does not tell real answers from wrong ones",
        )
        return False
    return True


def measure_rows(
    source: str,
    rows: Sequence[RealRow],
    settings: Settings,
    artifacts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A template's checker on real rows, in the sandbox: ``alignment`` (share of rows
    where it accepts a gold answer), ``wrong_accept`` (share of rows with a wrong answer
    where it accepts that), ``rows``; or ``{"error": reason}``.  Works for any template
    whose checker reads the contract's inputs (drafts and the shipped one alike)."""
    if not rows:
        return {"error": "no real rows to measure the rule on"}
    asked: list[dict[str, Any]] = []
    owner: list[tuple[int, bool]] = []  # (row index, is the wrong answer)
    for i, row in enumerate(rows):
        meta = {"parent": dict(row.inputs), "child": {}}
        for g in row.golds:
            asked.append({"completion": g, "meta": meta})
            owner.append((i, False))
        if row.wrong is not None:
            asked.append({"completion": row.wrong, "meta": meta})
            owner.append((i, True))
    limits = Limits(
        cpu_seconds=max(settings.limits.cpu_seconds, 10),
        wall_seconds=max(settings.limits.wall_seconds, 30.0),
        memory_mb=settings.limits.memory_mb,
    )
    try:
        res = sandbox.check_source(source, asked, limits=limits, artifacts=artifacts)
    except sandbox.SandboxRejected as exc:
        return {"error": f"rejected: {exc}"}
    if not res.ok:
        return {"error": _run_reason(res, "checking real rows")}
    gold_ok = [False] * len(rows)
    wrong_ok: dict[int, bool] = {}
    for (i, is_wrong), v in zip(owner, res.samples, strict=True):
        hit = v["follows_rule"] is True
        if is_wrong:
            wrong_ok[i] = hit
        elif hit:
            gold_ok[i] = True
    return {
        "alignment": sum(gold_ok) / len(rows),
        "wrong_accept": sum(wrong_ok.values()) / len(wrong_ok) if wrong_ok else None,
        "rows": len(rows),
    }


def _short(text: Any, width: int = 40) -> str:
    s = repr(str(text))
    return s if len(s) <= width else s[: width - 4] + "...'"
