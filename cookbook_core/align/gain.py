"""Does alignment explain the gain?  A fine-tuned model's gain over the base model on a
task, split over the examples by whether the tuned model's answer follows the
template's rule.

The paper reports that fine-tuning gains are largely explained by generations that
adhere better to the template's rule.  A correlation across runs
(:func:`cookbook_core.align.runs.correlation`) cannot say which examples carry a gain;
this module does it per example.  It joins the per-example frames of a base run and
a tuned run (:func:`cookbook_core.align.runs.run_frame`: the rule's verdict, the
model's answer, whether it follows the rule, whether it is right) on the example id
and splits the paired differences ``tuned - base`` (points):

* by the **tuned answer**: follows the rule / does not;
* by the **change**: follows in both runs, newly follows, no longer follows, follows
  in neither.

Per group: the count, each run's accuracy, the gain within the group, and the group's
**contribution** to the overall gain (its summed differences over all examples, so the
contributions of a split add up to the gain), each with a paired bootstrap 95%
interval (the examples are resampled, both runs together).  :func:`explain` says in
words what the intervals allow.  It reads stored runs only; it runs no model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cookbook_core.align import runs as alignment_runs
from cookbook_core.errors import BadInput

FOLLOWS, NOT_FOLLOWS = "answer follows the rule", "answer does not follow"
CHANGES = {
    (True, True): "follows in both runs",
    (False, True): "newly follows",
    (True, False): "no longer follows",
    (False, False): "follows in neither",
}
COLUMNS = [
    "split",
    "group",
    "n",
    "share",
    "base_accuracy",
    "tuned_accuracy",
    "gain",
    "gain_lo",
    "gain_hi",
    "contribution",
    "contribution_lo",
    "contribution_hi",
]


@dataclass
class GainSplit:
    """The gain of a tuned run over a base run, split by rule-following (points)."""

    n: int
    base_accuracy: float
    tuned_accuracy: float
    gain: float
    lo: float
    hi: float
    base_alignment: float
    tuned_alignment: float
    groups: pd.DataFrame  # COLUMNS

    def row(self, group: str) -> pd.Series:
        return self.groups.set_index("group").loc[group]

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "groups"}
        out["groups"] = (
            self.groups.astype(object).where(self.groups.notna(), None).to_dict(orient="records")
        )
        return out


def _interval(reps: np.ndarray) -> tuple[float, float]:
    reps = reps[np.isfinite(reps)]
    if not len(reps):
        return math.nan, math.nan
    return float(np.quantile(reps, 0.025)), float(np.quantile(reps, 0.975))


def split_frames(
    base: pd.DataFrame, tuned: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0
) -> GainSplit:
    """Split the gain of ``tuned`` over ``base`` (frames of
    :func:`~cookbook_core.align.runs.run_frame`, joined on ``id``)."""
    j = base[["id", "follows_rule", "correct"]].merge(
        tuned[["id", "follows_rule", "correct"]], on="id", suffixes=("_base", "_tuned")
    )
    if j.empty:
        raise BadInput("the base and tuned runs share no example")
    j = j.sort_values("id", kind="stable").reset_index(drop=True)
    n = len(j)
    cb = j["correct_base"].to_numpy(dtype=float)
    ct = j["correct_tuned"].to_numpy(dtype=float)
    fb = j["follows_rule_base"].to_numpy(dtype=bool)
    ft = j["follows_rule_tuned"].to_numpy(dtype=bool)
    d = 100 * (ct - cb)
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=n_boot)
    total_reps = counts @ d / n
    lo, hi = _interval(total_reps)
    groups = [("tuned answer", FOLLOWS, ft), ("tuned answer", NOT_FOLLOWS, ~ft)]
    groups += [("base -> tuned", label, (fb == b) & (ft == t)) for (b, t), label in CHANGES.items()]
    rows = []
    for split, label, mask in groups:
        m = mask.astype(float)
        k = int(mask.sum())
        sums = counts @ (d * m)
        sizes = counts @ m
        with np.errstate(invalid="ignore", divide="ignore"):
            within = np.where(sizes > 0, sums / np.where(sizes > 0, sizes, 1), np.nan)
        g_lo, g_hi = _interval(within) if k else (math.nan, math.nan)
        c_lo, c_hi = _interval(sums / n)
        rows.append(
            {
                "split": split,
                "group": label,
                "n": k,
                "share": 100 * k / n,
                "base_accuracy": 100 * float(cb[mask].mean()) if k else math.nan,
                "tuned_accuracy": 100 * float(ct[mask].mean()) if k else math.nan,
                "gain": float(d[mask].mean()) if k else math.nan,
                "gain_lo": g_lo,
                "gain_hi": g_hi,
                "contribution": float(d[mask].sum() / n),
                "contribution_lo": c_lo,
                "contribution_hi": c_hi,
            }
        )
    return GainSplit(
        n=n,
        base_accuracy=100 * float(cb.mean()),
        tuned_accuracy=100 * float(ct.mean()),
        gain=float(d.mean()),
        lo=lo,
        hi=hi,
        base_alignment=100 * float(fb.mean()),
        tuned_alignment=100 * float(ft.mean()),
        groups=pd.DataFrame(rows, columns=COLUMNS),
    )


def split_runs(
    template: str,
    task: str,
    base_run: str | Path,
    tuned_run: str | Path,
    *,
    params: Mapping[str, Any] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> GainSplit:
    """:func:`split_frames` of two stored evaluation runs (folders or listed run ids)."""
    base = alignment_runs.run_frame(template, task, base_run, params=params)
    tuned = alignment_runs.run_frame(template, task, tuned_run, params=params)
    return split_frames(base, tuned, n_boot=n_boot, seed=seed)


def ci_text(v: float, lo: float, hi: float) -> str:
    """``+1.2 [-0.5, +3.0]`` (points; ``-`` when undefined)."""
    if not math.isfinite(v):
        return "-"
    if math.isfinite(lo) and math.isfinite(hi):
        return f"{v:+.1f} [{lo:+.1f}, {hi:+.1f}]"
    return f"{v:+.1f}"


def _sign(lo: float, hi: float) -> int:
    """+1 / -1 when the interval is above / below zero, 0 when it contains zero."""
    if math.isfinite(lo) and lo > 0:
        return 1
    if math.isfinite(hi) and hi < 0:
        return -1
    return 0


def explain(s: GainSplit) -> str:
    """What the split allows one to say (no claim beyond the 95% intervals)."""
    a, u = s.row(FOLLOWS), s.row(NOT_FOLLOWS)
    head = (
        f"Gain {ci_text(s.gain, s.lo, s.hi)} points over {s.n} examples (accuracy "
        f"{s.base_accuracy:.1f} -> {s.tuned_accuracy:.1f}; generation alignment "
        f"{s.base_alignment:.1f} -> {s.tuned_alignment:.1f}): "
        f"{ci_text(a.contribution, a.contribution_lo, a.contribution_hi)} from the {a.n} "
        f"examples whose tuned answer follows the rule and "
        f"{ci_text(u.contribution, u.contribution_lo, u.contribution_hi)} from the {u.n} whose "
        "answer does not."
    )
    if _sign(s.lo, s.hi) == 0:
        return head + " The gain itself is not distinguishable from zero: nothing to explain."
    sa = _sign(a.contribution_lo, a.contribution_hi)
    su = _sign(u.contribution_lo, u.contribution_hi)
    if sa != 0 and su == 0:
        tail = (
            " The gain is carried by rule-following answers (the paper's explanation holds here)."
        )
    elif su != 0 and sa == 0:
        bound = a.contribution_hi if math.isfinite(a.contribution_hi) else a.contribution
        most = (
            "explains less than half of it" if bound < s.gain / 2 else "is not shown to explain it"
        )
        tail = (
            " The gain is on answers that do not follow the rule: rule-following accounts "
            f"for at most {bound:.1f} points of it (upper end of its interval), so alignment "
            f"with this rule {most}."
        )
    elif sa != 0 and su != 0:
        tail = " Both subsets contribute a gain distinguishable from zero."
    else:
        tail = " Neither subset's contribution is distinguishable from zero on its own."
    return head + tail


def contributions_frame(splits: Mapping[str, GainSplit]) -> pd.DataFrame:
    """Long table for a figure: per named split, the total gain and the contributions of
    the examples whose tuned answer follows the rule and of the rest (points, 95% CI)."""
    rows = []
    for name, s in splits.items():
        rows.append(
            {"model": name, "group": "total gain", "contribution": s.gain, "lo": s.lo, "hi": s.hi}
        )
        for label in (FOLLOWS, NOT_FOLLOWS):
            r = s.row(label)
            rows.append(
                {
                    "model": name,
                    "group": label,
                    "contribution": float(r.contribution),
                    "lo": float(r.contribution_lo),
                    "hi": float(r.contribution_hi),
                }
            )
    return pd.DataFrame(rows, columns=["model", "group", "contribution", "lo", "hi"])


def table(s: GainSplit) -> pd.DataFrame:
    """The split as a display table: counts, accuracies, gain and contribution [95% CI]."""
    g = s.groups
    return pd.DataFrame(
        {
            "split": g["split"],
            "examples": g["group"],
            "n": g["n"],
            "share %": g["share"].round(1),
            "base acc": g["base_accuracy"].round(1),
            "tuned acc": g["tuned_accuracy"].round(1),
            "gain within [95% CI]": [
                ci_text(v, a, b)
                for v, a, b in zip(g["gain"], g["gain_lo"], g["gain_hi"], strict=True)
            ],
            "contribution to the gain [95% CI]": [
                ci_text(v, a, b)
                for v, a, b in zip(
                    g["contribution"], g["contribution_lo"], g["contribution_hi"], strict=True
                )
            ],
        }
    )
