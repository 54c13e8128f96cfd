"""The drafting loop: ask for ``k`` candidates, check each, repair failures, rank them all.

:class:`Drafting` holds one drafting session's context: the task's rows (shown and
measured, :mod:`.contracts`), the prompt (:mod:`.prompts`), the pipeline settings
(:mod:`.checks`) and every candidate so far.  :meth:`Drafting.run` asks a model
(:mod:`.asking`) for ``k`` answers, puts each through the pipeline, then for up to
``rounds`` repair rounds sends every candidate that failed back to the model with
its error message (one answer per failed candidate, the same loop a person would
do), until all pass or the rounds are spent.  :meth:`Drafting.evaluate` puts one
answer text through the pipeline whoever wrote it (the CLI's model, or a stored
text).  :meth:`Drafting.table` ranks all candidates (passing first, then the
furthest stage reached, then the margin: alignment minus wrong answers accepted) with
each failure's reason; :meth:`Drafting.funnel` counts how many passed each stage.

The shipped template that stands for the task is measured on the same real rows
with the same sandboxed checker measurement (:meth:`Drafting.baseline`), so a
draft's alignment has a like-for-like reference.  What this module does not do:
save anything (:mod:`.saving`) or print (the CLI and the studio do).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cookbook_core import paths
from cookbook_core.drafting import contracts, prompts
from cookbook_core.drafting.asking import Answer, Asker, describe_backend
from cookbook_core.drafting.checks import STAGES, Outcome, Settings, check_answer, measure_rows
from cookbook_core.errors import BadInput

Progress = Callable[..., None]  # progress(event, **info)


@dataclass
class DraftConfig:
    """One drafting request (the CLI's and the studio's options)."""

    task: str
    model: str = "default"  # the model (or, with a base URL, its local tokenizer) asked
    data_dir: str | None = None
    examples: int = 3
    align_rows: int = 200
    description: str | None = None
    worked: int = 2
    include_own: bool = False
    k: int = 4
    rounds: int = 1
    seed: int = 0
    max_new_tokens: int = 1024
    temperature: float = 0.8
    top_k: int | None = 50
    settings: Settings = field(default_factory=Settings)
    # A new task (no data folder): its contract kind and pasted rows; ``task`` is then
    # its name and ``description`` (required) describes it.
    kind: str | None = None
    pasted: list[dict[str, Any]] | None = None

    def check(self) -> None:
        """Raise :class:`BadInput` for options that cannot work."""
        if self.k < 1 or self.k > 64:
            raise BadInput(f"-k must be between 1 and 64, got {self.k}")
        if self.rounds < 0 or self.rounds > 10:
            raise BadInput(f"--rounds must be between 0 and 10, got {self.rounds}")
        if self.examples < 0 or self.examples > 50:
            raise BadInput(f"--examples must be between 0 and 50, got {self.examples}")
        if self.worked < 0 or self.worked > 5:
            raise BadInput(f"--worked must be between 0 and 5, got {self.worked}")
        if self.align_rows < 1:
            raise BadInput(f"--align-rows must be >= 1, got {self.align_rows}")
        if not 1 <= self.settings.n_samples <= 100:
            raise BadInput(f"--samples must be between 1 and 100, got {self.settings.n_samples}")
        if self.max_new_tokens < 1:
            raise BadInput(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class Candidate:
    """One drafted answer and what the pipeline made of it."""

    id: str  # "c2" for the second first-round answer, "c2.r1" for its first repair
    round: int
    parent: str | None
    answer: str
    finish: str
    outcome: Outcome
    answered_by: dict[str, Any]
    history: list[str] = field(default_factory=list)  # earlier attempts of this line
    # the data files its code declares, drafted once by the same model: name -> JSON text
    artifacts: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.outcome.passed

    def row(self) -> dict[str, Any]:
        """The candidate as a table row."""
        s = self.outcome.scores
        return {
            "id": self.id,
            "round": self.round,
            "stage": self.outcome.stage,
            "passed": self.passed,
            "template": self.outcome.template_name,
            "alignment": s.get("alignment"),
            "wrong_accept": s.get("wrong_accept"),
            "margin": margin(s),
            "self_accept": s.get("self_accept"),
            "corrupt_reject": s.get("corrupt_reject"),
            "reason": self.outcome.reason or "",
        }


def margin(scores: dict[str, Any]) -> float | None:
    """Alignment minus the share of wrong answers accepted (None before alignment)."""
    if scores.get("alignment") is None:
        return None
    return float(scores["alignment"]) - float(scores.get("wrong_accept") or 0.0)


def rank_key(c: Candidate) -> tuple[Any, ...]:
    """Passing first, then the furthest stage, the larger margin, higher alignment."""
    depth = len(STAGES) if c.passed else STAGES.index(c.outcome.stage)
    s = c.outcome.scores
    m = margin(s)
    return (-depth, -(m if m is not None else -2.0), -(s.get("alignment") or 0.0), c.id)


class Drafting:
    """One drafting session (see the module docstring)."""

    def __init__(
        self,
        cfg: DraftConfig,
        rows: contracts.TaskRows,
        description: str,
        examples: list[prompts.WorkedExample],
    ) -> None:
        self.cfg = cfg
        self.rows = rows
        self.description = description
        self.examples = examples
        self.prompt = prompts.build_prompt(rows, description, examples)
        self.prompt_hash = prompts.prompt_hash(self.prompt)
        self.candidates: list[Candidate] = []
        self.answered_by: dict[str, Any] = {}
        self.elapsed_s = 0.0
        self._baseline: dict[str, Any] | None = None
        self._asker: Asker | None = None  # set by run(): also asked for declared artifacts

    @classmethod
    def prepare(cls, cfg: DraftConfig) -> Drafting:
        """Read the task's rows (or a new task's pasted rows) and build the prompt (no
        model yet)."""
        cfg.check()
        if cfg.pasted is not None:
            task = contracts.custom_task(cfg.task, cfg.kind or "", cfg.description or "")
            rows = contracts.custom_rows(task, cfg.pasted, examples=cfg.examples, seed=cfg.seed)
            description = (cfg.description or "").strip()
        else:
            rows = contracts.load_rows(
                cfg.task,
                cfg.data_dir,
                examples=cfg.examples,
                align_rows=cfg.align_rows,
                seed=cfg.seed,
            )
            description = contracts.read_description(cfg.description, rows.task)
        examples = prompts.worked_examples(rows, cfg.worked, include_own=cfg.include_own)
        return cls(cfg, rows, description, examples)

    # -- one answer -----------------------------------------------------------------

    def evaluate(
        self,
        answer: str,
        *,
        answered_by: dict[str, Any] | None = None,
        finish: str = "given",
        parent: Candidate | None = None,
        index: int | None = None,
        artifacts: dict[str, str] | None = None,
    ) -> Candidate:
        """Put one answer text through the pipeline and keep it as a candidate.

        ``artifacts`` (name -> JSON text) are the data files the code declares; when
        None and the loop has a model (:meth:`run`), each declared one is asked for
        once (:meth:`draft_artifacts`)."""
        missing: list[str] = []
        if artifacts is None:
            artifacts, missing = self.draft_artifacts(answer)
        outcome = check_answer(answer, self.rows.measured, self.cfg.settings, artifacts)
        if missing and not outcome.passed and outcome.stage == "preview":
            outcome.reason = (
                f"artifact {missing[0]!r}: the model's answer held no JSON ({outcome.reason})"
            )
        if not outcome.passed and finish == "length" and outcome.reason:
            outcome.reason += " (the answer was cut off at the token limit)"
        if parent is None:
            n = index if index is not None else sum(c.parent is None for c in self.candidates) + 1
            cid, rnd, history = f"c{n}", 0, []
        else:
            rnd = parent.round + 1
            cid = f"{parent.id.split('.')[0]}.r{rnd}"
            history = [
                *parent.history,
                f"round {parent.round}: {parent.outcome.stage} - "
                f"{parent.outcome.reason or 'passed'}",
            ]
        c = Candidate(
            cid,
            rnd,
            parent.id if parent else None,
            answer,
            finish,
            outcome,
            dict(answered_by or {"model": "none (answer given as text)"}),
            history,
            dict(artifacts),
        )
        self.candidates.append(c)
        return c

    def draft_artifacts(self, answer: str) -> tuple[dict[str, str], list[str]]:
        """Ask the loop's model once for each artifact the answer's code declares: the
        JSON texts found (never parsed here) and the names with no JSON in the answer.
        Nothing is asked without a model (a stored answer) or declarations."""
        from cookbook_core.discovery import declared_artifacts
        from cookbook_core.drafting import artifact
        from cookbook_core.drafting.extract import extract_code

        asker = self._asker
        code = extract_code(answer) if asker is not None else None
        declared = declared_artifacts(code) if code else {}
        texts: dict[str, str] = {}
        for i, (name, desc) in enumerate(sorted(declared.items())):
            ask = artifact.prompt_for(name, desc, code or "")
            got = asker.ask([ask], 1, self.cfg.seed * 7919 + i)[0][0]  # type: ignore[union-attr]
            text = artifact.extract_json(got.text)
            if text is not None:
                texts[name] = text
        return texts, [n for n in sorted(declared) if n not in texts]

    # -- the loop -------------------------------------------------------------------

    def run(self, asker: Asker, progress: Progress | None = None) -> list[Candidate]:
        """Ask for ``k`` candidates, check them, repair failures for up to ``rounds``."""
        started = time.perf_counter()
        note = progress or (lambda *a, **k: None)
        self._asker = asker
        self.answered_by = {"model": self.cfg.model, **describe_backend(asker.backend)}
        note("prompt", chars=len(self.prompt), prompt_hash=self.prompt_hash)
        note("asking", round=0, prompts=1, k=self.cfg.k)
        answers = asker.ask([self.prompt], self.cfg.k, self.cfg.seed)[0]
        active = []
        for i, a in enumerate(answers, 1):
            c = self._evaluate_answer(a, None, i)
            note("candidate", candidate=c)
            if not c.passed:
                active.append(c)
        for r in range(1, self.cfg.rounds + 1):
            if not active:
                break
            note("asking", round=r, prompts=len(active), k=1)
            repairs = [
                prompts.repair_prompt(
                    self.prompt, c.outcome.source or c.answer, c.outcome.reason or ""
                )
                for c in active
            ]
            answered = asker.ask(repairs, 1, self.cfg.seed * 1000 + r)
            nxt = []
            for c, got in zip(active, answered, strict=True):
                new = self._evaluate_answer(got[0], c, None)
                note("candidate", candidate=new)
                if not new.passed:
                    nxt.append(new)
            active = nxt
        self.elapsed_s = time.perf_counter() - started
        note("done", passed=sum(c.passed for c in self.candidates), total=len(self.candidates))
        return self.candidates

    def _evaluate_answer(self, a: Answer, parent: Candidate | None, index: int | None) -> Candidate:
        by = dict(self.answered_by)
        if a.prompt_truncated:
            by["prompt_truncated"] = True
        return self.evaluate(a.text, answered_by=by, finish=a.finish, parent=parent, index=index)

    # -- results --------------------------------------------------------------------

    def ranked(self) -> list[Candidate]:
        return sorted(self.candidates, key=rank_key)

    def best(self) -> Candidate | None:
        """The best passing candidate, or None."""
        ranked = self.ranked()
        return ranked[0] if ranked and ranked[0].passed else None

    def table(self) -> list[dict[str, Any]]:
        """Every candidate, ranked, with its stage, scores and failure reason."""
        return [{"rank": i, **c.row()} for i, c in enumerate(self.ranked(), 1)]

    def funnel(self) -> dict[str, int]:
        """How many candidates (all attempts) passed each stage, plus totals."""
        out = {"candidates": len(self.candidates)}
        for s in STAGES:
            out[s] = sum(s in c.outcome.passed_stages for c in self.candidates)
        out["first_round_passed"] = sum(c.passed for c in self.candidates if c.round == 0)
        return out

    def baseline(self) -> dict[str, Any] | None:
        """The shipped template for the task, measured like a draft on the same rows."""
        if self._baseline is not None:
            return self._baseline
        name = contracts.SHIPPED_FOR_TASK.get(self.rows.task.name)
        if name is None:
            return None
        source = (paths.SHIPPED_TEMPLATES / f"{name}.py").read_text(encoding="utf-8")
        self._baseline = {
            "template": name,
            **measure_rows(source, self.rows.measured, self.cfg.settings),
        }
        return self._baseline

    def summary(self) -> dict[str, Any]:
        """Everything a report needs (JSON-ready): task, prompt, model, funnel, table."""
        best = self.best()
        return {
            "task": self.rows.task.name,
            "data": self.rows.source,
            "prompt_hash": self.prompt_hash,
            "prompt_chars": len(self.prompt),
            "worked_examples": [e.name for e in self.examples],
            "rows_shown": len(self.rows.shown),
            "rows_measured": len(self.rows.measured),
            "answered_by": self.answered_by,
            "k": self.cfg.k,
            "rounds": self.cfg.rounds,
            "seed": self.cfg.seed,
            "funnel": self.funnel(),
            "table": self.table(),
            "best": best.id if best else None,
            "baseline": self.baseline(),
            "elapsed_s": round(self.elapsed_s, 1),
        }
