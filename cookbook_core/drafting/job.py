"""The ``draft`` job kind: one drafting loop as a background job, and its run folder.

The studio's Draft tab (and anyone with the job store) submits a ``draft`` job so
the page never waits on a model and the run survives a page reload.
:func:`validate_job` checks the config before it is queued (the task's rows are
read and the prompt built, the endpoint is checked, a config that carries an API
key is refused); :func:`run_job` runs :meth:`~.loop.Drafting.run` in the worker and
writes, into the job's run folder (``<home>/runs/<job id>/``):

* ``prompt.txt``: the prompt the model was asked;
* ``draft.json``: the task, where its rows came from, the prompt's hash, the worked
  examples, the rows shown and measured, who answered, the shipped template
  measured on the same rows;
* ``candidates/<nnn>-<id>.json``: one file per candidate, written the moment it has
  been checked: its stage, reason, scores, samples, code and the model's whole
  answer (so a page shows candidates as they appear);
* ``summary.json``: the ranked table and how many candidates passed each stage.

The endpoint is one of: ``managed`` (the managed vLLM server for ``model``:
``cookbook serve start``), ``url`` (any OpenAI-compatible ``base_url``; the key, when
one is needed, is read in the worker from the environment variable named by
``api_key_env``) or ``in_process`` (the model loaded in the worker with
transformers).  No API key is ever part of a config, a file or a log.

:func:`read_run` reads a run folder back (also while the job runs);
:func:`save_from_run` saves one of its candidates through
:func:`~.saving.save_candidate`, which checks the exact text to be written again
in the sandbox, so a candidate file edited on disk cannot be saved unless it
passes.  What this module does not do: render anything (``studio``), or run
candidate code outside the sandbox.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookbook_core import storage
from cookbook_core.drafting import asking, saving
from cookbook_core.drafting.checks import Outcome, Settings
from cookbook_core.drafting.loop import Candidate, DraftConfig, Drafting, rank_key
from cookbook_core.errors import BadInput
from cookbook_core.sandbox.runner import Limits

ENDPOINTS = ("managed", "url", "in_process")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_INTS = {
    "examples": (0, 50, 3),
    "align_rows": (1, 5000, 200),
    "worked": (0, 5, 2),
    "k": (1, 64, 4),
    "rounds": (0, 10, 1),
    "seed": (0, 2**31 - 1, 0),
    "max_new_tokens": (1, 32768, 1024),
    "samples": (1, 100, 8),
    "cpu_seconds": (1, 120, 5),
}


# ----------------------------------------------------------------------------------
# Config


def _int(config: dict[str, Any], key: str) -> int:
    low, high, default = _INTS[key]
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise BadInput(f"{key} must be a whole number, got {value!r}")
    if not low <= int(value) <= high:
        raise BadInput(f"{key} must be between {low} and {high}, got {value}")
    return int(value)


def check_endpoint(endpoint: Any) -> dict[str, Any]:
    """The endpoint part of a config, checked: never a key, only a variable's name."""
    if not isinstance(endpoint, dict):
        raise BadInput("endpoint must be an object with kind managed, url or in_process")
    secret = [k for k in endpoint if "key" in k.lower() and k != "api_key_env"]
    if secret:
        raise BadInput(
            "a drafting config never holds an API key: give the NAME of the environment "
            "variable that holds it (api_key_env)"
        )
    kind = endpoint.get("kind")
    if kind not in ENDPOINTS:
        raise BadInput(f"endpoint kind must be one of {', '.join(ENDPOINTS)}, got {kind!r}")
    model = str(endpoint.get("model") or "default").strip() or "default"
    out: dict[str, Any] = {"kind": kind, "model": model}
    if kind == "url":
        url = str(endpoint.get("base_url") or "").strip()
        if not re.match(r"^https?://[^\s/]+", url):
            raise BadInput(f"base URL must start with http:// or https://, got {url!r}")
        env = str(endpoint.get("api_key_env") or "").strip() or None
        if env is not None and not _ENV_NAME.match(env):
            raise BadInput(  # the value is not repeated: it may be a pasted key
                "the API key variable must be the name of an environment variable "
                "(letters, digits, _), not the key itself"
            )
        served = str(endpoint.get("served_model") or "").strip() or None
        out.update(base_url=url, served_model=served, api_key_env=env)
    elif endpoint.get("base_url") or endpoint.get("api_key_env"):
        raise BadInput("base_url and api_key_env go with the url endpoint")
    return out


