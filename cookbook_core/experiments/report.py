"""The results page: ``docs/RESULTS.md`` and its PNG figures, rebuilt from stored experiments.

:func:`collect` gathers every finished experiment of the workspace
(:mod:`cookbook_core.experiments.core`) into tables (pandas); :func:`figure_names` says
which figures the page embeds; :func:`write_report` renders the tables as Markdown and
asks a caller-supplied ``draw`` function for the PNGs (Plotly figures live in
:mod:`cookbook_core.studio.figures_experiments`: this module never imports Plotly).  Every
number on the page is read from a result file; the text around it only compares
numbers (e.g. whether the optimized mixture beats the best single template) and
says so when the paper's direction is not reproduced.  The studio's Experiments
page shows the same tables and figures.  Running experiments is not done here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from cookbook_core import configs, storage
from cookbook_core.errors import BadInput
from cookbook_core.experiments import core as experiments
from cookbook_core.mix import protocol
from cookbook_core.mix import sources as mix_sources
from cookbook_core.train.config import TrainConfig

DEFAULT_BATCH = configs.default(TrainConfig, "batch_size")  # what a run without one used
DEFAULT_LR = configs.default(TrainConfig, "lr")


def _ci(pair: list[float] | None) -> str:
    if not pair or any(x is None or not math.isfinite(x) for x in pair):
        return ""
    return f" [{pair[0]:.1f}, {pair[1]:.1f}]"


def single_task_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (experiment, task): base vs fine-tuned with intervals, budget and time."""
    rows = []
    for res in results:
        cfg = res["config"]
        for r in res["rows"]:
            rows.append(
                {
                    "template": cfg["template"],
                    "task": r["task"],
                    "metric": r["metric"],
                    "rows": r["rows"],
                    "base": r["base"],
                    "base_ci": r["base_ci95"],
                    "tuned": r["tuned"],
                    "tuned_ci": r["tuned_ci95"],
                    "gain": r["gain"],
                    "gain_ci": r["gain_ci95"],
                    "steps": cfg["steps"],
                    "batch": cfg.get("batch_size")
                    or cfg.get("train_extra", {}).get("batch_size")
                    or DEFAULT_BATCH,
                    "lr": cfg.get("lr") or cfg.get("train_extra", {}).get("lr") or DEFAULT_LR,
                    "samples": cfg["n"],
                    "natural": experiments.natural_count(cfg.get("train_extra")),
                    "train_min": res["seconds"]["tuned"]["train_seconds"] / 60,
                    "eval_min": (
                        res["seconds"]["base"]["eval_seconds"]
                        + res["seconds"]["tuned"]["eval_seconds"]
                    )
                    / 60,
                    "base_run": r["base_run"],
                    "tuned_run": r["tuned_run"],
                    "source": f"single-task experiment {res['name']}",
                }
            )
    return pd.DataFrame(rows)


def natural_table(single: list[dict[str, Any]]) -> pd.DataFrame:
    """Single-task experiments that differ only in the natural rows mixed in, paired:
    one row per (template, task, natural count > 0) with the model trained without
    natural rows, the one with them, and the paired difference (points, 95% CI)."""
    from cookbook_core.mix import cells

    def same_recipe(cfg: dict[str, Any]) -> str:
        extra = {
            k: v
            for k, v in (cfg.get("train_extra") or {}).items()
            if k not in ("natural_data", "natural_n")
        }
        keep = ("template", "n", "steps", "lr", "batch_size", "limit", "data_seed", "seed")
        return repr(([cfg.get(k) for k in keep], sorted(extra.items())))

    by_recipe: dict[str, dict[int, dict[str, Any]]] = {}
    for res in single:
        by_recipe.setdefault(same_recipe(res["config"]), {})[
            experiments.natural_count(res["config"].get("train_extra"))
        ] = res
    rows = []
    for group in by_recipe.values():
        plain = group.get(0)
        if plain is None:
            continue
        for k, res in sorted(group.items()):
            if k == 0:
                continue
            without = {r["task"]: r for r in plain["rows"]}
            for r in res["rows"]:
                w = without.get(r["task"])
                if w is None or w["metric"] != r["metric"]:
                    continue
                d = experiments.paired_metric_gain(
                    r["task"],
                    r["metric"],
                    cells.run_items(w["tuned_run"], r["task"]),
                    cells.run_items(r["tuned_run"], r["task"]),
                )
                rows.append(
                    {
                        "template": res["config"]["template"],
                        "task": r["task"],
                        "metric": r["metric"],
                        "rows": r["rows"],
                        "natural": k,
                        "base": r["base"],
                        "without": w["tuned"],
                        "without_gain": w["gain"],
                        "without_gain_ci": w["gain_ci95"],
                        "with": r["tuned"],
                        "with_gain": r["gain"],
                        "with_gain_ci": r["gain_ci95"],
                        "difference": d["gain"],
                        "difference_ci": [d["lo"], d["hi"]],
                        "commands": [plain["command"], res["command"]],
                    }
                )
    return pd.DataFrame(rows)


