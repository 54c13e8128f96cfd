"""The Templates page's Draft tab, drawn with Streamlit: a language model drafts templates.

:func:`render` draws the whole tab: the request (a known task, or a new task's name,
kind, description and pasted rows; the endpoint: the managed local server, a base
URL with the *name* of the environment variable holding its key, or the embedded
model in the job; ``k`` candidates and repair rounds), submitted as a ``draft``
background job; the run's candidates as they appear (a live fragment: status,
scores, reasons), one candidate's samples, code, model answer and diff against
another candidate or a shipped template (the closest by default); **Save** for a
candidate that passed every stage (into the user's untrusted template folder, with
provenance); then one click each to preview the saved template in the sandbox,
generate a dataset with it, and open the Training page with that dataset selected.

Widget keys start with ``dr_``.  What it does not do: compute tables or configs
(``studio.drafting``), run candidate code (only the sandbox does, in the job and
when saving or previewing), or ever take an API key's value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from cookbook_core import discovery, paths
from cookbook_core.drafting import contracts
from cookbook_core.drafting import job as draft_job
from cookbook_core.errors import CookbookError
from cookbook_core.eval import tasks as eval_tasks
from cookbook_core.jobs import store as jobs
from cookbook_core.sandbox import runner as sandbox
from cookbook_core.studio import drafting as sd
from cookbook_core.studio import jobs as studio_jobs
from cookbook_core.studio import widgets

ss = st.session_state
SAMPLES_SHOWN = 3


def _samples(samples: list[dict[str, Any]], limit: int = SAMPLES_SHOWN) -> None:
    for i, s in enumerate(samples[:limit]):
        ok = s.get("follows_rule")
        verdict = "follows its rule" if ok else "breaks its rule"
        st.markdown(f"**Sample {i}** · {'✓' if ok else '✗'} {verdict}")
        st.code(str(s.get("prompt", "")), language=None, wrap_lines=True)
        st.markdown(f"**Completion:** `{s.get('completion', '')}`")
    if len(samples) > limit:
        st.caption(f"{len(samples) - limit} more sample(s) not shown")


def request_form() -> None:
    """The drafting request; submits a ``draft`` job and remembers its id."""
    st.caption(
        "A language model writes candidate templates for a task; each runs only in the "
        "sandbox, through static checks, a preview, its own checker and its rule on real "
        "rows (docs/DRAFTING.md). Drafting runs as a background job: leave or reload the "
        "page, the run goes on."
    )
    c1, c2 = st.columns([1, 2])
    task = c1.selectbox("Task", sd.task_choices(), key="dr_task")
    new = task == sd.NEW_TASK
    kind, pasted, data_dir = None, "", ""
    if new:
        n1, n2 = st.columns([1, 1])
        task = n1.text_input("New task's name", key="dr_new_name", placeholder="my_task")
        kind = n2.selectbox(
            "Kind (the inputs its checker reads)", sorted(contracts.CONTRACTS), key="dr_kind"
        )
        description = st.text_area(
            "Describe the task",
            key="dr_desc_new",
            placeholder="What is given, what the answer is, and the rule that links them.",
        )
        pasted = st.text_area(
            "A few real rows (one JSON object per line; the first ones are shown to the "
            "model, the rest measure its rule)",
            key="dr_rows",
            placeholder=sd.example_rows_text(kind, 2),
            height=160,
        )
    else:
        description = c2.text_input(
            "Description (optional: the built-in one otherwise)", key="dr_desc"
        )
        data_dir = st.text_input(
            "Data folder",
            value=str(eval_tasks.default_data_dir() or ""),
            key="dr_data",
            help="one subfolder per set (e.g. squad_v1_1_dev/*.jsonl); default $COOKBOOK_EVAL_DATA",
        )
    e1, e2 = st.columns([2, 1])
    endpoint_kind = e1.radio(
        "Endpoint",
        list(sd.ENDPOINT_LABELS),
        format_func=sd.ENDPOINT_LABELS.get,
        key="dr_endpoint",
        horizontal=True,
    )
    model = e2.text_input(
        "Model",
        "default",
        key="dr_model",
        help="the model name (with a base URL: the local tokenizer of the served model)",
    )
    endpoint: dict[str, Any] = {"kind": endpoint_kind, "model": model}
    if endpoint_kind == "url":
        u1, u2, u3 = st.columns([2, 1, 1])
        endpoint["base_url"] = u1.text_input(
            "Base URL", key="dr_url", placeholder="http://127.0.0.1:8000/v1"
        )
        endpoint["served_model"] = u2.text_input("Served model name", key="dr_served")
        endpoint["api_key_env"] = u3.text_input(
            "API key variable",
            key="dr_key_env",
            placeholder="OPENAI_API_KEY",
            help="the NAME of an environment variable of the studio; the key is read by the "
            "job at request time and never stored",
        )
        st.caption(sd.key_status(endpoint["api_key_env"]))
    n1, n2, n3, n4 = st.columns(4)
    k = int(n1.number_input("Candidates (k)", 1, 16, 4, key="dr_k"))
    rounds = int(n2.number_input("Repair rounds", 0, 5, 1, key="dr_rounds"))
    examples = int(
        n3.number_input(  # a new task has few rows: its own widget, a smaller default
            "Rows shown", 0, 10, 2 if new else 3, key="dr_examples_new" if new else "dr_examples"
        )
    )
    align_rows = int(n4.number_input("Rows measured", 1, 2000, 200, key="dr_align"))
    with st.expander("More options"):
        m1, m2, m3, m4, m5 = st.columns(5)
        samples = int(m1.number_input("Samples per candidate", 1, 50, 8, key="dr_samples"))
        tokens = int(m2.number_input("Max new tokens", 16, 8192, 1024, key="dr_tokens"))
        seed = int(m3.number_input("Seed", 0, 2**31 - 1, 0, key="dr_seed"))
        cpu = int(m4.number_input("Sandbox CPU s", 1, 60, 5, key="dr_cpu"))
        worked = int(m5.number_input("Worked examples", 0, 5, 2, key="dr_worked"))
    if st.button("Draft", type="primary", icon=":material/edit_note:", key="dr_go"):
        try:
            cfg = sd.job_config(
                task=task,
                endpoint=endpoint,
                k=k,
                rounds=rounds,
                examples=examples,
                align_rows=align_rows,
                new_task=new,
                kind=kind,
                description=description,
                pasted=pasted,
                data_dir=data_dir,
                samples=samples,
                max_new_tokens=tokens,
                seed=seed,
                worked=worked,
                cpu_seconds=cpu,
            )
            submitted = jobs.submit("draft", cfg, name=f"draft {cfg['task']}")
        except CookbookError as exc:
            st.error(str(exc))
        else:
            ss["dr_select_next"] = submitted.id
            st.toast(f"Started {submitted.id}")


def run_panel(job_id: str) -> None:
    """Live progress, the candidates table and one candidate of a draft job (drawn as a
    fragment that refreshes every second while the job runs)."""
    job = widgets.job_header(job_id)
    if job is None:
        return
    try:
        run = draft_job.read_run(job.run_dir)
    except CookbookError as exc:
        st.error(str(exc))
        return
    info = run.info
    if info:
        by = info.get("answered_by") or {}
        st.caption(
            f"{info.get('task')} ({info.get('kind')}) · prompt sha256 "
            f"{info.get('prompt_hash')} · {info.get('rows_shown')} rows shown, "
            f"{info.get('rows_measured')} measured · worked examples: "
            f"{', '.join(info.get('worked_examples') or []) or 'none'}"
            + (f" · asked: {', '.join(f'{a}={b}' for a, b in by.items())}" if by else "")
        )
    if run.candidates:
        st.dataframe(sd.candidates_frame(run), hide_index=True, width="stretch")
        st.caption(sd.funnel_line(run))
    elif job.active:
        st.info("Waiting for the model's first answers…")
    base = info.get("baseline")
    if base and "alignment" in base:
        st.caption(
            f"Shipped {base['template']} on the same rows: alignment {base['alignment']:.1%}, "
            f"wrong answers accepted {(base.get('wrong_accept') or 0):.1%}"
        )
    if job.state == "succeeded" and run.candidates and not any(c.passed for c in run.candidates):
        st.warning("No candidate passed every stage: nothing can be saved (reasons above).")
    widgets.cancel_button(job, key="dr_cancel")
    if not job.active and ss.get("dr_job_seen") != job.id:
        ss["dr_job_seen"] = job.id
        st.rerun()  # the whole page: the fragment stops refreshing
    if run.candidates:
        candidate_panel(run, job.id)


def candidate_panel(run: draft_job.DraftRun, job_id: str) -> None:
    """One candidate: reason, scores, samples, code, answer, diff, and Save."""
    ranked = run.ranked()
    ids = [c.id for c in ranked]
    by_id = {c.id: c for c in ranked}
    if ss.get("dr_cand") not in ids:
        ss.pop("dr_cand", None)
    cid = st.selectbox(
        "Candidate",
        ids,
        key="dr_cand",
        format_func=lambda i: f"{i} · {'passed' if by_id[i].passed else by_id[i].outcome.stage}",
    )
    c = by_id[cid]
    if c.passed:
        st.success(f"{c.id} passed every stage ({c.outcome.template_name}).")
    else:
        st.error(f"{c.id} failed at {c.outcome.stage}: {c.outcome.reason}")
    if c.history:
        st.caption("History: " + "; ".join(c.history))
    t_samples, t_code, t_diff, t_answer = st.tabs(["Samples", "Code", "Diff", "Model answer"])
    with t_samples:
        if c.outcome.samples:
            _samples(c.outcome.samples)
        else:
            st.caption("No samples: the candidate stopped before the sandboxed preview.")
    with t_code:
        if c.outcome.source:
            st.code(c.outcome.source, language="python", line_numbers=True)
        else:
            st.caption("No code was found in the answer.")
    with t_diff:
        if c.outcome.source:
            targets = sd.compare_targets(run, c)
            other = st.selectbox("Against", list(targets), key="dr_cmp")
            text = sd.diff(targets[other], c.outcome.source, other, f"candidate {c.id}")
            st.code(text or "(identical)", language="diff")
        else:
            st.caption("Nothing to compare: no code.")
    with t_answer:
        st.code(c.answer or "(empty)", language=None, wrap_lines=True)
    if st.button(
        "Save",
        type="primary",
        icon=":material/save:",
        key="dr_save",
        disabled=not c.passed,
        help="into your template folder, with provenance; checked again in the sandbox first",
    ):
        with st.spinner("Checking it again in the sandbox and saving…"):
            try:
                path = draft_job.save_from_run(run.run_dir, c.id)
            except CookbookError as exc:
                st.error(str(exc))
                return
        ss["dr_saved"] = {"path": str(path), "name": path.stem, "job": job_id, "candidate": c.id}
        ss.pop("dr_preview", None)
        st.rerun()  # the whole page: the sidebar lists the saved template


def _select_template(name: str) -> None:
    ss["tpl_name"] = name


def saved_panel() -> None:
    """After a save: preview (sandboxed), generate a dataset, open Training with it."""
    saved = ss.get("dr_saved")
    if not saved:
        return
    path, name = Path(saved["path"]), saved["name"]
    if not path.is_file():
        ss.pop("dr_saved", None)
        return
    with st.container(border=True):
        st.success(
            f"Saved candidate {saved['candidate']} as `{name}` in `{path}` (untrusted: it runs "
            "only in the sandbox until you review it and trust its folder)."
        )
        b1, b2 = st.columns([1, 1])
        if b1.button("Preview (sandboxed)", icon=":material/visibility:", key="dr_preview_go"):
            res = sandbox.preview_file(path, n=4)
            ss["dr_preview"] = res.samples if res.ok else res.error
        names = [e.name for e in discovery.scan() if e.ok]
        b2.button(
            "Open it in the sidebar",
            key="dr_open",
            on_click=_select_template,
            args=(name,),
            disabled=name not in names,
        )
        preview = ss.get("dr_preview")
        if isinstance(preview, list):
            _samples(preview, limit=4)
        elif preview:
            st.error(f"The saved template failed in the sandbox: {preview}")
        g1, g2 = st.columns([1, 2])
        n = int(g1.number_input("Samples", 1, 10_000_000, 1000, 100, key="dr_gen_n"))
        if g2.button("Generate a dataset with it", icon=":material/dataset:", key="dr_generate"):
            try:
                cfg = studio_jobs.generate_config({name: 1.0}, n, seed=0)
                gen = jobs.submit("generate", cfg, name=Path(cfg["out"]).name)
            except CookbookError as exc:
                st.error(str(exc))
            else:
                ss["dr_gen_job"] = gen.id
        if ss.get("dr_gen_job"):
            widgets.job_header(ss["dr_gen_job"], show_name=True)
        data = sd.dataset_for(name)
        if data:
            widgets.page_link(
                "pages/training.py",
                f"Train on {Path(data).name}",
                {"data": data},
                icon=":material/model_training:",
            )
        else:
            st.caption("Generate a dataset with it to train on it.")


def render() -> None:
    """The Draft tab."""
    request_form()
    try:
        draft_jobs = jobs.list_jobs(kind="draft")
    except CookbookError as exc:
        st.error(str(exc))
        return
    if not draft_jobs:
        st.info("No drafting runs yet: choose a task and an endpoint above and press **Draft**.")
        return
    by_id = {j.id: j for j in draft_jobs}
    if ss.get("dr_select_next") in by_id:
        ss["dr_pick"] = ss.pop("dr_select_next")
    if ss.get("dr_pick") not in by_id:
        ss.pop("dr_pick", None)
    st.subheader("Drafting runs")
    job_id = st.selectbox(
        "Run", list(by_id), key="dr_pick", format_func=lambda i: f"{i} · {by_id[i].name or ''}"
    )
    active = by_id[job_id].active
    st.fragment(run_every=1.0 if active else None)(run_panel)(job_id)
    saved_panel()
    st.caption(f"Saved drafts go to `{paths.user_templates_dir()}`.")
