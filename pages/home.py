"""Overview page: what the studio does, the template library at a glance, and the
first commands to run."""

import pandas as pd
import streamlit as st

from cookbook_core import discovery, paths

st.title("Cookbook Studio")
st.markdown(
    "Teach a language model a task skill **without human- or LLM-written data**: "
    "templates draw random tokens and build prompt/answer pairs whose answer follows "
    "a simple rule that mirrors a real task (Cookbook, Narayan et al., COLM 2024)."
)

entries = discovery.scan()
ok = [e for e in entries if e.ok]
broken = [e for e in entries if not e.ok]

c1, c2, c3 = st.columns(3)
c1.metric("Templates", len(ok))
c2.metric("Task families", len({e.family for e in ok}))
c3.metric("Real tasks covered", len({t for e in ok for t in e.tasks}))
st.caption(f"Workspace (COOKBOOK_HOME): `{paths.home()}`")

st.subheader("Template library")
table = pd.DataFrame(
    [
        {
            "template": e.name,
            "family": e.family,
            "stands for": ", ".join(e.tasks),
            "summary": " ".join(e.doc.split(".")[0].split()),
            "file": e.file.name,
        }
        for e in ok
    ]
)
if table.empty:
    st.info("No templates found. Template files live in `templates/` (one `@template` each).")
else:
    st.dataframe(table, hide_index=True, width="stretch")
for e in broken:
    st.error(f"`{e.file.name}` could not be read: {e.error}")

st.subheader("Get started")
st.code(
    "cookbook templates preview document_qa -n 3\n"
    "cookbook generate -t document_qa:2 -t multiple_choice_qa:1 -n 10000 --workers 2",
    language="bash",
)
