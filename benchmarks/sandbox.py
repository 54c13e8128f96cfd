"""Latency of a sandboxed template preview vs the same preview in-process.

For each template given, previews 8 samples with their rule verdicts ``--runs``
times through :func:`cookbook_core.sandbox.runner.run_source` (static validation,
then the OS boundary: bubblewrap namespaces, uid drop, seccomp, limits; one run for
the samples and one for the verdicts) and in-process (the old path for trusted
templates: load the file, sample, check), and prints the medians and their ratio.
Target: sandboxed preview under 300 ms median on this 2-core machine.

With ``--generation``: the throughput cost of generating datasets from an untrusted
template.  Each template is copied (renamed) into a temporary folder; the same
``generate()`` call then runs with that folder trusted (imported, the in-process
engine) and untrusted (sandboxed children, answers validated), alternating,
``--repeat`` times per worker count.  Samples per second are ``n`` over the wall
time of the whole call (the sandboxed description and child start-up included);
the medians, their ratio, whether the two data files are byte-identical and the
load average are printed.

Usage: ``python benchmarks/sandbox.py [--runs 20] [--templates document_qa ...]``;
``python benchmarks/sandbox.py --generation [--n 100000] [--workers 1 2] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--templates", nargs="*", default=["document_qa", "multiple_choice_qa"])
    ap.add_argument("--generation", action="store_true", help="measure dataset generation")
    ap.add_argument("--n", type=int, default=100_000, help="samples per generation run")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("COOKBOOK_HOME", tempfile.mkdtemp(prefix="cookbook_bench_home_"))
    if args.generation:
        generation(args)
        return

    from cookbook_core import discovery, tokens
    from cookbook_core.sandbox import runner as sandbox

    vocab = tokens.load().tokens
    from cookbook_core.sandbox import boundary

    boundary.ensure_available()  # fails closed, with the reason, when bwrap cannot run
    print(f"boundary: {boundary.bwrap_path()} + seccomp; uid {boundary.SANDBOX_UID}")
    print(f"{'template':<22}{'in-process ms':>15}{'sandbox ms':>12}{'ratio':>8}{'target':>16}")
    for name in args.templates:
        path = Path(discovery.get(name).source_file)
        source = path.read_text()
        local, boxed = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            discovery._loaded.pop(path.resolve(), None)  # import the file each time
            tpl = discovery.load_file(path)[name]
            tpl.preview_records(vocab, 8, seed=0)
            local.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = sandbox.run_source(source, n=8, seed=0)
            boxed.append(time.perf_counter() - t0)
            assert res.ok, res.error
        lm, bm = statistics.median(local) * 1000, statistics.median(boxed) * 1000
        verdict = "met" if bm < 300 else "missed"
        print(f"{name:<22}{lm:>15.2f}{bm:>12.1f}{bm / lm:>7.0f}x{verdict + ' (<300 ms)':>16}")


def generation(args: argparse.Namespace) -> None:
    """In-process vs sandboxed generation of the same template file, same process."""
    from cookbook_core.generate import GenerateConfig, Source, generate
    from cookbook_core.sandbox import boundary

    boundary.ensure_available()
    root = Path(__file__).resolve().parent.parent
    work = Path(tempfile.mkdtemp(prefix="cookbook_bench_gen_"))
    folder = work / "templates"
    folder.mkdir()
    os.environ["COOKBOOK_TEMPLATES"] = str(folder)
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"{os.cpu_count()} CPUs; n = {args.n}"
    )
    print(
        f"{'template':<22}{'workers':>8}{'in-process/s':>14}{'sandboxed/s':>13}"
        f"{'ratio':>8}{'same bytes':>12}"
    )
    try:
        for name in args.templates:
            text = (root / "templates" / f"{name}.py").read_text()
            copy = f"{name}_bench"
            (folder / f"{copy}.py").write_text(text.replace(f'name="{name}"', f'name="{copy}"'))
            for workers in args.workers:
                rates: dict[str, list[float]] = {"trusted": [], "untrusted": []}
                digests: dict[str, set[str]] = {"trusted": set(), "untrusted": set()}
                for _ in range(args.repeat):
                    for mode in ("trusted", "untrusted"):
                        if mode == "trusted":
                            os.environ["COOKBOOK_TRUSTED_TEMPLATES"] = str(folder)
                        else:
                            os.environ.pop("COOKBOOK_TRUSTED_TEMPLATES", None)
                        out = work / f"{mode}-{workers}"
                        cfg = GenerateConfig([Source(copy)], n=args.n, workers=workers)
                        t0 = time.perf_counter()
                        m = generate(cfg, out, overwrite=True)
                        rates[mode].append(args.n / (time.perf_counter() - t0))
                        assert m["templates"][0]["sandboxed"] is (mode == "untrusted")
                        data = (out / "data.jsonl").read_bytes()
                        digests[mode].add(hashlib.sha256(data).hexdigest())
                        shutil.rmtree(out)
                local = statistics.median(rates["trusted"])
                boxed = statistics.median(rates["untrusted"])
                same = len(digests["trusted"] | digests["untrusted"]) == 1
                print(
                    f"{name:<22}{workers:>8}{local:>14,.0f}{boxed:>13,.0f}"
                    f"{boxed / local:>7.2f}x{'yes' if same else 'NO':>12}"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
