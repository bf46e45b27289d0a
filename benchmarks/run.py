"""mocli against the alternatives, measured in the same run.

    python benchmarks/run.py --rows 4000000

Generates a rollout table (by default 4,000,000 rows x 4 rewards in groups of 16, int64
prompt ids shuffled over the file; ``--ragged`` makes groups of 4-28 rows) and, alternating
the contenders in every repeat, each in its own process, times:

* ``polars, in memory``: the pipeline a user writes (``pl.read_parquet``, GRPO via
  ``.over``, GDPO via per-column ``.over`` and a batch z-score, ``write_parquet``). This is
  the headline baseline: every ratio is against it.
* ``polars, streaming engine``: the same expressions through ``scan_parquet`` /
  ``sink_parquet`` (labelled: slower than in memory on tables that fit);
* ``numpy reshape``: NumPy with a reshape to (groups, G) on an equal-sized copy of the
  table (the only case a reshape can handle), Parquet in and out;
* ``mocli advantages -e grpo -e gdpo`` and ``mocli analyze -e grpo -e gdpo`` end to end
  with the default settings (``--memory-limit auto``: in memory when the table fits), and
  streamed in group-complete chunks (``--memory-limit 64MB``, labelled);
* a cold start: ``mocli analyze`` on the bundled ``sample_data/math.parquet`` with an empty
  Numba cache (every kernel compiled), and warm;
* verl's ``compute_grpo_outcome_advantage`` and its vectorised variant on tensors already
  in memory, when verl is installed;
* every mocli estimator on a batch already in memory (rows per second; the batch's
  group-order copy, built once and shared by all of them, is timed on its own line), and with
  ``--cuda`` the same on the GPU (``--device cuda``; host-to-device copies included). Twice:
  on the table as generated (a group's rows scattered over the whole file, the worst case for
  memory access) and on the same rows with each group's rows together, keys still in no
  sorted order (how TRL and verl write a prompt's completions: no group-order copy and no
  scatter back).

Prints medians, rows per second, peak resident memory of each process and ratios against
the in-memory Polars pipeline. Every end-to-end contender runs in its own process, so peak
memory is that process's own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import polars as pl

OBJECTIVES = ["correct_reward", "format_reward", "length_reward", "style_reward"]

POLARS = textwrap.dedent('''
    import sys, polars as pl
    R = {objectives!r}
    g, eps = "prompt_id", 1e-6
    s = pl.sum_horizontal(R)
    grpo = ((s - s.mean().over(g)) / (s.std().over(g) + eps)).fill_nan(0.0).fill_null(0.0).alias("adv:grpo")
    z = [((pl.col(c) - pl.col(c).mean().over(g)) / (pl.col(c).std().over(g) + eps)).fill_nan(0.0).fill_null(0.0) for c in R]
    a = pl.sum_horizontal(z)
    gdpo = ((a - a.mean()) / (a.std() + eps)).alias("adv:gdpo")
    if sys.argv[3] == "memory":
        pl.read_parquet(sys.argv[1]).with_columns(grpo, gdpo).write_parquet(sys.argv[2])
    else:
        pl.scan_parquet(sys.argv[1]).with_columns(grpo, gdpo).sink_parquet(sys.argv[2])
''')

NUMPY = textwrap.dedent('''
    import sys, numpy as np, pyarrow.parquet as pq, pyarrow as pa
    R = {objectives!r}
    t = pq.read_table(sys.argv[1])
    key = t.column("prompt_id").to_numpy()
    order = np.argsort(key, kind="stable")
    G = int(sys.argv[3])
    r = np.stack([t.column(c).to_numpy()[order] for c in R], axis=1).reshape(-1, G, len(R))
    s = r.sum(axis=2)
    grpo = (s - s.mean(axis=1, keepdims=True)) / (s.std(axis=1, ddof=1, keepdims=True) + 1e-6)
    z = (r - r.mean(axis=1, keepdims=True)) / (r.std(axis=1, ddof=1, keepdims=True) + 1e-6)
    a = z.sum(axis=2).ravel()
    gdpo = (a - a.mean()) / (a.std(ddof=1) + 1e-6)
    out = np.empty_like(a); out[order] = grpo.ravel(); g2 = np.empty_like(a); g2[order] = gdpo
    pq.write_table(t.append_column("adv:grpo", pa.array(out)).append_column("adv:gdpo", pa.array(g2)), sys.argv[2])
''')


def make_table(rows: int, seed: int, equal: int | None = None) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    if equal:
        sizes = np.full(rows // equal, equal)
    else:
        sizes = rng.integers(4, 29, size=rows // 8)
        sizes = sizes[: np.searchsorted(np.cumsum(sizes), rows) + 1]
        sizes[-1] -= sizes.sum() - rows
        sizes = sizes[sizes > 0]
    n = int(sizes.sum())
    keys = np.repeat(rng.permutation(len(sizes)) * 7919 + 13, sizes)
    rng.shuffle(keys)
    difficulty = rng.random(len(sizes))
    return pl.DataFrame({
        "prompt_id": keys,
        "correct_reward": (rng.random(n) < 0.5).astype(np.float64),
        "format_reward": (rng.random(n) < 0.9).astype(np.float64),
        "length_reward": -np.round(rng.random(n), 3),
        "style_reward": rng.normal(size=n),
    }), difficulty


# Runs a Python contender and reports its own peak resident memory (VmHWM) on stderr at
# exit. The rusage of a child is no good here: Linux carries the parent's high-water mark
# across fork and exec into the child's ru_maxrss, and this parent holds the tables.
PEAK = textwrap.dedent('''
    import atexit, runpy, sys
    def report():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                sys.stderr.write("\\nMOCLI-BENCH-PEAK-KIB " + line.split()[1] + "\\n")
    atexit.register(report)
    if sys.argv[1] == "-m":
        sys.argv = sys.argv[2:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
''')


def run_process(cmd: list[str], stdout=subprocess.DEVNULL) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one Python child process (``[python, ...]``)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([cmd[0], "-c", PEAK, *cmd[1:]], stdout=stdout, stderr=subprocess.PIPE)
    _, err_bytes = proc.communicate()
    wall = time.perf_counter() - t0
    err = err_bytes.decode()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    kib = int(err.rsplit("MOCLI-BENCH-PEAK-KIB", 1)[1].split()[0])
    return wall, kib / 1024.0


def kernel_rates(paths: list[Path], repeats: int, device: str = "cpu") -> list[dict[str, tuple[float, float]]]:
    """Rows per second of every registered estimator on prepared batches already in memory
    (one per path; length and baseline columns synthesised for opo / remax), and of
    building each batch's group-order copy, which every estimator shares and which is
    built once per batch. One dict per path: name -> (median rate, best rate), the
    median being what the machine gave most of the time, the best what the code can do
    when nothing else slows the machine down."""
    import dataclasses

    import mocli
    from mocli import kernels, make_scheme, prepare
    from mocli.core.work import Work
    from mocli.estimators import ESTIMATORS

    work = Work(kernels.device(device))
    rng = np.random.default_rng(0)
    batches = []
    for path in paths:
        batch = prepare(mocli.load([path]).rollouts, make_scheme())
        batches.append(dataclasses.replace(
            batch, length=rng.integers(10, 900, batch.n).astype(np.float64), baseline=rng.random(batch.n),
        ))
    rounds = max(repeats, 7)
    outs = []
    for batch in batches:
        times = []
        for _ in range(rounds + 1):
            batch.release()
            t0 = time.perf_counter()
            batch.grouped()
            times.append(time.perf_counter() - t0)
        outs.append({"(group-order layout, once per batch)": _rates(batch.n, times[1:])})
    ests = {spec: mocli.make_estimator(spec) for spec in ESTIMATORS.names()}
    for batch in batches:
        for est in ests.values():
            est(batch, work)  # compile
    times = {(b, spec): [] for b in range(len(batches)) for spec in ests}
    # a call takes well under a second: more repeats, taken round-robin over estimators and
    # batches, so that a slow spell of the machine touches one call of several of them, not
    # every call of one
    for _ in range(rounds):
        for b, batch in enumerate(batches):
            for spec, est in ests.items():
                t0 = time.perf_counter()
                est(batch, work)
                times[b, spec].append(time.perf_counter() - t0)
    for b, batch in enumerate(batches):
        outs[b].update({spec: _rates(batch.n, times[b, spec]) for spec in ests})
    return outs


def _rates(n: int, times: list[float]) -> tuple[float, float]:
    return n / statistics.median(times), n / min(times)


def verl_rates(path: Path, repeats: int) -> dict[str, float]:
    try:
        import torch
        from verl.trainer.ppo import core_algos as ca
    except Exception:
        return {}
    df = pl.read_parquet(path)
    s = torch.tensor(df.select(pl.sum_horizontal(OBJECTIVES)).to_series().to_numpy())
    index = df["prompt_id"].to_numpy()
    n = s.shape[0]
    tok = s[:, None].clone()
    mask = torch.ones((n, 1), dtype=torch.float64)
    out = {}
    for name, fn in (("verl grpo (loop)", ca.compute_grpo_outcome_advantage),
                     ("verl grpo (vectorised)", ca.compute_grpo_vectorized_outcome_advantage)):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(tok.clone(), mask, index)
            times.append(time.perf_counter() - t0)
        out[name] = n / statistics.median(times)
    return out


HEADLINE = "polars, in memory (headline)"
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "math.parquet"


def first_run(repeats: int) -> tuple[float, float]:
    """Seconds of ``mocli analyze`` on the bundled sample with an empty Numba cache (each
    run its own, so that every kernel is compiled) and with a warm one: medians."""
    cold, warm = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="mocli-numba-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            cmd = [sys.executable, "-m", "mocli", "analyze", str(SAMPLE), "--format", "json"]
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            warm.append(time.perf_counter() - t0)
    return statistics.median(cold), statistics.median(warm)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-verl", action="store_true")
    ap.add_argument("--cuda", action="store_true", help="also time --device cuda (needs a GPU and mocli[cuda])")
    ap.add_argument("--ragged", action="store_true", help="groups of 4-28 rows instead of 16")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mocli-bench-"))
    table, _ = make_table(args.rows, args.seed, equal=None if args.ragged else 16)
    data = tmp / "rollouts.parquet"
    table.write_parquet(data)
    # the same rows, each group's together, groups in order of first appearance (so the
    # keys stay unsorted)
    together = table.with_row_index("_row").sort(pl.col("_row").min().over("prompt_id"), "_row").drop("_row")
    data_tog = tmp / "rollouts_together.parquet"
    together.write_parquet(data_tog)
    del together
    data_eq = data  # the reshape needs equal-sized groups: the table itself unless --ragged
    if args.ragged:
        data_eq = tmp / "rollouts_equal.parquet"
        make_table(args.rows, args.seed, equal=16)[0].write_parquet(data_eq)
    n = table.height
    cols_mb = table.estimated_size("mb")
    sizes = "4-28 rows" if args.ragged else "16 rows"
    print(f"{n} rows, {table['prompt_id'].n_unique()} groups of {sizes} (keys shuffled), 4 objectives; "
          f"columns read: {cols_mb:.0f} MB; machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")

    py = sys.executable
    pl_script = tmp / "polars_pipeline.py"
    pl_script.write_text(POLARS.format(objectives=OBJECTIVES))
    np_script = tmp / "numpy_reshape.py"
    np_script.write_text(NUMPY.format(objectives=OBJECTIVES))
    advantages = [py, "-m", "mocli", "advantages", str(data), "-e", "grpo", "-e", "gdpo", "-o", str(tmp / "mocli.parquet")]
    analyze = [py, "-m", "mocli", "analyze", str(data), "-e", "grpo", "-e", "gdpo", "--format", "json"]
    contenders = {
        HEADLINE: [py, str(pl_script), str(data), str(tmp / "pl.parquet"), "memory"],
        "polars, streaming engine": [py, str(pl_script), str(data), str(tmp / "pl.parquet"), "streaming"],
        "numpy reshape grpo+gdpo*": [py, str(np_script), str(data_eq), str(tmp / "np.parquet"), "16"],
        "mocli advantages (default)": advantages,
        "mocli advantages, streamed 64MB": advantages + ["--memory-limit", "64MB"],
        "mocli analyze (default)": analyze,
        "mocli analyze, streamed 64MB": analyze + ["--memory-limit", "64MB"],
    }
    if args.cuda:
        contenders["mocli advantages --device cuda"] = advantages + ["--device", "cuda"]
        contenders["mocli analyze --device cuda"] = analyze + ["--device", "cuda"]
    # warm the Numba cache and the page cache once, untimed
    for cmd in contenders.values():
        run_process(cmd)
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in contenders}
    for _ in range(args.repeats):
        for name, cmd in contenders.items():
            results[name].append(run_process(cmd))

    base = statistics.median(w for w, _ in results[HEADLINE])
    print(f"\n{'end to end (median of ' + str(args.repeats) + ')':<34}{'seconds':>9}{'rows/s':>14}{'peak MiB':>10}{'vs polars':>11}{'peak/cols':>11}")
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        peak = max(m for _, m in runs)
        print(f"{name:<34}{wall:>9.2f}{n / wall:>14,.0f}{peak:>10.0f}{wall / base:>10.2f}x{peak / cols_mb:>10.1f}x")
    print(f"vs polars: against '{HEADLINE}' (the pipeline a user writes)")
    if args.ragged:
        print("* on an equal-sized copy of the table (16 rows per group): a reshape cannot do ragged groups")
    cold, warm = first_run(args.repeats)
    print(f"\nmocli analyze sample_data/math.parquet: cold (empty Numba cache) {cold:.1f} s, warm {warm:.2f} s")

    print(f"\n{'in memory (median of ' + str(max(args.repeats, 7)) + ' calls; best)':<44}{'rows/s':>14}{'best':>14}"
          f"{'groups together':>17}{'best':>14}")
    devices = ["cpu"] + (["cuda"] if args.cuda else [])
    for device in devices:
        scattered, grouped = kernel_rates([data, data_tog], args.repeats, device)
        for name, (rate, best) in scattered.items():
            label = "mocli " + name + (" (cuda)" if device == "cuda" else "")
            print(f"{label:<44}{rate:>14,.0f}{best:>14,.0f}{grouped[name][0]:>17,.0f}{grouped[name][1]:>14,.0f}")
    print("rows/s: the table as generated (each group's rows scattered over the file); groups together:\n"
          "the same rows with each group's together (keys unsorted), which needs no group-order copy;\n"
          "best: the fastest of the calls (on a shared machine the median also measures its slow spells)")
    if not args.skip_verl:
        vr = verl_rates(data, args.repeats)
        if not vr:
            print("verl is not installed: its functions were not timed")
        for name, rate in vr.items():
            print(f"{name:<34}{rate:>14,.0f}")


if __name__ == "__main__":
    main()
