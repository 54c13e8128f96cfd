"""``cookbook mix ...``: Cookbook-Mix from the command line.

``mix optimize`` picks weights from an accuracy matrix (CSV: first column the
template, one column per task, accuracies in [0, 1]); ``mix what-if`` predicts a
mixture's per-task accuracy; ``mix build`` writes the mixed dataset with exact
counts and records the weights (and the objective that produced them) in its
manifest.  The math lives in :mod:`cookbook_core.mix.mixing`; sweeps that measure the
matrix are jobs.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cookbook_core import storage
from cookbook_core.errors import BadInput

if TYPE_CHECKING:  # pandas is imported only when a mix command runs (fast `cookbook --help`)
    import pandas as pd


def read_matrix(path: str | Path) -> pd.DataFrame:
    """An accuracy matrix from CSV (index: templates, columns: tasks), as checked floats.

    ``BadInput`` (naming the line or cell) for a file that is not UTF-8 CSV, a row with
    more cells than the header, an unnamed or duplicated template row or task column, a
    cell that is not a number, a missing or infinite cell, or an accuracy outside [0, 1].
    """
    import pandas as pd

    from cookbook_core.mix import mixing

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"accuracy matrix {path} does not exist")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text (is it a binary file?)") from None
    if "\0" in text:
        raise BadInput(f"{path}: not a CSV accuracy matrix (it holds NUL bytes)")
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((reader.line_num, [c.strip() for c in cells]))
    except csv.Error as exc:
        raise BadInput(f"{path}:{reader.line_num}: not a CSV accuracy matrix ({exc})") from None
    if len(rows) < 2 or len(rows[0][1]) < 2:
        raise BadInput(
            f"{path}: the accuracy matrix is empty (expected a header row naming the tasks "
            "and one row per template)"
        )
    header = rows[0][1]
    if "" in header[1:]:
        raise BadInput(f"{path}:{rows[0][0]}: a task column has no name")
    index, body = [], []
    for line, cells in rows[1:]:
        if len(cells) > len(header):
            raise BadInput(
                f"{path}:{line}: {len(cells)} cells but the header has {len(header)} columns"
            )
        if not cells[0]:
            raise BadInput(f"{path}:{line}: the template name (first cell) is empty")
        index.append(cells[0])
        body.append(cells[1:] + [""] * (len(header) - len(cells)))
    frame = pd.DataFrame(body, index=pd.Index(index, name=header[0] or None), columns=header[1:])
    try:
        return mixing.check_matrix(frame)
    except mixing.MixingError as exc:
        raise BadInput(f"{path}: {exc}") from None


def parse_weights(items: list[str], what: str = "--weights") -> dict[str, float]:
    """``name=weight`` items (comma-separated or repeated) as a dict; ``BadInput`` for a
    malformed item, a name given twice, or a weight that is not a finite number >= 0."""
    out: dict[str, float] = {}
    for item in ",".join(items).split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BadInput(f"{what} {item!r}: expected NAME=WEIGHT")
        try:
            weight = float(value)
        except ValueError:
            raise BadInput(f"{what} {item!r}: expected NAME=WEIGHT") from None
        if not (math.isfinite(weight) and weight >= 0):
            raise BadInput(f"{what} {item!r}: the weight must be a finite number >= 0")
        if name in out:
            raise BadInput(f"{what}: {name!r} is given more than once")
        out[name] = weight
    if not out:
        raise BadInput(f"no {what} given")
    return out


def parse_bounds(items: list[str]) -> dict[str, tuple[float, float]]:
    """``name=low:high`` items as a dict."""
    out = {}
    for item in items:
        name, _, rng = item.partition("=")
        low, colon, high = rng.partition(":")
        try:
            out[name] = (float(low or 0), float(high or 1))
        except ValueError:
            raise BadInput(f"--bound {item!r}: expected TEMPLATE=LOW:HIGH") from None
        if not colon:
            raise BadInput(f"--bound {item!r}: expected TEMPLATE=LOW:HIGH")
    return out


def cmd_optimize(args: argparse.Namespace) -> int:
    from cookbook_core.mix import mixing

    if args.out:
        storage.check_output(args.out, folder=False)
    A = read_matrix(args.matrix)
    res = mixing.optimize(
        A,
        args.objective,
        bounds=parse_bounds(args.bound),
        task_weights=parse_weights(args.task_weight, "--task-weight") if args.task_weight else None,
        temperature=args.temperature,
    )
    if args.out:
        storage.write_json(args.out, res.manifest())
    print(f"objective: {res.objective} (value {100 * res.value:.2f} pts)")
    for t, w in sorted(res.weights.items(), key=lambda kv: -kv[1]):
        print(f"  {t:<24} {w:.3f}")
    print("predicted accuracy per task:")
    for k, v in res.predicted.items():
        print(f"  {k:<24} {100 * v:.1f}")
    return 0


def cmd_what_if(args: argparse.Namespace) -> int:
    from cookbook_core.mix import mixing

    A = read_matrix(args.matrix)
    ref = A.loc["base"] if "base" in A.index else None
    table = mixing.what_if(
        A.drop(index=["base"], errors="ignore"),
        parse_weights(args.weights),
        ref,
        normalize=args.normalize,
    )
    print((100 * table).round(1).to_string())
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from cookbook_core.generate import generate
    from cookbook_core.mix import build as mix_build

    if args.out:
        storage.check_output(args.out, folder=True)
    weights = parse_weights(args.weights)
    total = sum(weights.values())
    if abs(total - 1) > 1e-6 and not args.normalize:
        raise BadInput(f"weights sum to {total:g}, not 1; pass --normalize to rescale them")
    provenance = json.loads(Path(args.from_result).read_text()) if args.from_result else None
    if provenance is not None:
        provenance.pop("weights", None)
    cfg = mix_build.mixture_config(
        weights, args.n, seed=args.seed, workers=args.workers, provenance=provenance
    )
    out = Path(args.out) if args.out else mix_build.default_out(args.n, args.seed)
    m = generate(cfg, out, overwrite=args.overwrite)
    print(f"wrote {m['n']} samples to {out}")
    for t in m["templates"]:
        print(f"  {t['name']:<24} {t['count']:>8} ({t['share']:.1%})")
    return 0


def add_commands(sub: Any) -> None:
    mp = sub.add_parser("mix", help="Cookbook-Mix: optimize, predict and build template mixtures")
    msub = mp.add_subparsers(dest="mix_command", required=True, metavar="ACTION")

    p = msub.add_parser(
        "optimize", help="weights that maximize an objective under the linear model"
    )
    p.add_argument(
        "--matrix", required=True, help="accuracy matrix CSV (rows: templates; 'base' ignored)"
    )
    p.add_argument(
        "--objective",
        choices=["mean", "maxmin", "entropy"],
        default="maxmin",
        help="mean (lands on a vertex), maxmin (worst task; default), entropy",
    )
    p.add_argument("--temperature", type=float, default=0.01, help="entropy objective's weight")
    p.add_argument("--bound", action="append", default=[], metavar="TEMPLATE=LOW:HIGH")
    p.add_argument("--task-weight", action="append", default=[], metavar="TASK=WEIGHT")
    p.add_argument("--out", help="write the result (weights, objective, prediction) as JSON")
    p.set_defaults(func=cmd_optimize)

    p = msub.add_parser("what-if", help="predicted per-task accuracy of a mixture")
    p.add_argument("--matrix", required=True)
    p.add_argument("--weights", action="append", required=True, metavar="T=W[,T=W...]")
    p.add_argument("--normalize", action="store_true", help="rescale weights to sum to 1")
    p.set_defaults(func=cmd_what_if)

    p = msub.add_parser("build", help="write a mixed dataset with exact counts")
    p.add_argument("--weights", action="append", required=True, metavar="T=W[,T=W...]")
    p.add_argument("-n", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out")
    p.add_argument("--normalize", action="store_true")
    p.add_argument(
        "--from-result", help="JSON from 'mix optimize --out' (recorded in the manifest)"
    )
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_build)

    from cookbook_core.cli import sweep as cli_sweep

    cli_sweep.add_commands(msub)
