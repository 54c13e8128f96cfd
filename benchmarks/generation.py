"""Generation throughput through the ``cookbook`` command, end to end, as a user runs it.

Measures, in one run:

1. start-up: wall time of ``cookbook --help`` and ``cookbook templates list`` (best
   and median of ``--startup-runs`` runs);
2. the first ``cookbook generate`` in a fresh workspace (``$COOKBOOK_HOME``), which
   also builds the token-space cache;
3. throughput: ``cookbook generate -t TEMPLATE -n N --workers W`` as a subprocess,
   timed from start to exit (interpreter start, imports, token space, worker start,
   generation, fsync, manifest and publish all included), for W = 1 and 2, best of
   ``--repeat`` runs; printed as samples/s and as the ratio to the paper's 0.00007 s
   per sample (about 14,300 samples/s), with the CPU seconds the command and its
   workers used (on a loaded machine, wall time exceeds what the work needs);
4. that the 1- and 2-worker outputs are byte-identical (``data.jsonl`` compared
   whole; the run fails loudly if not);
5. a naive single-process loop (``random.choices`` + ``json.dumps`` of the old row
   shape) in this process, as a yardstick of how fast this machine is right now;
6. optionally (``--mem-n A B``), peak RSS of the command at two sizes.

The machine's load average (1 and 5 minutes) is printed at the start and the end:
on a shared machine, numbers taken under load are lower bounds.  The target is
``document_qa`` with 2 workers at 5x the paper or better.

Usage: ``python benchmarks/generation.py [--n 200000] [--templates document_qa ...]
[--layout compact|full] [--repeat 3] [--mem-n 1000000 10000000] [--json out.json]``.
What it does not do: profile inside the engine (use ``cProfile`` on
``cookbook_core.generate``) or measure Parquet/HF output.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAPER_S_PER_SAMPLE = 0.00007
PAPER_RATE = 1 / PAPER_S_PER_SAMPLE
TARGET = 5.0


def cookbook_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m``."""
    exe = Path(sys.executable).with_name("cookbook")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "cookbook_core.cli.main"]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds from start to exit, CPU seconds of the command and its worker
    processes) of one command; raises with its stderr on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(argv, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dt, cpu


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def run_startup(cmd: list[str], env: dict[str, str], runs: int) -> dict[str, dict[str, float]]:
    out = {}
    for label, argv in (("--help", ["--help"]), ("templates list", ["templates", "list"])):
        times = [timed(cmd + argv, env)[0] for _ in range(runs)]
        out[label] = {"best_s": min(times), "median_s": statistics.median(times)}
    return out


def run_generate(
    cmd: list[str], env: dict[str, str], template: str, n: int, workers: int, out: Path, layout: str
) -> tuple[float, float]:
    """One timed ``cookbook generate`` into a new folder (an old one is removed first,
    untimed, so no run pays for replacing the previous output)."""
    shutil.rmtree(out, ignore_errors=True)
    argv = cmd + ["generate", "-t", template, "-n", str(n), "--workers", str(workers)]
    argv += ["--layout", layout, "--out", str(out)]
    return timed(argv, env)


def run_naive(n: int, out: Path) -> float:
    """Straightforward per-sample code (the old row shape): samples/s on this machine now."""
    sys.path.insert(0, str(ROOT))
    from cookbook_core import tokens

    vocab = tokens.load().tokens
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(out / "data.jsonl", "w") as fh:
        for i in range(n):
            rng = random.Random(i)
            doc = rng.choices(vocab, k=100)
            start = rng.randrange(0, 93)
            q = " ".join(doc[start : start + 4])
            a = " ".join(doc[start + 4 : start + 7])
            prompt = f"Document: {' '.join(doc)}\n\nQuestion: {q}\n\nAnswer:"
            row = {
                "prompt": prompt,
                "completion": a,
                "messages": [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": a},
                ],
                "meta": {"parent": {"document": " ".join(doc)}, "child": {"question": q}},
            }
            fh.write(json.dumps(row) + "\n")
    return n / (time.perf_counter() - t0)


_MEM_PROBE = r"""
import json, resource, sys, time
from cookbook_core.cli.main import main
t0 = time.perf_counter()
code = main(sys.argv[1:])
dt = time.perf_counter() - t0
print(json.dumps({"code": code, "seconds": dt,
    "parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def run_memory(n: int, tmp: Path, env: dict[str, str], layout: str) -> dict[str, float]:
    out = tmp / f"mem_{n}"
    argv = [sys.executable, "-c", _MEM_PROBE, "generate", "-t", "document_qa", "-n", str(n)]
    argv += ["--workers", "2", "--layout", layout, "--out", str(out), "--overwrite"]
    res = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    shutil.rmtree(out, ignore_errors=True)
    m = json.loads(res.stdout.strip().splitlines()[-1])
    m["samples_per_s"] = n / m["seconds"]
    return m


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, nargs="+", default=[200_000], help="samples per run")
    ap.add_argument("--templates", nargs="+", default=["document_qa"], help="'all' for every one")
    ap.add_argument("--layout", choices=["compact", "full"], default="compact")
    ap.add_argument("--repeat", type=int, default=3, help="runs per setting (best is kept)")
    ap.add_argument("--startup-runs", type=int, default=5)
    ap.add_argument("--naive-n", type=int, default=50_000)
    ap.add_argument("--mem-n", type=int, nargs=2, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--tmp", type=Path, default=None, help="scratch folder (default: system temp)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cookbook_bench_", dir=args.tmp))
    home = tmp / "home"
    env = {**os.environ, "COOKBOOK_HOME": str(home), "PYTHONPATH": str(ROOT)}
    os.environ["COOKBOOK_HOME"] = str(home)
    cmd = cookbook_command()
    results: dict[str, object] = {
        "cpus": os.cpu_count(),
        "paper_rate": PAPER_RATE,
        "load_start": os.getloadavg(),
        "command": cmd,
        "layout": args.layout,
    }
    print(f"load average at start: {load()}; {os.cpu_count()} CPUs; command: {' '.join(cmd)}")
    try:
        first = run_generate(cmd, env, "document_qa", 1000, 1, tmp / "first", args.layout)[0]
        results["first_run_s"] = first
        print(f"first `cookbook generate -n 1000` in a fresh workspace: {first:.2f} s")
        startup = run_startup(cmd, env, args.startup_runs)
        results["startup"] = startup
        for label, s in startup.items():
            print(
                f"cookbook {label}: best {s['best_s']:.3f} s, median {s['median_s']:.3f} s "
                f"({args.startup_runs} runs)"
            )
        naive = run_naive(args.naive_n, tmp / "naive")
        shutil.rmtree(tmp / "naive", ignore_errors=True)
        results["naive_samples_per_s"] = naive
        print(f"naive document_qa loop in-process: {naive:,.0f} samples/s (this machine, now)")
        names = args.templates
        if names == ["all"]:
            sys.path.insert(0, str(ROOT))
            from cookbook_core import discovery

            names = discovery.names()
        print(
            f"\n{'template':<24}{'n':>10}{'workers':>8}{'seconds':>9}{'samples/s':>12}"
            f"{'x paper':>9}{'MB':>8}{'CPU s':>8}"
        )
        rows = []
        for name in names:
            for n in args.n:
                outs = {}
                for workers in (1, 2):
                    out = tmp / f"{name}_{n}_{workers}"
                    best, cpu = min(
                        run_generate(cmd, env, name, n, workers, out, args.layout)
                        for _ in range(args.repeat)
                    )
                    size = (out / "data.jsonl").stat().st_size
                    rate = n / best
                    rows.append(
                        {
                            "template": name,
                            "n": n,
                            "workers": workers,
                            "seconds": best,
                            "samples_per_s": rate,
                            "x_paper": rate / PAPER_RATE,
                            "bytes": size,
                            "cpu_s": cpu,
                        }
                    )
                    outs[workers] = out
                    print(
                        f"{name:<24}{n:>10,}{workers:>8}{best:>9.2f}{rate:>12,.0f}"
                        f"{rate / PAPER_RATE:>9.2f}{size / 1e6:>8.0f}{cpu:>8.2f}"
                    )
                same = filecmp.cmp(outs[1] / "data.jsonl", outs[2] / "data.jsonl", shallow=False)
                rows[-1]["identical_to_1_worker"] = same
                if not same:
                    raise SystemExit(f"{name} n={n}: 1 and 2 workers wrote different bytes")
                print(f"{'':<24}1 and 2 workers wrote byte-identical data.jsonl")
                for out in outs.values():
                    shutil.rmtree(out, ignore_errors=True)
        results["throughput"] = rows
        for r in rows:
            if r["template"] == "document_qa" and r["workers"] == 2:
                verdict = "meets" if r["x_paper"] >= TARGET else "misses"
                print(
                    f"\ndocument_qa, n={r['n']:,}, 2 workers, end to end: {r['x_paper']:.2f}x "
                    f"the paper's rate ({verdict} the {TARGET:g}x target)"
                )
        if args.mem_n:
            mem = {str(n): run_memory(n, tmp, env, args.layout) for n in args.mem_n}
            results["memory"] = mem
            print("\npeak RSS, document_qa, 2 workers:")
            for n, m in mem.items():
                print(
                    f"  {int(n):>11,} samples: parent {m['parent_mb']:.0f} MB, "
                    f"worker {m['worker_mb']:.0f} MB, {m['samples_per_s']:,.0f} samples/s"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        results["load_end"] = os.getloadavg()
        print(f"\nload average at the end: {load()}")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