def draft_config(config: dict[str, Any]) -> DraftConfig:
    """The :class:`DraftConfig` of a (checked) job config."""
    top_k = config.get("top_k", 50)
    return DraftConfig(
        task=str(config["task"]),
        model=config["endpoint"]["model"],
        data_dir=config.get("data_dir"),
        examples=_int(config, "examples"),
        align_rows=_int(config, "align_rows"),
        description=config.get("description") or None,
        worked=_int(config, "worked"),
        include_own=bool(config.get("include_own", False)),
        k=_int(config, "k"),
        rounds=_int(config, "rounds"),
        seed=_int(config, "seed"),
        max_new_tokens=_int(config, "max_new_tokens"),
        temperature=float(config.get("temperature", 0.8)),
        top_k=int(top_k) if top_k else None,
        settings=Settings(
            n_samples=_int(config, "samples"),
            seed=_int(config, "seed"),
            limits=Limits(
                cpu_seconds=_int(config, "cpu_seconds"),
                wall_seconds=_int(config, "cpu_seconds") * 3.0,
            ),
        ),
        kind=config.get("kind") or None,
        pasted=config.get("pasted"),
    )


def validate_job(config: dict[str, Any]) -> dict[str, Any]:
    """Check a ``draft`` job's config and return the one to store (see the module
    docstring): the rows are read and the prompt built here, so a bad task, data
    folder or pasted row is refused before anything is queued."""
    if not isinstance(config, dict) or not str(config.get("task") or "").strip():
        raise BadInput("a draft job needs a task (a known task name, or a new task's name)")
    out = dict(config)
    out["task"] = str(config["task"]).strip()
    out["endpoint"] = check_endpoint(config.get("endpoint"))
    for key in _INTS:
        out[key] = _int(config, key)
    temperature = config.get("temperature", 0.8)
    if not isinstance(temperature, int | float) or not 0 <= float(temperature) <= 5:
        raise BadInput(f"temperature must be between 0 and 5, got {temperature!r}")
    out["temperature"] = float(temperature)
    if config.get("pasted") is not None:
        if not isinstance(config["pasted"], list):
            raise BadInput("pasted rows must be a list of objects")
        if config.get("data_dir"):
            raise BadInput("a new task's rows are pasted: give no data folder")
    else:  # recorded, so the rows can be read again when a candidate is saved
        from cookbook_core.eval import tasks as eval_tasks

        data_dir = config.get("data_dir") or eval_tasks.default_data_dir()
        if data_dir and str(data_dir) != "hub":
            data_dir = Path(str(data_dir)).expanduser().resolve()
        out["data_dir"] = str(data_dir) if data_dir else None
    cfg = draft_config(out)
    Drafting.prepare(cfg)  # reads the rows and builds the prompt: BadInput when it cannot
    if out["endpoint"]["kind"] == "managed":
        from cookbook_core.serve import server

        if server.running(out["endpoint"]["model"]) is None:
            raise BadInput(
                f"no managed model server is running for {out['endpoint']['model']!r}: start "
                "one (`cookbook serve start`, or the Alignment page), or choose another endpoint"
            )
    return out


# ----------------------------------------------------------------------------------
# Running


