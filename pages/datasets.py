"""Datasets page: mix templates with weight sliders and generate a dataset as a background
job (with a live progress bar), then browse the samples of any generated dataset next to
its manifest."""

from pathlib import Path

import pandas as pd
import streamlit as st

from cookbook_core import configs, dataset_io, discovery
from cookbook_core.errors import CookbookError
from cookbook_core.generate_config import FORMATS, GenerateConfig, Source
from cookbook_core.jobs import store as jobs
from cookbook_core.studio import jobs as studio_jobs
from cookbook_core.studio import widgets as studio_widgets

ss = st.session_state
st.title("Datasets")
st.caption(
    "A dataset is a mixture of templates: each template's weight sets its share of the "
    "samples. Generation runs as a background job; the data lands in "
    f"`{dataset_io.datasets_root()}`."
)

# ----------------------------------------------------------------------------------
# Generate

entries = [e for e in discovery.scan() if e.ok]
names = [e.name for e in entries]
families = {e.name: e.family for e in entries}

with st.container(border=True):
    st.subheader("Generate a dataset")
    if not names:
        st.info("No templates found: template files live in `templates/` (see the Templates page).")
        st.stop()
    ss.setdefault("ds_templates", [n for n in ("document_qa",) if n in names] or names[:1])
    ss["ds_templates"] = [n for n in ss["ds_templates"] if n in names]  # a file may be gone
    picked = st.multiselect(
        "Templates",
        names,
        key="ds_templates",
        format_func=lambda n: f"{n} ({families[n]})",
        help="Pick one or more templates; the sliders below set their relative weights.",
    )
    weights: dict[str, float] = {}
    if picked:
        cols = st.columns(min(3, len(picked)))
        for i, name in enumerate(picked):
            with cols[i % len(cols)]:
                weights[name] = st.slider(
                    name, step=0.1, key=f"ds_w::{name}", **configs.widget(Source, "weight")
                )
    # ranges and defaults: GenerateConfig's declaration (generate_config.py)
    c1, c2, c3, c4 = st.columns(4)
    n = c1.number_input("Samples", step=100, key="ds_n", **configs.widget(GenerateConfig, "n"))
    seed = c2.number_input("Seed", key="ds_seed", **configs.widget(GenerateConfig, "seed"))
    fmt = c3.selectbox(
        "Format",
        FORMATS,
        index=FORMATS.index(configs.default(GenerateConfig, "format")),
        key="ds_format",
        help=configs.help_text(GenerateConfig, "format", with_default=False),
    )
    default_name = studio_jobs.dataset_name(weights, n, seed) if weights else ""
    name = c4.text_input("Folder name", key="ds_name", placeholder=default_name or "my-dataset")
    counts = studio_jobs.planned_counts(weights, n)
    if counts:
        st.caption("Planned: " + " · ".join(f"{t} {c:,} ({c / n:.0%})" for t, c in counts.items()))
    overwrite = st.checkbox("Replace a dataset of the same name", key="ds_overwrite")
    if st.button("Generate", type="primary", icon=":material/play_arrow:", key="ds_go"):
        try:
            cfg = studio_jobs.generate_config(
                weights, n, seed=seed, fmt=fmt, name=name, overwrite=overwrite
            )
            job = jobs.submit("generate", cfg, name=Path(cfg["out"]).name)
        except CookbookError as exc:
            st.error(str(exc))
        else:
            ss["ds_job"] = job.id


def generation_panel(job_id: str) -> None:
    """Progress of the dataset job started from this page; reruns the page when it ends."""
    job = studio_widgets.job_header(job_id, show_name=True)
    if job is None:
        return
    if job.state == "succeeded":
        result = jobs.read_result(job) or {}
        st.success(
            f"Wrote {result.get('n', '?'):,} samples to `{result.get('out', job.config['out'])}` "
            f"({result.get('samples_per_s', 0):,.0f} samples/s)."
        )
    studio_widgets.cancel_button(job, key="ds_cancel")
    if not job.active and ss.get("ds_job_seen") != job.id:
        ss["ds_job_seen"] = job.id
        if job.state == "succeeded":
            ss["ds_select_next"] = Path(job.config["out"]).name
        st.rerun()


if ss.get("ds_job"):
    try:
        running = jobs.get(ss["ds_job"]).active
    except CookbookError:
        running = False
    st.fragment(run_every=1.0 if running else None)(generation_panel)(ss["ds_job"])

# ----------------------------------------------------------------------------------
# Browse

st.subheader("Browse datasets")
try:
    datasets = dataset_io.list_datasets()
except CookbookError as exc:
    st.error(str(exc))
    st.stop()
if not datasets:
    st.info(
        "No datasets yet. Pick templates and weights above and press **Generate**, or run "
        "`cookbook generate -t document_qa -n 1000` (datasets are read from "
        f"`{dataset_io.datasets_root()}`)."
    )
    st.stop()

by_name = {d["name"]: d for d in datasets}
if ss.get("ds_select_next") in by_name:
    ss["ds_pick"] = ss.pop("ds_select_next")
if ss.get("ds_pick") not in by_name:
    ss.pop("ds_pick", None)
pick = st.selectbox(
    "Dataset",
    list(by_name),
    key="ds_pick",
    format_func=lambda d: f"{d} · {by_name[d]['n']:,} samples · {by_name[d]['created'][:19]}",
)
manifest = by_name[pick]
m1, m2, m3, m4 = st.columns(4)
m1.metric("Samples", f"{manifest['n']:,}")
m2.metric("Templates", len(manifest["templates"]))
m3.metric("Format", manifest["format"])
m4.metric("Size", f"{manifest.get('bytes', 0) / 1e6:.2f} MB")
st.dataframe(
    pd.DataFrame(
        [
            {
                "template": t["name"],
                "weight": t["weight"],
                "share": f"{t['share']:.1%}",
                "samples": t["count"],
                "faults": t["faults"],
                "parameters": ", ".join(f"{k}={v}" for k, v in t.get("params", {}).items()),
            }
            for t in manifest["templates"]
        ]
    ),
    hide_index=True,
    width="stretch",
)
st.caption(
    f"seed {manifest['seed']} · created {manifest['created']} · "
    f"{manifest.get('samples_per_s', 0):,.0f} samples/s · `{manifest['path']}`"
)
with st.expander("Manifest (JSON)"):
    st.json({k: v for k, v in manifest.items() if k not in ("name", "path")}, expanded=1)

st.markdown("#### Samples")
s1, s2, s3 = st.columns([2, 1, 1])
tpl_names = ["all templates"] + [t["name"] for t in manifest["templates"]]
only = s1.selectbox("Template", tpl_names, key=f"ds_only::{pick}")
start = int(s2.number_input("From sample", 0, max(0, manifest["n"] - 1), 0, key="ds_start"))
count = int(s3.number_input("Show", 1, 50, 5, key="ds_count"))
SCAN_LIMIT = 50_000  # rows read at most to find samples of one template
shown = 0
try:
    for i, row in enumerate(dataset_io.iter_rows(manifest["path"], limit=SCAN_LIMIT)):
        if i < start:
            continue
        template = row["meta"].get("template", "")
        if only != "all templates" and template != only:
            continue
        st.markdown(f"**#{i}** · `{template}`")
        st.code(row["prompt"], language=None, wrap_lines=True)
        st.markdown(f"**Completion:** `{row['completion']}`")
        shown += 1
        if shown >= count:
            break
except CookbookError as exc:
    st.error(f"Could not read the dataset: {exc}")
if shown == 0:
    st.info("No sample matches: lower *From sample* or pick another template.")
