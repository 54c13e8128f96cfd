"""``cookbook mix sweep|status|validate|verify``: measure the accuracy matrix and test the fit.

``mix sweep NAME --template ... --task-group gpt4all`` saves a sweep and runs (or,
with ``--background``, queues as jobs) every cell it still lacks: the base model,
one fine-tune per template and the validation mixtures.  ``mix status NAME`` prints
the matrix measured so far and the missing (cell, task) pairs; ``mix validate``
the linear model's predicted vs observed table with its error statistics;
``mix verify`` optimizes a mixture on the matrix, trains and evaluates it, and
reports predicted vs observed.  The work is :mod:`cookbook_core.mix.sweep`; this
module only parses and prints.
"""

from __future__ import annotations

import argparse
from typing import Any

from cookbook_core.errors import BadInput


def stage_bar(quiet: bool = False) -> Any:
    """A progress callback ``(cell, stage, done, total)`` drawing one tqdm bar per stage."""
    from tqdm import tqdm

    state: dict[str, Any] = {"key": None, "bar": None}

    def progress(cell: str, stage: str, done: int, total: int) -> None:
        if quiet:
            return
        key = (cell, stage)
        if state["key"] != key:
            if state["bar"] is not None:
                state["bar"].close()
            state["bar"] = tqdm(total=total, desc=f"{cell}: {stage}", mininterval=0.5)
            state["key"] = key
        bar = state["bar"]
        bar.total = total
        bar.n = done
        bar.refresh()

    return progress


def add_executor_arguments(p: argparse.ArgumentParser) -> None:
    """``--executor local|ray`` and the Ray options (shared by ``mix sweep`` and
    ``experiment ...``)."""
    g = p.add_argument_group("executor (where the cells run)")
    g.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: in this process (default); ray: one Ray task per missing cell (every "
        "node must see this workspace at the same path: see docs/SCALING.md)",
    )
    g.add_argument(
        "--address",
        default=None,
        help="Ray cluster: auto (one running on this machine) or HOST:PORT of its head "
        "(default: $RAY_ADDRESS, else a private local cluster for this run)",
    )
    g.add_argument("--cpus-per-cell", type=float, default=None, help="Ray CPUs (default 1)")
    g.add_argument(
        "--gpus-per-cell",
        type=float,
        default=None,
        help="Ray GPUs (default: 1 when the cluster has GPUs, else 0)",
    )
    g.add_argument(
        "--memory-per-cell",
        type=float,
        default=None,
        help="Ray memory in GiB (default: estimated from the model, batch and length)",
    )
    g.add_argument(
        "--ray-retries",
        type=int,
        default=1,
        help="automatic resumes of a cell whose Ray worker died (default 1)",
    )


def ray_options(args: argparse.Namespace) -> Any:
    """A :class:`~cookbook_core.mix.ray_cells.RayOptions` for ``--executor ray`` (else None)."""
    if getattr(args, "executor", "local") != "ray":
        if getattr(args, "address", None):
            raise BadInput("--address needs --executor ray")
        return None
    from cookbook_core.mix import ray_cells

    ray_cells.import_ray()
    if getattr(args, "background", False):
        raise BadInput(
            "--executor ray runs the cells from this command (the driver): drop --background"
        )
    opts = ray_cells.RayOptions(
        address=args.address,
        cpus=args.cpus_per_cell,
        gpus=args.gpus_per_cell,
        memory_gb=args.memory_per_cell,
        retries=args.ray_retries,
    )
    opts.check()
    return opts


def _train_options(args: argparse.Namespace) -> dict[str, Any]:
    from cookbook_core.selfguide import natural_rows as natural

    out: dict[str, Any] = {"steps": args.steps}
    for name in ("lr", "batch_size", "lora_r", "seed", "natural_data", "natural_n"):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value
    if "natural_data" in out:
        out["natural_data"] = natural.resolve(out["natural_data"], getattr(args, "data_dir", None))
    return out