def open_asker(config: dict[str, Any], cfg: DraftConfig) -> asking.Asker:
    """The :class:`~.asking.Asker` for a job's endpoint."""
    ep = config["endpoint"]
    if ep["kind"] == "url":
        backend = asking.open_backend(
            ep["model"],
            base_url=ep["base_url"],
            served_model=ep.get("served_model"),
            api_key_env=ep.get("api_key_env"),
        )
    else:
        backend = asking.open_backend(
            ep["model"], backend="served" if ep["kind"] == "managed" else "transformers"
        )
    return asking.Asker(
        backend, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k
    )


def candidate_dict(c: Candidate) -> dict[str, Any]:
    """One candidate as written to its file (everything the Draft tab shows)."""
    o = c.outcome
    return {
        "id": c.id,
        "round": c.round,
        "parent": c.parent,
        "stage": o.stage,
        "passed": c.passed,
        "reason": o.reason,
        "passed_stages": list(o.passed_stages),
        "scores": dict(o.scores),
        "samples": list(o.samples),
        "template": o.template_name,
        "code": o.source,
        "answer": c.answer,
        "finish": c.finish,
        "answered_by": dict(c.answered_by),
        "history": list(c.history),
        "artifacts": dict(c.artifacts),
    }


def candidate_from_dict(d: dict[str, Any]) -> Candidate:
    """A :class:`Candidate` back from its file (what it claims; saving checks again)."""
    outcome = Outcome(
        d.get("code"),
        list(d.get("passed_stages") or []),
        None if d.get("passed") else (d.get("stage") or "extract"),
        d.get("reason"),
        dict(d.get("scores") or {}),
        list(d.get("samples") or []),
        d.get("template"),
    )
    return Candidate(
        str(d["id"]),
        int(d.get("round") or 0),
        d.get("parent"),
        str(d.get("answer") or ""),
        str(d.get("finish") or "given"),
        outcome,
        dict(d.get("answered_by") or {}),
        list(d.get("history") or []),
        {str(k): str(v) for k, v in (d.get("artifacts") or {}).items()},
    )


def _info(drafting: Drafting) -> dict[str, Any]:
    rows = drafting.rows
    return {
        "task": rows.task.name,
        "kind": rows.contract.kind,
        "new_task": drafting.cfg.pasted is not None,
        "data": rows.source,
        "prompt_hash": drafting.prompt_hash,
        "prompt_chars": len(drafting.prompt),
        "worked_examples": [e.name for e in drafting.examples],
        "rows_shown": len(rows.shown),
        "rows_measured": len(rows.measured),
        "answered_by": drafting.answered_by,
    }


def run_job(ctx: Any) -> dict[str, Any]:
    """Run a validated ``draft`` job, writing each candidate as soon as it is checked."""
    config = ctx.config
    run_dir = Path(ctx.run_dir)
    cfg = draft_config(config)
    drafting = Drafting.prepare(cfg)
    storage.write_text(run_dir / "prompt.txt", drafting.prompt)
    info = _info(drafting)
    storage.write_json(run_dir / "draft.json", info)
    folder = run_dir / "candidates"
    folder.mkdir(exist_ok=True)
    expected = [cfg.k]
    with ctx.interruptible():
        asker = open_asker(config, cfg)
    ask = asker.ask

    def interruptible_ask(*args: Any, **kwargs: Any) -> Any:
        with ctx.interruptible():  # a cancel while waiting on the model ends the job at once
            return ask(*args, **kwargs)

    asker.ask = interruptible_ask  # type: ignore[method-assign]

    def progress(event: str, **data: Any) -> None:
        ctx.check_cancelled()
        if event == "asking" and data["round"] > 0:
            expected[0] = len(drafting.candidates) + data["prompts"]
        if event == "asking":
            info["answered_by"] = drafting.answered_by
            storage.write_json(run_dir / "draft.json", info)
            print(f"round {data['round']}: asking for {data['prompts'] * data['k']} answers")
        if event == "candidate":
            c = data["candidate"]
            n = len(drafting.candidates)
            storage.write_json(folder / f"{n:03d}-{c.id}.json", candidate_dict(c), default=str)
            print(f"  {c.id}: {'passed' if c.passed else c.outcome.stage} {c.outcome.reason or ''}")
        ctx.progress(len(drafting.candidates), expected[0], unit="candidates", task=cfg.task)

    drafting.run(asker, progress=progress)
    info["baseline"] = drafting.baseline()
    storage.write_json(run_dir / "draft.json", info)
    summary = drafting.summary()
    storage.write_json(run_dir / "summary.json", summary, default=str)
    from cookbook_core.drafting import record

    ep = config["endpoint"]
    backend = {"managed": "served", "in_process": "transformers"}.get(ep["kind"])
    record.store(summary, record.command(cfg, backend, ep.get("base_url")))
    return {
        "status": "completed",
        "candidates": len(drafting.candidates),
        "passed": sum(c.passed for c in drafting.candidates),
        "best": summary["best"],
    }


