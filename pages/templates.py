"""Templates page: browse the library, tweak parameters and preview samples with the
rule's verdict, read the source, and edit it (validated, previewed in the sandbox,
saved atomically with the previous version kept, or duplicated under a new name)."""

import random
from pathlib import Path

import streamlit as st

from cookbook_core import discovery, tokens
from cookbook_core.errors import BadInput
from cookbook_core.sandbox import runner as sandbox
from cookbook_core.studio import editing

ss = st.session_state


@st.cache_resource(show_spinner="Loading token space…")
def vocab_for(spec: str) -> tuple[str, ...]:
    return tokens.load(spec).tokens


def param_widget(p, key: str):
    """One input widget built from a template parameter's type, range and help."""
    label = f"{p.name}"
    if p.choices:
        return st.selectbox(
            label, p.choices, index=p.choices.index(p.default), key=key, help=p.help
        )
    if p.type is bool:
        return st.checkbox(label, value=p.default, key=key, help=p.help)
    if p.type is int:
        return st.number_input(
            label,
            min_value=int(p.low),
            max_value=int(p.high),
            value=int(p.default),
            step=1,
            key=key,
            help=f"{p.help} ({p.describe()})",
        )
    return st.number_input(
        label,
        min_value=float(p.low),
        max_value=float(p.high),
        value=float(p.default),
        key=key,
        help=f"{p.help} ({p.describe()})",
        format="%.3f",
    )


def show_samples(samples: list[dict]) -> None:
    for i, s in enumerate(samples):
        verdict = s.get("follows_rule")
        icon = ":green[:material/check_circle:]" if verdict else ":red[:material/cancel:]"
        with st.container(border=True):
            st.markdown(
                f"**Sample {i}** · {icon} {'follows the rule' if verdict else 'breaks the rule'}"
            )
            st.code(s["prompt"], language=None, wrap_lines=True)
            st.markdown(
                f"**Completion:** `{s['completion']}`"
                if "\n" not in s["completion"]
                else "**Completion:**"
            )
            if "\n" in s["completion"]:
                st.code(s["completion"], language=None)


st.title("Templates")
entries = discovery.scan()
good = [e for e in entries if e.ok]
for e in entries:
    if not e.ok:
        st.warning(f"`{e.file.name}` is broken and is skipped: {e.error}")
if not good:
    st.info("No templates found. Add a file with an `@template(...)` function to `templates/`.")
    st.stop()

names = [e.name for e in good]
with st.sidebar:
    name = st.selectbox("Template", names, key="tpl_name")
    space = st.selectbox(
        "Token space",
        ["tokenizer", "words"],
        key="tpl_space",
        help="tokenizer: the embedded model's word-like tokens; words: an English word list",
    )
entry = next(e for e in good if e.name == name)
try:
    tpl = discovery.get(name)
except BadInput as exc:
    st.error(str(exc))
    st.stop()

st.subheader(name)
st.caption(f"{tpl.family} · stands for: {', '.join(tpl.tasks)} · `{entry.file.name}`")
st.markdown(tpl.doc)

tab_preview, tab_source, tab_edit = st.tabs(["Preview", "Source", "Edit"])

with tab_preview:
    cols = st.columns(4)
    values = {}
    for i, p in enumerate(tpl.params.values()):
        with cols[i % 4]:
            values[p.name] = param_widget(p, key=f"param::{name}::{p.name}")
    c1, c2, c3 = st.columns([1, 1, 2])
    seed_key = f"seed::{name}"
    ss.setdefault(seed_key, 0)
    if c2.button("New seed", icon=":material/casino:", key=f"newseed::{name}"):
        ss[seed_key] = random.randrange(0, 1_000_000)
    seed = c1.number_input("Seed", min_value=0, step=1, key=seed_key)
    n = c3.slider("Samples", 1, 20, 4, key=f"n::{name}")
    try:
        samples = tpl.preview_records(vocab_for(space), n, int(seed), values)
    except BadInput as exc:
        st.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - a template bug shows as a message, not a trace
        st.error(f"The template raised {type(exc).__name__}: {exc}")
    else:
        ok_count = sum(bool(s["follows_rule"]) for s in samples)
        st.caption(f"{ok_count}/{len(samples)} samples follow the rule")
        show_samples(samples)

source = Path(tpl.source_file).read_text()

with tab_source:
    st.caption(f"{tpl.source_file} · sha256 {discovery.source_sha256(tpl)[:12]}…")
    st.code(source, language="python", line_numbers=True)

with tab_edit:
    ekey, dkey = f"editor::{name}", f"draft::{name}"
    ss.setdefault(dkey, source)
    ss.setdefault(ekey, ss[dkey])

    def keep_draft() -> None:
        ss[dkey] = ss[ekey]

    st.text_area(
        "Source (edits are kept while you browse)", key=ekey, height=460, on_change=keep_draft
    )
    draft = ss[ekey]
    ss[dkey] = draft
    problems = sandbox.validate_source(draft)
    if problems:
        st.error("Static checks failed:\n\n" + "\n".join(f"- {p}" for p in problems))
    else:
        st.success("Static checks pass: allowed imports only, no unsafe calls, signature usable.")
    diff = editing.unified_diff(source, draft, entry.file.name)
    if diff:
        with st.expander("Changes against the saved file", expanded=False):
            st.code(diff, language="diff")
    b1, b2, b3 = st.columns([1, 1, 2])
    if b1.button("Preview in sandbox", disabled=bool(problems), key=f"sbx::{name}"):
        with st.spinner("Running in the sandbox…"):
            res = sandbox.run_source(draft, n=4, token_space=space)
        if res.ok:
            st.caption(f"{res.elapsed_s * 1000:.0f} ms in the sandbox")
            show_samples(res.samples)
        else:
            st.error(f"The edited template failed: {res.error}")
    if b2.button("Save", disabled=bool(problems) or not diff, key=f"save::{name}"):
        try:
            path = sandbox.save_template(entry.file.stem, draft, folder=entry.file.parent)
        except BadInput as exc:
            st.error(str(exc))
        else:
            st.success(f"Saved {path.name}; the previous version is in .history/.")
    with b3:
        new_name = st.text_input("Duplicate as", key=f"dup_name::{name}", placeholder="my_template")
        if st.button("Duplicate", key=f"dup::{name}", disabled=not new_name):
            try:
                copy = editing.duplicate_source(draft, name, new_name)
                if new_name in names:
                    raise BadInput(f"a template named {new_name!r} already exists")
                path = sandbox.save_template(new_name, copy, folder=entry.file.parent)
            except BadInput as exc:
                st.error(str(exc))
            else:
                st.success(f"Created {path.name}. Pick it in the sidebar.")
