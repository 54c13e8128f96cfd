"""Compare page: 2–4 trained models side by side (base, training jobs, single-template and
mixture cells of sweeps and experiments, SELF-GUIDE adapters), through their evaluation
runs: the mixture weights that made each, per-task bars with bootstrap intervals, paired
differences, and the examples where one model is right and another wrong, with every
model's output side by side.  The Mixing page links here with ``?sweep=&cell=&task=``
(a matrix cell: its run and the base row's); ``?run=<run folder>`` (repeatable) picks
runs too."""

import streamlit as st

from cookbook_core.errors import CookbookError
from cookbook_core.eval import evaluation
from cookbook_core.studio import compare, figures_compare
from cookbook_core.studio import evaluation as studio_eval

ss = st.session_state
st.title("Compare models")
st.caption(
    "Every evaluation run is a model you can put side by side: the base model, fine-tunes "
    "from the Training page, the cells of mixing sweeps and experiments. Intervals are "
    "seeded bootstrap 95% intervals; differences are paired over the examples every model saw."
)

runs = evaluation.list_runs()
if len(runs) < 2:
    st.info(
        "Comparing needs at least two evaluation runs: evaluate models on the **Evaluation** "
        "page, or run a sweep (`cookbook mix sweep ...`), whose cells appear here."
    )
    st.stop()
by_dir = {r["run_dir"]: r for r in runs}
labels = {d: studio_eval.run_label(r) for d, r in by_dir.items()}

# A link (the Mixing page's) preselects runs once per distinct query.
query = tuple(sorted((k, tuple(st.query_params.get_all(k))) for k in st.query_params))
if query and ss.get("cmp_query") != query:
    ss["cmp_query"] = query
    wanted: list[str] = []
    params = st.query_params
    try:
        if params.get("sweep") and params.get("cell") and params.get("task"):
            wanted = compare.runs_for_matrix_cell(params["sweep"], params["cell"], params["task"])
            ss["cmp_task"] = params["task"]
    except CookbookError as exc:
        st.warning(str(exc))
    wanted += params.get_all("run")
    if wanted:
        ss["cmp_runs"] = compare.match_runs(wanted, list(by_dir))[: compare.MAX_MODELS]
ss.setdefault("cmp_runs", list(by_dir)[:2])
ss["cmp_runs"] = [d for d in ss["cmp_runs"] if d in by_dir]  # runs may have been deleted

chosen = st.multiselect(
    "Models (evaluation runs)",
    list(by_dir),
    key="cmp_runs",
    max_selections=compare.MAX_MODELS,
    format_func=labels.get,
    help="2–4 runs; each is labelled by the model that made it",
)
if len(chosen) < 2:
    st.info("Pick 2–4 evaluation runs to compare.")
    st.stop()

try:
    summaries = compare.load(chosen)
except CookbookError as exc:
    st.error(str(exc))
    st.stop()
models = compare.models_frame(summaries)
st.dataframe(models.drop(columns=["run_dir"]), hide_index=True, width="stretch")
weights = compare.weights_frame(summaries)
if weights.empty:
    st.caption("None of these models was trained on a template mixture.")
else:
    st.plotly_chart(
        figures_compare.weights_figure(weights, list(models["model"])),
        width="stretch",
        key="cmp_weights",
    )

st.subheader("Per task")
scores = compare.scores_frame(summaries)
if scores.empty:
    st.info("These runs have no finished task yet.")
    st.stop()
st.plotly_chart(figures_compare.task_bars_figure(scores), width="stretch", key="cmp_bars")
table = scores.pivot_table(index=["task", "metric"], columns="model", values="value", sort=False)
st.dataframe((100 * table).round(1), width="stretch")

st.subheader("Per example")
shared = compare.common_tasks(summaries)
if not shared:
    st.info("These runs share no task: pick runs evaluated on the same task.")
    st.stop()
if ss.get("cmp_task") not in shared:
    ss.pop("cmp_task", None)
c1, c2 = st.columns(2)
task = c1.selectbox("Task", shared, key="cmp_task")
offered = compare.per_example_metrics(task)
if ss.get("cmp_metric") not in offered:
    ss.pop("cmp_metric", None)
metric = c2.selectbox(
    "Per-example metric",
    offered,
    key="cmp_metric",
    help="An example is right when its score is at least 0.5 (exact for 0/1 metrics)",
)
try:
    examples = compare.example_table(chosen, task, metric)
except CookbookError as exc:
    st.error(str(exc))
    st.stop()
each = ", ".join(f"{m} {n}" for m, n in zip(models["model"], examples.attrs["n_each"], strict=True))
st.caption(f"{len(examples)} examples scored by every model (each run has: {each}).")
diffs = compare.paired_differences(examples)
shown = diffs.copy()
for col in ("difference", "ci_low", "ci_high"):
    shown[col] = (100 * shown[col]).round(1)
st.dataframe(shown, hide_index=True, width="stretch")

split = compare.disagreements(examples)
st.markdown(f"**{len(split)} disagreements**: examples where one model is right and another wrong")
if split.empty:
    st.info("The models agree on every shared example.")
    st.stop()
st.dataframe(split, hide_index=True, width="stretch")
if ss.get("cmp_example") not in list(split["id"]):
    ss.pop("cmp_example", None)
pick = st.selectbox("Example", list(split["id"]), key="cmp_example")
detail = compare.example_detail(chosen, task, pick, metric)
st.markdown(f"**{detail['id']}** · gold: `{studio_eval.short_text(detail['gold'], 200)}`")
st.code(detail["models"][0]["prompt"], language=None, wrap_lines=True)
for col, m in zip(st.columns(len(detail["models"])), detail["models"], strict=True):
    verdict = ":green[right]" if m["right"] else ":red[wrong]"
    col.markdown(f"**{m['model']}** · {verdict} · {metric} {m['score']:.2f}")
    col.code(str(m["output"]) or "(empty)", language=None, wrap_lines=True)