def _sweep_cells(res: dict[str, Any]) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """A mix experiment's sweep, its eval settings, its cells by name, the base results."""
    from cookbook_core.mix import cells, sweep

    sw = sweep.SweepConfig(**res["sweep"])
    st = sweep.settings(sw)
    by = {s.name: s for s in sweep.plan(sw)}
    return sw, st, by, cells.results(by["base"], st, sw.metrics)


def sweep_single_rows(mixes: list[dict[str, Any]]) -> pd.DataFrame:
    """Base vs fine-tuned rows from the mix experiments' single-template cells, on the
    tasks each template stands for (same columns as :func:`single_task_table`)."""
    from cookbook_core import discovery
    from cookbook_core.mix import cells

    rows = []
    for res in mixes:
        sw, st, by, base = _sweep_cells(res)
        base_s = res["seconds"].get("base", {})
        for t in sw.templates:
            if mix_sources.is_dataset(t):
                continue
            tuned = cells.results(by[t], st, sw.metrics)
            for task in discovery.get(t).tasks:
                if task not in base or task not in tuned:
                    continue
                g = experiments.paired_metric_gain(
                    task,
                    base[task]["metric"],
                    cells.example_items(by["base"], st, task),
                    cells.example_items(by[t], st, task),
                )
                secs = res["seconds"].get(t, {})
                rows.append(
                    {
                        "template": t,
                        "task": task,
                        "metric": base[task]["metric"],
                        "rows": base[task]["n"],
                        "base": 100 * base[task]["value"],
                        "base_ci": [100 * x for x in base[task]["ci95"]],
                        "tuned": 100 * tuned[task]["value"],
                        "tuned_ci": [100 * x for x in tuned[task]["ci95"]],
                        "gain": g["gain"],
                        "gain_ci": [g["lo"], g["hi"]],
                        "steps": sw.train.get("steps"),
                        "batch": sw.train.get("batch_size", DEFAULT_BATCH),
                        "lr": sw.train.get("lr", DEFAULT_LR),
                        "samples": sw.n,
                        "train_min": secs.get("train_seconds", 0) / 60,
                        "eval_min": (secs.get("eval_seconds", 0) + base_s.get("eval_seconds", 0))
                        / 60,
                        "base_run": base[task]["run_dir"],
                        "tuned_run": tuned[task]["run_dir"],
                        "source": f"mix experiment {res['name']}",
                    }
                )
    return pd.DataFrame(rows)


def _source_exists(name: str) -> bool:
    try:
        mix_sources.check(name)
    except BadInput:
        return False  # a dataset folder deleted since the experiment ran
    return True


def alignment_pairs(
    single: pd.DataFrame, mixes: list[dict[str, Any]]
) -> list[tuple[str, str, str, str, str]]:
    """(template, task, base run, tuned run, what the tuned model was trained on) for every
    trained cell whose template's rule reads the task (single-task experiments and each
    sweep's single-template cells)."""
    from cookbook_core.align import alignment
    from cookbook_core.align import runs as alignment_runs
    from cookbook_core.mix import cells

    pairs: list[tuple[str, str, str, str, str]] = []
    for r in single.itertuples():
        origin = mix_sources.template_of(r.template) if _source_exists(r.template) else None
        if origin in alignment.RULES:
            trained = f"{mix_sources.label(r.template)} ({r.source})"
            pairs.append((origin, r.task, r.base_run, r.tuned_run, trained))
    for res in mixes:
        sw, st, by, base = _sweep_cells(res)
        for t in sw.templates:
            if t not in alignment.RULES:
                continue
            tuned = cells.results(by[t], st, sw.metrics)
            for task in alignment_runs.tasks_for_template(t):
                if task in base and task in tuned:
                    pairs.append(
                        (
                            t,
                            task,
                            base[task]["run_dir"],
                            tuned[task]["run_dir"],
                            f"{t} (mix experiment {res['name']})",
                        )
                    )
    return sorted(set(pairs), key=pairs.index)