def _plan(cfg: Any) -> dict[str, Any]:
    """What a sweep trains and evaluates (its matrix metrics are only a reading of it)."""
    return {**cfg.to_dict(), "metrics": None}


def cmd_sweep(args: argparse.Namespace) -> int:
    from cookbook_core.mix import sweep

    ray = ray_options(args)  # bad executor options fail before the sweep is saved
    if args.name in sweep.list_sweeps() and not args.template:
        cfg = sweep.load(args.name)
        if args.metric:  # a new reading of the same cells: no plan change
            cfg.metrics = sweep.parse_metrics(cfg.tasks, args.metric)
            sweep.save(cfg)
    else:
        if not args.template:
            raise BadInput(f"sweep {args.name!r} does not exist yet: list --template T ...")
        tasks = [*args.task, *args.task_group]
        cfg = sweep.new(
            args.name,
            args.template,
            tasks,
            n=args.n,
            train=_train_options(args),
            limit=args.limit,
            num_fewshot=args.num_fewshot,
            data_dir=args.data_dir,
            pairs=args.pairs,
            dirichlet=args.dirichlet,
            alpha=args.alpha,
            seed=args.mix_seed,
        )
        cfg.metrics = sweep.parse_metrics(cfg.tasks, args.metric)
        if args.name in sweep.list_sweeps():
            old = sweep.load(args.name)
            cfg.mixtures = old.mixtures
            if not args.metric:
                cfg.metrics = old.metrics
            if _plan(old) != _plan(cfg) and not args.replace:
                raise BadInput(
                    f"sweep {args.name!r} exists with other settings: rerun without --template "
                    "to continue it, pass --replace to overwrite its plan, or pick a new name"
                )
        sweep.save(cfg)
    plan = sweep.plan(cfg)
    todo = sweep.missing(cfg)
    print(f"sweep {cfg.name}: {len(plan)} cells, {len(todo)} missing (cell, task) results")
    if args.background:
        ids = sweep.submit_missing(cfg)
        print(f"queued {len(ids)} cell job(s): {' '.join(ids) or '-'}")
        print(f"follow with `cookbook jobs list`; then `cookbook mix status {cfg.name}`")
        return 0
    sweep.run_missing(cfg, progress=stage_bar(args.quiet), ray=ray)
    return _print_status(cfg)


