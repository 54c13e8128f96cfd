"""Experiments page: the paper's effects as measured in this workspace (the same tables and
figures as docs/RESULTS.md: the validation protocol with intervals and the gain split by
rule-following included), and forms that queue the experiment commands as jobs."""

import pandas as pd
import streamlit as st

from cookbook_core import discovery
from cookbook_core.align import gain
from cookbook_core.errors import BadInput, CookbookError
from cookbook_core.eval import tasks
from cookbook_core.experiments import core as experiments
from cookbook_core.experiments import report as results
from cookbook_core.mix import protocol
from cookbook_core.mix import sources as mix_sources
from cookbook_core.selfguide import natural_rows
from cookbook_core.studio import figures_experiments

st.title("Experiments")
st.caption(
    "Does training on template data help on the real task? Does the linear mixing model "
    "hold? Every number below comes from a finished run in this workspace; "
    "`cookbook experiment report` writes the same page to docs/RESULTS.md."
)

try:
    c = results.collect()
    figures = figures_experiments.report_figures(c)
except (BadInput, CookbookError) as exc:
    st.error(f"Could not read the stored experiments: {exc}")
    st.stop()

if not c["single"] and not c["mixes"]:
    st.info(
        "No experiment has finished yet. Queue one below, or from a terminal: "
        "`cookbook experiment single-task --template document_qa` (about 15 minutes on a "
        "laptop CPU)."
    )

st.subheader("Single-task: base vs fine-tuned")
st_table = c["single_table"]
if len(st_table):
    st.plotly_chart(figures["single_task"], width="stretch")
    shown = st_table[
        ["template", "task", "metric", "rows", "base", "tuned", "gain", "steps", "lr", "source"]
    ]
    shown = shown.assign(
        gain_ci=[f"[{a:.1f}, {b:.1f}]" for a, b in st_table["gain_ci"]],
        train_min=st_table["train_min"].round(1),
        lr=[f"{x:g}" for x in st_table["lr"]],  # .round(1) below would zero it
        template=st_table["template"].map(mix_sources.label),
    )
    st.dataframe(shown.round(1), hide_index=True, width="stretch")
else:
    st.caption("none yet")

for res in c["mixes"]:
    st.subheader(f"Cookbook-Mix: {res['name']}")
    left, right = st.columns(2)
    left.plotly_chart(figures[f"{res['name']}_matrix"], width="stretch")
    if f"{res['name']}_fit" in figures:
        right.plotly_chart(figures[f"{res['name']}_fit"], width="stretch")
        s = res["validation"].get("stats")
        if s:
            right.caption(
                f"mean |error| {s['mean_abs_error']:.2f} pts · median "
                f"{s['median_abs_error']:.2f} pts (paper: 1.4 / 0.4)"
            )
    st.plotly_chart(figures[f"{res['name']}_comparison"], width="stretch")
    st.dataframe(pd.DataFrame(res["comparison"]).T.round(1), width="stretch")
    proto = res.get("protocol") or {}
    if proto.get("fit"):
        st.markdown("**The paper's validation protocol** (paired bootstrap 95% intervals)")
        st.dataframe(protocol.stats_frame(proto), hide_index=True, width="stretch")
        if proto.get("optimized"):
            st.dataframe(protocol.optimized_frame(proto), hide_index=True, width="stretch")
        for line in protocol.verdicts(proto):
            st.markdown(f"- {line}")
    elif proto.get("error"):
        st.caption(f"Validation protocol not computed: {proto['error']}")

al = c["alignment_table"]
if len(al):
    st.subheader("Template alignment before and after training")
    st.dataframe(al.drop(columns=["note"], errors="ignore").round(1), hide_index=True)
    if c.get("correlation"):
        r, lo, hi = c["correlation"]
        st.caption(f"Pearson r (Δ alignment vs Δ accuracy) = {r:.2f}, 95% CI [{lo:.2f}, {hi:.2f}]")
    if "alignment" in figures:
        st.plotly_chart(figures["alignment"], width="stretch")
splits = [g for g in c.get("gain_splits", []) if g["split"] is not None]
if splits:
    st.subheader("Does alignment explain the gain?")
    if "alignment_gain" in figures:
        st.plotly_chart(figures["alignment_gain"], width="stretch")
    for g in splits:
        st.markdown(
            f"- **{g['template']} on {g['task']}, {g['trained']}**: {gain.explain(g['split'])}"
        )

for section in (results.natural_section(c), results.drafting_section(c)):
    if section:  # Markdown from the results page: a heading, a table, one line per verdict
        st.markdown("\n".join(section).replace("## ", "### ", 1))

st.divider()
st.subheader("Run an experiment")
names = [e.name for e in discovery.scan() if e.ok]
with st.form("single_task"):
    st.markdown("**Single-task** — base model vs fine-tuned on one template")
    f1, f2, f3, f4 = st.columns(4)
    template = f1.selectbox(
        "Template", names, index=names.index("document_qa") if "document_qa" in names else 0
    )
    steps = f2.number_input("LoRA steps", 1, 10_000, 80)
    limit = f3.number_input("Evaluation rows per task", 1, 100_000, 100)
    n = f4.number_input("Training samples", 8, 10_000_000, 2000)
    task_pick = st.multiselect("Tasks (empty: the template's own)", sorted(tasks.TASKS))
    nat = st.number_input(
        "Natural-language rows mixed in (0: none; from the SELF-GUIDE pack's validation rows)",
        0,
        10_000,
        0,
    )
    if st.form_submit_button("Queue single-task experiment"):
        try:
            extra = {}
            if nat:
                extra = {"natural_data": natural_rows.resolve("sni"), "natural_n": int(nat)}
            cfg = experiments.SingleTaskConfig(
                template=template,
                tasks=task_pick,
                steps=int(steps),
                limit=int(limit),
                n=int(n),
                train_extra=extra,
            )
            experiments.check("single-task", cfg)
            st.success(f"Queued job `{experiments.submit('single-task', cfg)}` (see Jobs).")
        except (BadInput, CookbookError) as exc:
            st.error(str(exc))

with st.form("mix"):
    st.markdown("**Cookbook-Mix** — sweep, fit, optimize, compare")
    picked = st.multiselect("Templates", names, key="mix_templates")
    g1, g2, g3, g4 = st.columns(4)
    group = g1.selectbox("Task group", sorted(tasks.GROUPS), key="mix_group")
    msteps = g2.number_input("LoRA steps per cell", 1, 10_000, 24)
    mlimit = g3.number_input("Rows per task", 1, 100_000, 50)
    dirichlet = g4.number_input("Validation mixtures", 0, 50, 2)
    if st.form_submit_button("Queue mix experiment"):
        try:
            mcfg = experiments.MixConfig(
                templates=picked,
                tasks=[group],
                steps=int(msteps),
                limit=int(mlimit),
                dirichlet=int(dirichlet),
            )
            experiments.check("mix", mcfg)
            st.success(f"Queued job `{experiments.submit('mix', mcfg)}` (see Jobs).")
        except (BadInput, CookbookError) as exc:
            st.error(str(exc))