def alignment_table(single: pd.DataFrame, mixes: list[dict[str, Any]]) -> pd.DataFrame:
    """Gold and generation alignment before/after for every pair of
    :func:`alignment_pairs`."""
    from cookbook_core.align import runs as alignment_runs

    rows = []
    for template, task, b, t, trained in alignment_pairs(single, mixes):
        try:
            cmp = alignment_runs.compare(template, task, b, [t])
        except BadInput as exc:
            rows.append({"template": template, "task": task, "trained": trained, "note": str(exc)})
            continue
        before, after = cmp.iloc[0], cmp.iloc[1]
        rows.append(
            {
                "template": template,
                "task": task,
                "trained": trained,
                "n": int(after["n"]),
                "gold_alignment": 100 * before["gold_alignment"],
                "gen_alignment_base": 100 * before["generation_alignment"],
                "gen_alignment_tuned": 100 * after["generation_alignment"],
                "accuracy_base": 100 * before["accuracy"],
                "accuracy_tuned": 100 * after["accuracy"],
                "delta_alignment": after["delta_alignment"],
                "delta_accuracy": after["delta_accuracy"],
                "note": "",
            }
        )
    return pd.DataFrame(rows)


def gain_splits(single: pd.DataFrame, mixes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Does alignment explain the gain? For every pair of :func:`alignment_pairs`, the
    tuned run's gain over the base run split by whether its answers follow the rule
    (:func:`cookbook_core.align.gain.split_runs`); ``split`` is None and ``note`` says why
    when the runs cannot be aligned."""
    from cookbook_core.align import gain

    out = []
    for template, task, b, t, trained in alignment_pairs(single, mixes):
        row: dict[str, Any] = {"template": template, "task": task, "trained": trained}
        try:
            row["split"] = gain.split_runs(template, task, b, t)
            row["note"] = ""
        except BadInput as exc:
            row["split"], row["note"] = None, str(exc)
        out.append(row)
    return out


def mix_protocol(res: dict[str, Any]) -> dict[str, Any]:
    """A mix experiment's validation protocol: stored with the result, or (for results
    written before it was) computed now from the experiment's stored cells; ``{"error":
    ...}`` when the cells cannot give it."""
    from cookbook_core.mix import protocol, sweep

    if "protocol" in res:
        return res["protocol"]
    try:
        return protocol.run(sweep.SweepConfig(**res["sweep"]))
    except BadInput as exc:
        return {"error": str(exc)}


def collect() -> dict[str, Any]:
    """Every finished experiment of the workspace, as tables (the figures are drawn from
    them by :func:`cookbook_core.studio.figures_experiments.report_figures`)."""
    from cookbook_core.align import runs as alignment_runs

    results = [experiments.read(n) for n in experiments.list_experiments()]
    single = [r for r in results if r["kind"] == "single-task"]
    mixes = [r for r in results if r["kind"] == "mix"]
    for res in mixes:
        res["protocol"] = mix_protocol(res)
    out: dict[str, Any] = {"single": single, "mixes": mixes}
    st = pd.concat([single_task_table(single), sweep_single_rows(mixes)], ignore_index=True)
    out["single_table"] = st
    out["natural_table"] = natural_table(single)
    from cookbook_core.drafting import record as draft_records

    out["drafts"] = draft_records.latest()
    al = alignment_table(st, mixes) if len(st) or mixes else pd.DataFrame()
    out["alignment_table"] = al
    out["gain_splits"] = gain_splits(st, mixes) if len(st) or mixes else []
    pts = pd.DataFrame()
    if len(al) and "delta_alignment" in al:
        pts = al.dropna(subset=["delta_alignment"])
        out["correlation"] = alignment_runs.correlation(pts) if len(pts) >= 3 else None
    out["alignment_points"] = pts
    return out


def _has_fit(res: dict[str, Any]) -> bool:
    v = res.get("validation", {})
    return ("stats" in v and bool(v.get("table"))) or _has_protocol(res)


def _has_protocol(res: dict[str, Any]) -> bool:
    return bool(res.get("protocol", {}).get("fit"))


def fit_points(res: dict[str, Any]) -> pd.DataFrame:
    """The (mixture, task) points of a mix experiment's predicted-vs-observed figure:
    the protocol's (with paired intervals and roles) when there is one."""
    if _has_protocol(res):
        return pd.DataFrame(res["protocol"]["fit"])
    return pd.DataFrame(res["validation"]["table"])


