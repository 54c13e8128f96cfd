"""Templates page: browse the library, tweak parameters and preview samples with the
rule's verdict, read the source, and edit it (validated, previewed in the sandbox,
saved atomically with the previous version kept, or duplicated under a new name), and
draft new templates with a language model (the Draft tab: a background job whose
candidates are checked in the sandbox; see ``cookbook_core.studio.draft_tab``).
Untrusted templates (not in the shipped folder or a COOKBOOK_TRUSTED_TEMPLATES
folder) are never imported here: their parameters and samples come from the sandbox."""

import hashlib
import random

import streamlit as st

from cookbook_core import artifacts, discovery, paths, tokens
from cookbook_core.align import live
from cookbook_core.errors import BadInput, CookbookError
from cookbook_core.sandbox import runner as sandbox
from cookbook_core.serve import server
from cookbook_core.studio import draft_tab, editing
from cookbook_core.train import adapters

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


def try_on_model(samples: list[dict]) -> None:
    """Ask the served base model (and one adapter) to answer a generated sample."""
    with st.expander("Try a sample on the model", icon=":material/smart_toy:"):
        live_server = server.running("default")
        if live_server is None:
            st.caption(
                "Needs a running model server (`cookbook serve start`, or **Start the "
                "server** on the Alignment page)."
            )
            return
        k = st.selectbox("Sample", range(len(samples)), key="tpl_try_k")
        refs = {"base model": None, **{a.label: a.path for a in adapters.list_adapters()}}
        chosen = st.multiselect(
            "Models", list(refs), default=["base model"], max_selections=4, key="tpl_try_models"
        )
        if chosen and st.button("Ask", key="tpl_try_go"):
            try:
                outs = live.try_prompt(samples[k]["prompt"], [refs[c] for c in chosen])
            except CookbookError as exc:
                st.error(str(exc))
                return
            st.dataframe(
                live.prompt_answers_frame(chosen, outs, samples[k]["completion"]),
                hide_index=True,
                width="stretch",
            )


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
source = entry.file.read_text(encoding="utf-8")
tpl = None
try:
    if entry.trusted:
        tpl = discovery.get(name)
        params = list(tpl.params.values())
    else:
        described = sandbox.run_source(source, name=name, n=0, token_space=space)
        if not described.ok:
            raise CookbookError(f"the template failed in the sandbox: {described.error}")
        params = sandbox.params_of(described, name)
except CookbookError as exc:
    st.error(str(exc))
    st.stop()

st.subheader(name)
trust = "trusted" if entry.trusted else "untrusted: runs in the sandbox"
st.caption(f"{entry.family} · stands for: {', '.join(entry.tasks)} · `{entry.file.name}` · {trust}")
st.markdown(entry.doc)
for art in entry.artifacts:  # data files beside the template (cookbook templates artifact)
    vs = artifacts.versions(entry.file, art)
    st.caption(
        f"artifact `{art}`: "
        + (
            f"version {vs[-1]} of {len(vs)} in `{artifacts.folder(entry.file).name}/`"
            if vs
            else f"no version yet: `cookbook templates artifact draft {name} {art}`"
        )
    )

tab_preview, tab_source, tab_edit, tab_draft = st.tabs(["Preview", "Source", "Edit", "Draft"])

with tab_preview:
    cols = st.columns(4)
    values = {}
    for i, p in enumerate(params):
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
        if tpl is not None:
            samples = tpl.preview_records(vocab_for(space), n, int(seed), values)
        else:
            res = sandbox.run_source(
                source,
                name=name,
                n=n,
                seed=int(seed),
                params=values,
                token_space=space,
                artifacts=sandbox.file_artifacts(entry.file),
            )
            if not res.ok:
                raise CookbookError(f"The template failed in the sandbox: {res.error}")
            samples = res.samples
    except CookbookError as exc:
        st.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - a template bug shows as a message, not a trace
        st.error(f"The template raised {type(exc).__name__}: {exc}")
    else:
        ok_count = sum(bool(s["follows_rule"]) for s in samples)
        st.caption(f"{ok_count}/{len(samples)} samples follow the rule")
        show_samples(samples)
        try_on_model(samples)

with tab_source:
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    st.caption(f"{entry.file} · sha256 {digest[:12]}…")
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
    # edits never land in a trusted folder: save to the user's (untrusted) folder
    save_folder = paths.user_templates_dir() if entry.trusted else entry.file.parent
    if entry.trusted:
        st.caption(
            "Shipped and trusted templates are read-only here: duplicate under a new name "
            f"to save your version in {save_folder} (it will run in the sandbox)."
        )
    if b1.button("Preview in sandbox", disabled=bool(problems), key=f"sbx::{name}"):
        with st.spinner("Running in the sandbox…"):
            try:
                res = sandbox.run_source(
                    draft, n=4, token_space=space, artifacts=sandbox.file_artifacts(entry.file)
                )
            except CookbookError as exc:
                res = sandbox.SandboxResult(False, error_type=type(exc).__name__, message=str(exc))
        if res.ok:
            st.caption(f"{res.elapsed_s * 1000:.0f} ms in the sandbox")
            show_samples(res.samples)
        else:
            st.error(f"The edited template failed: {res.error}")
    if b2.button("Save", disabled=bool(problems) or not diff or entry.trusted, key=f"save::{name}"):
        try:
            path = sandbox.save_template(entry.file.stem, draft, folder=save_folder)
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
                path = sandbox.save_template(new_name, copy, folder=save_folder)
            except BadInput as exc:
                st.error(str(exc))
            else:
                st.success(f"Created {path.name}. Pick it in the sidebar.")

with tab_draft:
    draft_tab.render()
