"""Streamlit widgets that several studio pages draw the same way.

``job_header`` is the top of every "one job" panel (Datasets, Training, Jobs): it
refreshes the queue, reads the job, and shows its progress bar and, when it ended
badly, why.  ``cancel_button`` is the matching Cancel control.

What it does not do: decide what a page shows below the header, or compute anything
about jobs (``studio_jobs`` does that, without Streamlit).
"""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

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
