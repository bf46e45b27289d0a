"""``--engine ray`` against ``--engine local`` on the same table, measured in the same run.

    python benchmarks/ray_scale.py --rows 4000000

Generates the table of ``benchmarks/run.py`` (groups of 16, keys shuffled, 4 objectives),
then, each in a fresh process: ``mocli.analyze`` with ``grpo`` and ``gdpo`` on the local
engine (the default: in memory when it fits), and on a local Ray cluster of 1 and of 2
CPUs (``ray.init(num_cpus=N)``, started before the clock; the time is the analysis,
Ray Data's reading, shuffle and both passes included). Prints seconds, rows per second,
the ratio against the local engine and the largest relative difference of any number in
the report from the local one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import make_table  # noqa: E402

RUN = textwrap.dedent('''
    import json, sys, time
    engine, cpus, path, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    import mocli
    if engine == "ray":
        import ray
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    t0 = time.perf_counter()
    doc = mocli.analyze([path], estimators=["grpo", "gdpo"], engine=engine).report.to_dict()
    seconds = time.perf_counter() - t0
    open(out, "w").write(json.dumps(doc))
    print("MOCLI-SECONDS", seconds)
''')


def worst(a, b) -> float:
    if isinstance(a, dict):
        return max([worst(a[k], b[k]) for k in a if k not in ("notes",)] + [0.0])
    if isinstance(a, list):
        return max([worst(x, y) for x, y in zip(a, b)] + [0.0])
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) / max(1.0, abs(a))
    return 0.0 if a == b else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=4_000_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mocli-ray-bench-"))
    data = tmp / "rollouts.parquet"
    make_table(args.rows, 0, equal=16)[0].write_parquet(data)
    script = tmp / "run.py"
    script.write_text(RUN)
    runs = {}
    for name, engine, cpus in (("local engine", "local", 0), ("ray, 1 CPU", "ray", 1), ("ray, 2 CPUs", "ray", 2)):
        out = tmp / f"{engine}{cpus}.json"
        done = subprocess.run([sys.executable, str(script), engine, str(cpus), str(data), str(out)], check=True,
                              capture_output=True, text=True, env=dict(os.environ, RAY_ADDRESS=""))
        seconds = next(float(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("MOCLI-SECONDS"))
        runs[name] = (seconds, json.loads(out.read_text()))
    base_s, base_doc = runs["local engine"]
    print(f"{args.rows:,} rows, 4 objectives, grpo + gdpo; machine: {os.cpu_count()} cores")
    print(f"{'':<16}{'seconds':>9}{'rows/s':>14}{'vs local':>10}{'max rel diff':>14}")
    for name, (seconds, doc) in runs.items():
        print(f"{name:<16}{seconds:>9.2f}{args.rows / seconds:>14,.0f}{seconds / base_s:>9.2f}x{worst(doc, base_doc):>14.2g}")


if __name__ == "__main__":
    main()