def _print_status(cfg: Any) -> int:
    from cookbook_core.mix import sweep

    A = sweep.matrix(cfg)
    print(f"accuracy matrix (points; saved as mixing/{cfg.name}.csv):")
    print((100 * A).round(1).to_string(na_rep="-"))
    print("metric: " + ", ".join(f"{t} {m}" for t, m in sweep.metrics_of(cfg).items()))
    gaps = sweep.missing(cfg)
    if gaps:
        print(f"missing ({len(gaps)}):")
        for cell, task in gaps:
            print(f"  ({cell}, {task})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from cookbook_core.mix import sweep

    return _print_status(sweep.load(args.name))


def cmd_validate(args: argparse.Namespace) -> int:
    from cookbook_core.mix import sweep

    v = sweep.validation(sweep.load(args.name), n_boot=args.bootstrap)
    cols = ["mixture", "task", "predicted", "observed", "error_points", "error_lo", "error_hi"]
    t = v["table"][cols].copy()
    t[["predicted", "observed"]] *= 100
    print(t.round(1).to_string(index=False))
    s = v["stats"]
    print(
        f"|error| over {s['cells']} cells: mean {s['mean_abs_error']:.2f} pts, "
        f"median {s['median_abs_error']:.2f} pts, max {s['max_abs_error']:.2f} pts "
        f"(paper: 1.4 / 0.4); leave-one-out mean |error| {v['loo_mean_abs_error']:.2f} pts"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from cookbook_core.mix import cells, mixing, sweep

    cfg = sweep.load(args.name)
    A = sweep.complete_matrix(cfg)
    res = mixing.optimize(A, args.objective, temperature=args.temperature)
    name = f"opt-{args.objective}"
    spec = sweep.add_mixture(cfg, name, res.weights, "optimized", res.manifest())
    print(f"{name}: " + ", ".join(f"{t}={w:.3f}" for t, w in res.weights.items() if w > 1e-4))
    if args.background:
        job_id = cells.submit(spec, sweep.settings(cfg))
        print(f"queued job {job_id}; then `cookbook mix validate {cfg.name}`")
        return 0
    sweep.run_missing(cfg, progress=stage_bar(args.quiet), only=[name])
    obs = cells.results(spec, sweep.settings(cfg))
    print(f"{'task':<16} {'predicted':>9} {'observed':>9} {'error':>7}")
    for task in cfg.tasks:
        p = 100 * res.predicted[task]
        o = 100 * obs[task]["value"]
        print(f"{task:<16} {p:9.1f} {o:9.1f} {o - p:+7.1f}")
    return 0


def add_commands(msub: Any) -> None:
    """Add the sweep actions to the ``mix`` subparsers."""
    p = msub.add_parser(
        "sweep",
        help="measure the accuracy matrix: base model + one fine-tune per template (+ mixtures)",
        description="Save a sweep and run the cells it still lacks (finished cells are reused).",
    )
    p.add_argument("name", help="sweep name (rerun with just the name to continue it)")
    p.add_argument("--template", action="append", default=[], help="template (repeat)")
    p.add_argument("--task", action="append", default=[], help="evaluation task (repeat)")
    p.add_argument("--task-group", action="append", default=[], help="e.g. gpt4all, em, mc")
    p.add_argument("-n", type=int, default=2000, help="samples per training dataset")
    p.add_argument("--steps", type=int, default=40, help="training steps per cell")
    p.add_argument("--lr", type=float, help="learning rate (default: training's)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lora-r", type=int)
    p.add_argument("--seed", type=int, help="training seed (the same for every cell)")
    p.add_argument(
        "--natural-data",
        help="JSONL (or dataset folder) of natural-language prompt/completion rows mixed "
        "into every fine-tune (part of each cell's key); sni: the held-in "
        "Super-NaturalInstructions validation rows of the SELF-GUIDE pack",
    )
    p.add_argument("--natural-n", type=int, help="natural-language rows mixed in (default 128)")
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        help="matrix metric: METRIC for every task that has it (acc_norm, f1, ...) or "
        "TASK=METRIC (repeat); default each task's first. Rerun with just the name and "
        "--metric to re-read the same cells",
    )
    p.add_argument("--limit", type=int, default=100, help="evaluation rows per task")
    p.add_argument("--num-fewshot", type=int, default=0)
    p.add_argument("--data-dir", help="evaluation data folder (default: ../shared/data)")
    p.add_argument("--pairs", action="store_true", help="also every uniform pair of templates")
    p.add_argument("--dirichlet", type=int, default=0, help="also K seeded Dirichlet mixtures")
    p.add_argument("--alpha", type=float, default=1.0, help="Dirichlet concentration")
    p.add_argument("--mix-seed", type=int, default=0, help="seed of the Dirichlet draws")
    p.add_argument("--replace", action="store_true", help="overwrite an existing sweep's plan")
    p.add_argument("--background", action="store_true", help="queue cells as jobs and return")
    p.add_argument("--quiet", action="store_true")
    add_executor_arguments(p)
    p.set_defaults(func=cmd_sweep)

    p = msub.add_parser("status", help="a sweep's matrix so far and its missing cells")
    p.add_argument("name")
    p.set_defaults(func=cmd_status)

    p = msub.add_parser("validate", help="linear model: predicted vs observed for the mixtures")
    p.add_argument("name")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.set_defaults(func=cmd_validate)

    p = msub.add_parser("verify", help="optimize a mixture, train and evaluate it, compare")
    p.add_argument("name")
    p.add_argument("--objective", choices=["mean", "maxmin", "entropy"], default="maxmin")
    p.add_argument("--temperature", type=float, default=0.01)
    p.add_argument("--background", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_verify)
