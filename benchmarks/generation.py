"""Generation throughput and memory, end to end to JSONL on disk.

Measures, in one run:

1. samples/s and MB/s for every shipped template with 1 and 2 worker processes
   (``cookbook_core.generate.generate`` writing JSONL + manifest);
2. a naive baseline in the same run: a single-process loop that draws the same
   kind of document-QA sample with ``random.choices`` and writes ``json.dumps`` lines;
3. peak memory (max RSS of the parent and of a worker process) for 1M vs 10M
   ``document_qa`` samples with 2 workers, each run in a fresh subprocess.

Everything is printed as ratios: to the paper's 0.00007 s per sample (about 14,300
samples/s) and to the naive baseline.  The target is ``document_qa`` at 5x the paper
or better with 2 workers, and memory that does not grow from 1M to 10M samples.

Usage: ``python benchmarks/generation.py [--n 100000] [--mem-n 1000000 10000000]
[--skip-memory] [--templates document_qa ...] [--json results.json]``.
The 10M run writes about 27 GB to a temporary folder (deleted after); pass
``--mem-n 100000 1000000`` for a quicker check.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAPER_S_PER_SAMPLE = 0.00007
PAPER_RATE = 1 / PAPER_S_PER_SAMPLE


def run_engine(template: str, n: int, workers: int, out: Path) -> dict[str, float]:
    from cookbook_core.generate import GenerateConfig, Source, generate

    t0 = time.perf_counter()
    m = generate(GenerateConfig([Source(template)], n=n, workers=workers), out, overwrite=True)
    dt = time.perf_counter() - t0
    return {"samples_per_s": n / dt, "mb_per_s": m["bytes"] / dt / 1e6, "seconds": dt}


def run_naive(n: int, out: Path) -> dict[str, float]:
    """Straightforward per-sample code: the baseline the engine is compared with."""
    from cookbook_core import tokens

    vocab = tokens.load().tokens
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    size = 0
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
            line = json.dumps(row) + "\n"
            size += len(line)
            fh.write(line)
    dt = time.perf_counter() - t0
    return {"samples_per_s": n / dt, "mb_per_s": size / dt / 1e6, "seconds": dt}


_MEM_SNIPPET = r"""
import json, resource, sys, time
from cookbook_core.generate import GenerateConfig, Source, generate
if __name__ == "__main__":
    n, out = int(sys.argv[1]), sys.argv[2]
    t0 = time.perf_counter()
    generate(GenerateConfig([Source("document_qa")], n=n, workers=2), out, overwrite=True)
    dt = time.perf_counter() - t0
    print(json.dumps({
        "parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "samples_per_s": n / dt,
    }))
"""


def run_memory(n: int, tmp: Path) -> dict[str, float]:
    script = tmp / "mem_probe.py"
    script.write_text(_MEM_SNIPPET)
    out = tmp / f"mem_{n}"
    res = subprocess.run(
        [sys.executable, str(script), str(n), str(out)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    from cookbook_core import discovery

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=100_000, help="samples per throughput run")
    ap.add_argument("--templates", nargs="*", default=None, help="default: every shipped template")
    ap.add_argument("--mem-n", type=int, nargs=2, default=[1_000_000, 10_000_000])
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--tmp", type=Path, default=None, help="scratch folder (default: system temp)")
    args = ap.parse_args()

    os.environ.setdefault("COOKBOOK_HOME", tempfile.mkdtemp(prefix="cookbook_bench_home_"))
    names = args.templates or discovery.names()
    tmp = Path(tempfile.mkdtemp(prefix="cookbook_bench_", dir=args.tmp))
    results: dict[str, object] = {"n": args.n, "cpus": os.cpu_count(), "paper_rate": PAPER_RATE}
    try:
        naive = run_naive(args.n, tmp / "naive")
        results["naive"] = naive
        print(
            f"{'template':<24}{'workers':>8}{'samples/s':>12}{'MB/s':>8}"
            f"{'x paper':>9}{'x naive':>9}"
        )
        print(
            f"{'naive document_qa loop':<24}{1:>8}{naive['samples_per_s']:>12,.0f}"
            f"{naive['mb_per_s']:>8.1f}{naive['samples_per_s'] / PAPER_RATE:>9.2f}{1:>9.2f}"
        )
        rows = []
        for name in names:
            for workers in (1, 2):
                r = run_engine(name, args.n, workers, tmp / f"{name}_{workers}")
                shutil.rmtree(tmp / f"{name}_{workers}", ignore_errors=True)
                rows.append({"template": name, "workers": workers, **r})
                print(
                    f"{name:<24}{workers:>8}{r['samples_per_s']:>12,.0f}{r['mb_per_s']:>8.1f}"
                    f"{r['samples_per_s'] / PAPER_RATE:>9.2f}"
                    f"{r['samples_per_s'] / naive['samples_per_s']:>9.2f}"
                )
        results["throughput"] = rows
        dqa = [r for r in rows if r["template"] == "document_qa" and r["workers"] == 2]
        if dqa:
            ratio = dqa[0]["samples_per_s"] / PAPER_RATE
            verdict = "meets" if ratio >= 5 else "misses"
            print(
                f"\ndocument_qa, 2 workers: {ratio:.2f}x the paper's rate ({verdict} the 5x target)"
            )
        if not args.skip_memory:
            small, large = args.mem_n
            mem_s = run_memory(small, tmp)
            mem_l = run_memory(large, tmp)
            results["memory"] = {str(small): mem_s, str(large): mem_l}
            print("\npeak RSS, document_qa, 2 workers:")
            for n, m in ((small, mem_s), (large, mem_l)):
                print(
                    f"  {n:>11,} samples: parent {m['parent_mb']:.0f} MB, "
                    f"worker {m['worker_mb']:.0f} MB, {m['samples_per_s']:,.0f} samples/s"
                )
            growth = (mem_l["parent_mb"] + mem_l["worker_mb"]) / (
                mem_s["parent_mb"] + mem_s["worker_mb"]
            )
            print(f"  memory ratio {large:,} / {small:,} samples: {growth:.2f}x (flat is ~1.0x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