# ----------------------------------------------------------------------------------
# Reading a run back, saving from it


@dataclass
class DraftRun:
    """A draft job's run folder as read now (the job may still be running)."""

    run_dir: Path
    config: dict[str, Any]
    info: dict[str, Any]
    candidates: list[Candidate]
    summary: dict[str, Any] | None

    def ranked(self) -> list[Candidate]:
        """Passing first, then the furthest stage, then the margin (as the CLI ranks)."""
        return sorted(self.candidates, key=rank_key)

    def table(self) -> list[dict[str, Any]]:
        return [{"rank": i, **c.row()} for i, c in enumerate(self.ranked(), 1)]

    def get(self, candidate_id: str) -> Candidate:
        for c in self.candidates:
            if c.id == candidate_id:
                return c
        raise BadInput(f"no candidate {candidate_id!r} in {self.run_dir}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_run(run_dir: str | Path) -> DraftRun:
    """A draft run folder: its config, info, the candidates written so far (in the
    order they were checked) and the summary once the job has finished."""
    run_dir = Path(run_dir)
    job = _read_json(run_dir / "job.json")
    if not isinstance(job, dict) or job.get("kind") != "draft":
        raise BadInput(f"{run_dir} is not the run folder of a draft job")
    candidates = []
    for f in sorted((run_dir / "candidates").glob("*.json")):
        d = _read_json(f)
        if isinstance(d, dict) and "id" in d:
            candidates.append(candidate_from_dict(d))
    info = _read_json(run_dir / "draft.json")
    summary = _read_json(run_dir / "summary.json")
    return DraftRun(
        run_dir,
        dict(job.get("config") or {}),
        info if isinstance(info, dict) else {},
        candidates,
        summary if isinstance(summary, dict) else None,
    )


def reopen(run: DraftRun) -> Drafting:
    """The run's drafting session rebuilt from its config (same rows, same split), with
    the prompt and baseline it recorded (for provenance)."""
    drafting = Drafting.prepare(draft_config(run.config))
    prompt = run.run_dir / "prompt.txt"
    if prompt.is_file():
        drafting.prompt = prompt.read_text(encoding="utf-8")
        drafting.prompt_hash = run.info.get("prompt_hash", drafting.prompt_hash)
    if isinstance(run.info.get("baseline"), dict):
        drafting._baseline = run.info["baseline"]
    drafting.candidates = list(run.candidates)
    return drafting


def save_from_run(run_dir: str | Path, candidate_id: str, folder: Path | None = None) -> Path:
    """Save one candidate of a draft run into the user's (untrusted) template folder,
    with provenance; :class:`~.saving.NotSaveable` unless it passes every stage again."""
    run = read_run(run_dir)
    candidate = run.get(candidate_id)
    if not candidate.passed:
        raise saving.NotSaveable(
            f"candidate {candidate.id} failed at stage {candidate.outcome.stage!r}: "
            f"{candidate.outcome.reason}; only a candidate that passed every stage can be saved"
        )
    return saving.save_candidate(reopen(run), candidate, folder)