def figure_names(c: dict[str, Any]) -> list[str]:
    """The figures the results page embeds for collected results ``c`` (PNG file stems)."""
    names = ["single_task"] if len(c["single_table"]) else []
    if len(c["alignment_points"]):
        names.append("alignment")
    if any(g["split"] is not None for g in c.get("gain_splits", [])):
        names.append("alignment_gain")
    for res in c["mixes"]:
        names.append(f"{res['name']}_matrix")
        if _has_fit(res):
            names.append(f"{res['name']}_fit")
        names.append(f"{res['name']}_comparison")
    return names


# ----------------------------------------------------------------------------------
# Markdown


def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|")  # a pipe inside a cell would split the column


def _md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(_cell, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(map(_cell, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _naturals(st: pd.DataFrame) -> list[int]:
    """Natural rows per single-task row (0 where none, e.g. a mix experiment's cells)."""
    if "natural" not in st:
        return [0] * len(st)
    return [int(k) if k == k else 0 for k in st["natural"]]  # NaN: a sweep row


def _single_section(c: dict[str, Any]) -> list[str]:
    st = c["single_table"]
    lines = ["## Single-task: fine-tuning on one template's data", ""]
    if st.empty:
        return [*lines, "No single-task experiment has finished yet.", ""]
    shown = pd.DataFrame(
        {
            "template": st["template"].map(mix_sources.label),
            "task (metric)": st["task"] + " (" + st["metric"] + ")",
            "rows": st["rows"],
            "base": [f"{v:.1f}{_ci(c)}" for v, c in zip(st["base"], st["base_ci"], strict=True)],
            "fine-tuned": [
                f"{v:.1f}{_ci(c)}" for v, c in zip(st["tuned"], st["tuned_ci"], strict=True)
            ],
            "gain (paired 95% CI)": [
                f"{v:+.1f}{_ci(c)}" for v, c in zip(st["gain"], st["gain_ci"], strict=True)
            ],
            "steps x batch, lr": [
                f"{s} x {b}, {lr:g}" + (f", +{k} natural" if k else "")
                for s, b, lr, k in zip(
                    st["steps"], st["batch"], st["lr"], _naturals(st), strict=True
                )
            ],
            "from": st["source"],
            "train / eval (min)": [
                f"{a:.1f} / {b:.1f}" for a, b in zip(st["train_min"], st["eval_min"], strict=True)
            ],
        }
    )
    lines += [_md_table(shown), ""]
    for r in st.itertuples():
        lo, hi = r.gain_ci
        if lo > 0:
            verdict = "a gain whose 95% interval excludes zero (the paper's direction)"
        elif hi < 0:
            verdict = "a loss whose 95% interval excludes zero (against the paper's direction)"
        else:
            verdict = "no change distinguishable from zero at this scale"
        lines.append(f"- {mix_sources.label(r.template)} on {r.task} ({r.source}): {verdict}.")
    lines.append("")
    if c["single"]:
        lines.append("Rerun: " + ", ".join(f"`{res['command']}`" for res in c["single"]))
        datasets = [t for t in dict.fromkeys(st["template"]) if mix_sources.is_dataset(t)]
        for t in datasets:
            about = mix_sources.describe(t) if _source_exists(t) else f"`{t}` (deleted)"
            lines.append(f"- Trained on a dataset source: {about}.")
    if c["mixes"]:
        lines.append(
            "Rows from a mix experiment are its single-template cells scored on the "
            "template's own tasks (same base run)."
        )
    lines += ["", "![single-task](results/single_task.png)", ""]
    return lines


def natural_section(c: dict[str, Any]) -> list[str]:
    nt = c.get("natural_table")
    if nt is None or nt.empty:
        return []
    lines = [
        "## Natural-language samples in the fine-tune",
        "",
        "The paper mixes 128 natural-language instruction samples into every template "
        "mixture to keep general ability. Same recipe trained without and with them "
        "(rows: the SELF-GUIDE pack's held-in validation rows when `--natural-data sni`); "
        "difference = with - without, paired over the same examples.",
        "",
    ]
    shown = pd.DataFrame(
        {
            "template": nt["template"].map(mix_sources.label),
            "task (metric)": nt["task"] + " (" + nt["metric"] + ")",
            "rows": nt["rows"],
            "natural rows": nt["natural"],
            "base": nt["base"].map(lambda v: f"{v:.1f}"),
            "without (gain vs base)": [
                f"{v:.1f} ({g:+.1f}{_ci(ci)})"
                for v, g, ci in zip(
                    nt["without"], nt["without_gain"], nt["without_gain_ci"], strict=True
                )
            ],
            "with (gain vs base)": [
                f"{v:.1f} ({g:+.1f}{_ci(ci)})"
                for v, g, ci in zip(nt["with"], nt["with_gain"], nt["with_gain_ci"], strict=True)
            ],
            "with - without (paired 95% CI)": [
                f"{v:+.1f}{_ci(ci)}"
                for v, ci in zip(nt["difference"], nt["difference_ci"], strict=True)
            ],
        }
    )
    lines += [_md_table(shown), ""]
    for r in nt.itertuples():
        lo, hi = r.difference_ci
        if lo > 0:
            verdict = f"the {r.natural} natural rows raise it (interval above zero)"
        elif hi < 0:
            verdict = f"the {r.natural} natural rows lower it (interval below zero)"
        else:
            verdict = f"no difference distinguishable from zero with {r.natural} natural rows"
        lines.append(f"- {mix_sources.label(r.template)}, {r.task}: {verdict}.")
    commands = dict.fromkeys(cmd for cmds in nt["commands"] for cmd in cmds)
    lines += ["", "Rerun: " + ", ".join(f"`{cmd}`" for cmd in commands), ""]
    return lines


def _pct(x: Any) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, int | float) else "-"


def _answered_by(info: dict[str, Any]) -> str:
    """``default (served, vllm, float32)`` from a drafting run's backend description."""
    extra = [str(info[k]) for k in ("backend", "engine", "dtype", "device") if info.get(k)]
    return f"{info.get('model', '?')} ({', '.join(extra)})" if extra else str(info.get("model"))


def drafting_section(c: dict[str, Any]) -> list[str]:
    drafts = c.get("drafts") or []
    if not drafts:
        return []
    lines = [
        "## Template drafting: candidates through the checks",
        "",
        "The newest `cookbook templates draft` run per task: how many candidates (first "
        "round plus repairs) passed each stage, and the shipped template measured on the "
        "same rows (its checker, in the sandbox: share of gold answers accepted / of wrong "
        "answers accepted) and its hand-written rule's gold alignment.",
        "",
    ]
    rows = []
    for d in drafts:
        f, base = d["funnel"], d.get("baseline") or {}
        hand = d.get("baseline_handwritten") or {}
        best = next((r for r in d.get("table", []) if r.get("id") == d.get("best")), None)
        rows.append(
            {
                "task": d["task"],
                "model": _answered_by(d["answered_by"]),
                "candidates": f["candidates"],
                "code found": f["extract"],
                "static": f["static"],
                "preview": f["preview"],
                "checker": f["checker"],
                "alignment": f["alignment"],
                "best draft's alignment": _pct(best["alignment"]) if best else "none passed",
                "shipped": f"{base.get('template', '-')}: {_pct(base.get('alignment'))} / "
                f"{_pct(base.get('wrong_accept'))}",
                "hand-written rule": _pct(hand.get("gold_alignment")),
                "rows": d["rows_measured"],
                "seconds": f"{d['elapsed_s']:.0f}",
            }
        )
    lines += [_md_table(pd.DataFrame(rows)), ""]
    for d in drafts:
        table = d.get("table", [])
        stages: dict[str, int] = {}
        for r in table:
            if r.get("reason"):
                stages[r["stage"]] = stages.get(r["stage"], 0) + 1
        example = next((r["reason"] for r in table if r.get("reason")), None)
        lines.append(
            f"- {d['task']}: "
            + (f"best candidate {d['best']}" if d.get("best") else "no candidate passed")
            + (
                "; failed at " + ", ".join(f"{k} ({v})" for k, v in stages.items())
                if stages
                else ""
            )
            + (f'; e.g. "{example[:160]}"' if example else "")
            + "."
        )
    lines += [
        "",
        "Rerun: "
        + ", ".join(f"`{d['command']}`" for d in drafts)
        + " (finished "
        + ", ".join(str(d.get("finished", "?")) for d in drafts)
        + ")",
        "",
    ]
    return lines


def _metrics_line(res: dict[str, Any]) -> str:
    """Which metric each matrix column holds and which backend answered the evaluations."""
    out = ""
    if res.get("metrics"):
        out += " Matrix metric per task: " + ", ".join(
            f"{t} {m}" for t, m in res["metrics"].items()
        )
        out += "."
    if res.get("eval_backends"):
        names = {"served": "served by vLLM", "transformers": "transformers in-process"}
        out += " Evaluation runs: " + ", ".join(
            f"{n} {names.get(b, b)}" for b, n in res["eval_backends"].items()
        )
        out += "."
    return out


def _mix_section(res: dict[str, Any]) -> list[str]:
    name = res["name"]
    sw = res["sweep"]
    lines = [
        f"## Cookbook-Mix: `{name}`",
        "",
        f"Templates: {', '.join(sw['templates'])}. Tasks: {', '.join(sw['tasks'])} "
        f"({sw['limit']} rows each). Each cell: {sw['n']} samples, "
        f"{sw['train'].get('steps')} LoRA steps of batch {sw['train'].get('batch_size', DEFAULT_BATCH)}"
        + (f", lr {sw['train']['lr']:g}" if sw["train"].get("lr") else "")
        + "."
        + _metrics_line(res),
        "",
        "### Accuracy matrix (points)",
        "",
    ]
    A = pd.DataFrame(res["matrix"]).T
    A.insert(0, "trained on", A.index)
    lines += [_md_table(A.round(1).fillna("-")), "", f"![matrix](results/{name}_matrix.png)", ""]
    v = res.get("validation", {})
    lines += ["### Does the linear model hold?", ""]
    if "stats" in v:
        s = v["stats"]
        lines.append(
            f"Over {s['cells']} (mixture, task) cells: mean |predicted - observed| "
            f"{s['mean_abs_error']:.2f} points, median {s['median_abs_error']:.2f}, max "
            f"{s['max_abs_error']:.2f}; leave-one-out mean |error| "
            f"{v['loo_mean_abs_error']:.2f} points (every run, single templates included, "
            "held out in turn). The paper reports 1.4 (mean) and 0.4 (median) points."
        )
        lines.append("")
    else:
        lines += [v.get("error", "not measured"), ""]
    p = res.get("protocol", {})
    if _has_protocol(res):
        rows_per_task = ", ".join(f"{t} {n}" for t, n in p["rows"].items())
        lines += [
            "#### The paper's validation protocol, with intervals",
            "",
            f"Linear prediction from the single-template rows vs the observed mixture, per "
            f"(mixture, task); intervals are paired bootstrap 95% intervals over the "
            f"evaluation examples ({p['n_boot']} resamples; rows per task: {rows_per_task}), "
            "every model resampled on the same examples. Leave-one-out predicts each "
            "mixture from a matrix fitted on the single templates and the other mixtures.",
            "",
            _md_table(protocol.stats_frame(p)),
            "",
            *(f"- {line}" for line in protocol.fit_verdicts(p)),
            "",
            _md_table(protocol.fit_frame(p)),
            "",
        ]
    elif p.get("error"):
        lines += [f"Validation protocol: not computed ({p['error']}).", ""]
    if _has_fit(res):
        lines += [f"![fit](results/{name}_fit.png)", ""]
    comp = pd.DataFrame(res["comparison"]).T.round(1)
    comp.insert(0, "model", comp.index)
    w = res["weights"]
    opt_keys = [k for k in w if k.startswith("opt-")]
    weights = "; ".join(
        f"{k}: " + ", ".join(f"{t} {x:.2f}" for t, x in w[k].items() if x > 0.005) for k in opt_keys
    )
    lines += [
        "### Optimized mixture vs the alternatives (observed, points)",
        "",
        f"Optimized weights ({weights}). Best single template: {res['best_single']}.",
        "",
        _md_table(comp),
        "",
    ]
    rows = res["comparison"]
    for opt_label in [k for k in rows if k.startswith("optimized")]:
        for metric in ("average", "worst"):
            o = rows[opt_label][metric]
            others = [k for k in rows if not k.startswith("optimized")]
            better = [k for k in others if rows[k][metric] > o]
            if better:
                lines.append(
                    f"- {metric} accuracy: {opt_label} ({o:.1f}) is below "
                    f"{', '.join(f'{k} ({rows[k][metric]:.1f})' for k in better)}: the "
                    "paper's direction is not reproduced at this scale (see the intervals)."
                )
            else:
                lines.append(
                    f"- {metric} accuracy: {opt_label} ({o:.1f}) is at least as high as "
                    "every alternative (the paper's direction; see the intervals)."
                )
    if p.get("optimized"):
        lines += [
            "",
            "With paired bootstrap 95% intervals (points; the same resampled examples for "
            "every model):",
            "",
            _md_table(protocol.models_table(p)),
            "",
            _md_table(protocol.optimized_frame(p)),
            "",
            *(f"- {line}" for line in protocol.optimizer_verdicts(p)),
        ]
    secs = sum(x["train_seconds"] + x["eval_seconds"] for x in res["seconds"].values())
    lines += [
        "",
        f"![comparison](results/{name}_comparison.png)",
        "",
        f"Time: {secs / 60:.0f} minutes of training and evaluation over "
        f"{len(res['seconds'])} cells. Rerun: `{res['command']}`.",
        "",
    ]
    return lines


def _alignment_section(c: dict[str, Any]) -> list[str]:
    al = c["alignment_table"]
    lines = ["## Template alignment", ""]
    if al.empty:
        return [*lines, "No run to measure alignment on yet.", ""]
    ok = al[al["note"] == ""] if "note" in al else al
    if len(ok):
        shown = pd.DataFrame(
            {
                "template": ok["template"],
                "task": ok["task"],
                "tuned model trained on": ok["trained"],
                "rows": ok["n"].astype(int),
                "gold alignment": ok["gold_alignment"].round(1),
                "generation alignment base -> tuned": [
                    f"{a:.1f} -> {b:.1f}"
                    for a, b in zip(
                        ok["gen_alignment_base"], ok["gen_alignment_tuned"], strict=True
                    )
                ],
                "accuracy base -> tuned": [
                    f"{a:.1f} -> {b:.1f}"
                    for a, b in zip(ok["accuracy_base"], ok["accuracy_tuned"], strict=True)
                ],
            }
        )
        lines += [_md_table(shown), ""]
    for r in al[al["note"] != ""].itertuples() if "note" in al else []:
        lines.append(f"- {r.template} on {r.task}, {r.trained}: not measured ({r.note})")
    corr = c.get("correlation")
    if corr is not None:
        r, lo, hi = corr
        lines += [
            "",
            f"Pearson r between the change in generation alignment and the change in accuracy "
            f"over {len(ok)} (template, task) points: {r:.2f} (bootstrap 95% CI "
            f"[{lo:.2f}, {hi:.2f}]). The paper finds a positive relation. The bootstrap "
            "treats the points as independent; rows that share a trained model (one sweep "
            "scored at two row limits, or variants of one experiment) are not, so the "
            "interval is too narrow when the table has such rows.",
        ]
    if "alignment" in figure_names(c):
        lines += ["", "![alignment](results/alignment.png)"]
    return [*lines, "", *_gain_section(c)]


def _gain_section(c: dict[str, Any]) -> list[str]:
    """Does alignment explain the gain? The per-example split of every tuned model's gain."""
    from cookbook_core.align import gain

    splits = c.get("gain_splits", [])
    if not splits:
        return []
    lines = [
        "### Does alignment explain the gain?",
        "",
        "Per example, the tuned model's gain over the base model (paired differences, "
        "points) split by whether the tuned model's answer follows the template's rule; a "
        "group's contribution is its summed differences over all rows, so the two "
        "contributions add up to the gain. Intervals: paired bootstrap 95% over the "
        "examples.",
        "",
    ]
    golds = {}
    al = c["alignment_table"]
    for r in al.itertuples() if len(al) and "gold_alignment" in al else []:
        golds[(r.template, r.task, r.trained)] = r.gold_alignment
    rows = []
    for g in splits:
        s = g["split"]
        if s is None:
            continue
        a, u = s.row(gain.FOLLOWS), s.row(gain.NOT_FOLLOWS)
        rows.append(
            {
                "template": g["template"],
                "task": g["task"],
                "tuned model trained on": g["trained"],
                "rows": s.n,
                "gain [95% CI]": gain.ci_text(s.gain, s.lo, s.hi),
                "follows the rule: n, acc base -> tuned": f"{a.n}, "
                + (f"{a.base_accuracy:.1f} -> {a.tuned_accuracy:.1f}" if a.n else "-"),
                "follows: contribution [95% CI]": gain.ci_text(
                    a.contribution, a.contribution_lo, a.contribution_hi
                ),
                "does not follow: n, acc base -> tuned": f"{u.n}, "
                + (f"{u.base_accuracy:.1f} -> {u.tuned_accuracy:.1f}" if u.n else "-"),
                "does not follow: contribution [95% CI]": gain.ci_text(
                    u.contribution, u.contribution_lo, u.contribution_hi
                ),
            }
        )
    if rows:
        lines += [_md_table(pd.DataFrame(rows)), ""]
    for g in splits:
        who = f"{g['template']} on {g['task']}, {g['trained']}"
        if g["split"] is None:
            lines.append(f"- {who}: not split ({g['note']})")
            continue
        text = gain.explain(g["split"])
        gold = golds.get((g["template"], g["task"], g["trained"]))
        if gold is not None:
            text += (
                f" The rule's own gold alignment on these rows is {gold:.1f}%: on the "
                f"{100 - gold:.1f}% of rows whose gold answer does not follow the rule, a right "
                "answer cannot follow it either, so a gain there is not alignment with this rule."
            )
        lines.append(f"- {who}: {text}")
    if "alignment_gain" in figure_names(c):
        lines += ["", "![alignment gain](results/alignment_gain.png)"]
    return [*lines, ""]


def _unfinished_sweeps(c: dict[str, Any]) -> list[str]:
    """Sweeps with no finished experiment: what was measured so far and what is missing."""
    from cookbook_core.mix import sweep

    done = {res["name"] for res in c["mixes"]}
    lines: list[str] = []
    for name in sweep.list_sweeps():
        if name in done:
            continue
        cfg = sweep.load(name)
        A = sweep.matrix(cfg, write=False)
        if A.notna().sum().sum() == 0:
            continue
        gaps = sweep.missing(cfg)
        shown = (100 * A).round(1).astype(object).where(A.notna(), "-")
        shown.insert(0, "trained on", shown.index)
        lines += [
            f"## Unfinished sweep `{name}` (measured cells only)",
            "",
            f"Tasks at {cfg.limit} rows each; {cfg.train.get('steps')} LoRA steps per "
            f"template. {len(gaps)} (cell, task) results are missing; finish it with "
            f"`cookbook mix sweep {name}` (or the experiment command that created it).",
            "",
            _md_table(shown),
            "",
        ]
    return lines


def render(c: dict[str, Any], archived: list[str] | None = None) -> str:
    """The Markdown page for collected results; ``archived``: links (relative to the
    page) of earlier pages kept beside it, listed at the end."""
    runs = [*c["single"], *c["mixes"]]
    lines = [
        "# Results: the Cookbook paper's effects on this machine",
        "",
        "Generated by `cookbook experiment report` from the experiments stored in the "
        "workspace; no number on this page is typed by hand. Rerun an experiment with the "
        "command under its section, then the report.",
        "",
    ]
    if runs:
        m = runs[0]["machine"]
        lines += [
            f"Machine: {m['platform']}, {m['cpus']} CPUs, device {m['device']}, torch "
            f"{m['torch']}. Model: the embedded SmolLM2-135M-Instruct (`default`), LoRA r=16. "
            f"Evaluation data: `../shared/data` (row counts per table). Last result: "
            f"{max(r['finished'] for r in runs)}.",
            "",
            "At this scale (a 135M model, tens of LoRA steps, at most a few hundred evaluation rows) "
            "intervals are wide: read the intervals, not only the point estimates. Times "
            "are the wall-clock seconds the runs recorded; on a shared machine they include "
            "waiting for the CPU.",
            "",
        ]
    lines += _single_section(c)
    lines += natural_section(c)
    for res in c["mixes"]:
        lines += _mix_section(res)
    lines += _unfinished_sweeps(c)
    lines += _alignment_section(c)
    lines += drafting_section(c)
    if archived:
        lines += [
            "## Earlier pages",
            "",
            "Generated from workspaces that are no longer stored (kept as they were; not "
            "regenerated): " + ", ".join(f"[{Path(a).parent.name}]({a})" for a in archived),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    out_dir: str | Path = "docs",
    *,
    collected: dict[str, Any] | None = None,
    draw: Callable[[dict[str, Any], Path], object] | None = None,
) -> Path:
    """Write ``RESULTS.md`` (atomically) from ``collected`` (default: :func:`collect`).

    ``draw(c, out_dir / "results")`` writes the PNGs the page links to (the CLI passes
    :func:`cookbook_core.studio.figures_experiments.write_pngs`); None writes none.  The
    figures come in as a function so that this module never imports Plotly.
    """
    out_dir = Path(out_dir)
    c = collect() if collected is None else collected
    from cookbook_core.mix import sweep

    if not c["single"] and not c["mixes"] and not sweep.list_sweeps() and not c.get("drafts"):
        raise BadInput(
            "no finished experiment in this workspace: run `cookbook experiment single-task "
            "--template document_qa` first"
        )
    if draw is not None:
        draw(c, out_dir / "results")
    path = out_dir / "RESULTS.md"
    archived = sorted(
        str(f.relative_to(out_dir)) for f in (out_dir / "results").glob("*/RESULTS.md")
    )
    storage.write_text(path, render(c, archived))
    return path
