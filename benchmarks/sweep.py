"""``mocli sweep`` against the loop a user writes without it, measured in the same run.

    python benchmarks/sweep.py --rows 1000000

Two tables: the bundled ``sample_data/math.parquet`` (1,430 rows, 3 objectives) and a
generated one (``--rows``, 4 objectives in groups of 16, keys shuffled: the table of
``benchmarks/run.py``). On each, 100 candidate weightings (``--samples 99`` and the current
weights) under ``grpo`` and ``gdpo``:

* ``mocli sweep`` end to end, its own process, warm Numba cache (what the target is about:
  the math sample under 10 s, a 1M-row table under 2 minutes on 2 cores);
* ``mocli.sweep`` in a warm process (the same minus start-up and loading);
* the baseline: ``mocli.analyze`` once per candidate with its weights (``-r NAME=W``), both
  estimators, in one warm process: what a user scripts to get the same numbers. On the large
  table only the first ``--analyze-candidates`` candidates are timed and the figure is that
  time per candidate times 100 (labelled).

Prints medians of ``--repeats`` and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from run import make_table  # noqa: E402  (the generated table of the main benchmark)

import mocli  # noqa: E402
from mocli.diagnostics.sweep import weightings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "math.parquet"
SAMPLES = 99  # and the current weights: 100 candidates


def end_to_end(path: Path, repeats: int) -> float:
    cmd = [sys.executable, "-m", "mocli", "sweep", str(path), "--samples", str(SAMPLES), "--format", "json"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the cache
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def in_process(path: Path, repeats: int) -> tuple[float, int]:
    mocli.sweep([path], samples=SAMPLES)  # warm
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = mocli.sweep([path], samples=SAMPLES)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(result.candidates) // len(result.estimators)


def analyze_loop(path: Path, limit: int) -> tuple[float, int]:
    """Seconds per candidate of ``mocli.analyze`` with the candidate's weights (both
    estimators), over the first ``limit`` candidates."""
    ro = mocli.load([path]).rollouts
    cands = weightings(list(ro.names), ro.weights, samples=SAMPLES)[:limit]
    rewards = lambda w: [f"{k}={float(x)!r}" for k, x in zip(ro.names, w)]
    mocli.analyze([path], rewards=rewards(cands[0]), estimators=["grpo", "gdpo"])  # warm
    t0 = time.perf_counter()
    for w in cands:
        mocli.analyze([path], rewards=rewards(w), estimators=["grpo", "gdpo"])
    return (time.perf_counter() - t0) / len(cands), len(cands)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--analyze-candidates", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mocli-sweep-bench-"))
    big = tmp / "rollouts.parquet"
    make_table(args.rows, 0, equal=16)[0].write_parquet(big)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, mocli {mocli.__version__}; "
          f"{SAMPLES + 1} candidates x 2 estimators (grpo, gdpo)")
    print(f"\n{'table':<30}{'sweep, CLI':>12}{'sweep, API':>12}{'analyze loop':>14}{'loop/API':>10}")
    for name, path, limit in (("math sample (1,430 rows)", SAMPLE, SAMPLES + 1),
                              (f"generated ({args.rows:,} rows)", big, args.analyze_candidates)):
        cli = end_to_end(path, args.repeats)
        api, n = in_process(path, args.repeats)
        per, timed = analyze_loop(path, limit)
        loop = per * n
        star = "" if timed == n else "*"
        print(f"{name:<30}{cli:>11.2f}s{api:>11.2f}s{loop:>12.1f}s{star}{'' if star else ' '}{loop / api:>9.1f}x")
    print(f"analyze loop: mocli.analyze once per candidate in a warm process (what a script would do);\n"
          f"* timed on the first {args.analyze_candidates} candidates, times {SAMPLES + 1}")


if __name__ == "__main__":
    main()
