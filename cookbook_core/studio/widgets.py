"""Streamlit widgets that several studio pages draw the same way.

``job_header`` is the top of every "one job" panel (Datasets, Training, Jobs): it
refreshes the queue, reads the job, and shows its progress bar and, when it ended
badly, why.  ``cancel_button`` is the matching Cancel control.  ``page_link`` links to
another studio page with query parameters, also when a page runs on its own.

What it does not do: decide what a page shows below the header, or compute anything
about jobs (``studio_jobs`` does that, without Streamlit).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.errors import StreamlitPageNotFoundError

from cookbook_core.errors import CookbookError
from cookbook_core.jobs import store as jobs
from cookbook_core.studio import jobs as studio_jobs


def job_header(
    job_id: str, *, show_name: bool = False, log_lines: int = 40, cancelled_note: str = ""
) -> jobs.Job | None:
    """Progress bar (prefixed by the job's name with ``show_name``) plus the failure or
    cancellation message of one job; ``None`` (after showing the error) when the job
    cannot be read."""
    try:
        jobs.pump()
        job = jobs.get(job_id)
    except CookbookError as exc:
        st.error(str(exc))
        return None
    text = studio_jobs.status_line(job)
    st.progress(
        studio_jobs.progress_fraction(job) or 0.0,
        text=f"`{job.name or job.id}` · {text}" if show_name else text,
    )
    if job.state in ("failed", "lost"):
        st.error(studio_jobs.failure_details(job, studio_jobs.log_tail(job, log_lines)))
    elif job.state == "cancelled":
        st.warning(" ".join(filter(None, [job.reason or "cancelled", cancelled_note])))
    return job


def cancel_button(job: jobs.Job, *, key: str, where: DeltaGenerator | None = None) -> None:
    """A Cancel button (in ``where``, e.g. a column) for an active job; cancels it and
    reruns the page when pressed."""
    if not job.active or not (where or st).button("Cancel", icon=":material/stop:", key=key):
        return
    try:
        jobs.cancel(job.id)
    except CookbookError as exc:
        st.error(str(exc))
        return
    st.rerun()


def page_link(
    page: str,
    label: str,
    query_params: Mapping[str, str],
    *,
    icon: str | None = None,
    where: DeltaGenerator | None = None,
) -> None:
    """``st.page_link`` to ``page`` (a path under the app, e.g. ``pages/compare.py``) with
    ``query_params``.  When the page is not registered, as when a page script runs on
    its own (``streamlit run pages/x.py``, AppTest of one page), a plain relative link
    with the same query is drawn instead of failing."""
    target = where or st
    try:
        target.page_link(page, label=label, icon=icon, query_params=dict(query_params))
    except StreamlitPageNotFoundError:
        url = f"{Path(page).stem}?{urlencode(dict(query_params))}"
        target.markdown(f"[{label}]({url})")
