"""Streaming: a table bigger than the memory limit, analysed in group-complete chunks, gives
the in-memory report; and the mergeable pieces it is built from."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

import mocli
from mocli.io.files import plan
from mocli.engine.pipeline import make_scheme, resolve
from mocli.diagnostics import analyze_chunked
from mocli.io.chunks import chunked_input, parse_size
from mocli.core.tally import CoMoments, Influence, Moments, SizeMedian, merge
from mocli.core.values import Values, spilling


def same(a, b, path="", rel=1e-9):
    """Equal documents: same keys, equal counts / strings / None, floats to ``rel``."""
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            same(a[k], b[k], f"{path}.{k}", rel)
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]", rel)
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=rel, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b and type(a) is type(b), (path, a, b)


def rollout_table(rows: int, seed: int = 0, steps: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 12, size=rows // 5)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), rows)]
    n = int(sizes.sum())
    key = np.repeat(rng.permutation(sizes.shape[0]) * 31 + 7, sizes)
    step = np.repeat(rng.integers(0, steps, size=sizes.shape[0]), sizes)
    perm = rng.permutation(n)
    correct = (rng.random(n) < 0.4).astype(float)
    fmt = np.where(rng.random(n) < 0.1, np.nan, (rng.random(n) < 0.8).astype(float))
    return pl.DataFrame({
        "prompt_id": key[perm], "step": step[perm],
        "correct_reward": correct[perm], "format_reward": fmt[perm],
        "style_reward": np.round(rng.normal(size=n), 2)[perm],
        "response_length": rng.integers(10, 900, size=n)[perm],
    })


# ---------------------------------------------------------------------------------------
# the pieces
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("block", [1, 7, 64, 1 << 16])
def test_spilled_values_give_numpys_quantiles_and_the_sorted_distinct_count(tmp_path, block):
    rng = np.random.default_rng(block)
    for _ in range(60):
        parts = [np.round(rng.normal(size=int(rng.integers(0, 40))), int(rng.integers(0, 3))) for _ in range(int(rng.integers(1, 6)))]
        parts = [p for p in parts if p.size] or [np.array([0.5])]
        whole = np.concatenate(parts)
        qs = [0.0, 0.05, 0.5, 0.95, 0.99, 1.0, float(rng.random())]
        with spilling(str(tmp_path), block=block) as spill:
            v = Values.of(parts[0], spill)
            for p in parts[1:]:
                v = v.merge(Values.of(p, spill))
            assert v.runs and not v.arrays
            assert v.quantiles(qs) == [float(x) for x in np.quantile(whole, qs)]  # exactly
            s = np.sort(whole)
            assert v.distinct() == 1 + int(np.count_nonzero(np.diff(s) > 1e-9 * max(1.0, np.abs(s).max())))


@pytest.mark.parametrize("spilled", [False, True])
def test_quantiles_and_distinct_from_one_sort_equal_numpys(tmp_path, spilled):
    """The in-memory answer from one sort (what a column summary asks for) equals
    ``np.quantile`` and the sorted distinct count; spilled, the same answers as asked apart."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        parts = [np.round(rng.normal(size=int(rng.integers(1, 300))) * 10 ** float(rng.integers(-3, 9)), int(rng.integers(0, 4)))
                 for _ in range(int(rng.integers(1, 4)))]
        whole = np.concatenate(parts)
        qs = [0.05, 0.5, 0.95, float(rng.random())]
        with spilling(str(tmp_path)) as spill:
            v = Values.of(parts[0], spill if spilled else None)
            for p in parts[1:]:
                v = v.merge(Values.of(p, spill if spilled else None))
            q, distinct = v.quantiles_and_distinct(qs)
            assert q == [float(x) for x in np.quantile(whole, qs)]  # == : exactly, a signed zero aside
            assert q == v.quantiles(qs) and distinct == v.distinct()
            s = np.sort(whole)
            assert distinct == 1 + int(np.count_nonzero(np.diff(s) > 1e-9 * max(1.0, np.abs(s).max())))


def test_merged_moments_comoments_and_least_squares_equal_the_whole():
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 2.0, size=1000)
    y = 0.3 * x + rng.normal(size=1000)
    w = rng.integers(1, 50, size=1000).astype(float)
    d = np.column_stack([x, rng.normal(size=1000), np.zeros(1000)])  # a zero column: rank deficient
    cuts = [0, 1, 250, 251, 700, 1000]
    parts = list(zip(cuts[:-1], cuts[1:]))
    m = merge_all(Moments.of(x[a:b]) for a, b in parts)
    whole = Moments.of(x)
    assert m.n == whole.n and math.isclose(m.mean, whole.mean, rel_tol=1e-13) and math.isclose(m.m2, whole.m2, rel_tol=1e-12)
    mw = merge_all(Moments.of(x[a:b], w[a:b]) for a, b in parts)
    ww = Moments.of(x, w)
    assert mw.n == ww.n and math.isclose(mw.mean, ww.mean, rel_tol=1e-13) and math.isclose(mw.m2, ww.m2, rel_tol=1e-12)
    c = merge_all(CoMoments.of(x[a:b], y[a:b]) for a, b in parts)
    assert math.isclose(c.value(), float(np.corrcoef(x, y)[0, 1]), rel_tol=1e-12)
    a = 0.5 * x - 0.2 * d[:, 1] + rng.normal(size=1000)
    inf = merge_all(Influence.of(["x", "z", "zero"], d[p:q], a[p:q]) for p, q in parts).value()
    beta = np.linalg.lstsq(d, a, rcond=None)[0]
    shares = beta * (d.T @ a) / (a @ a)
    assert math.isclose(inf["x"], shares[0], rel_tol=1e-9) and math.isclose(inf["z"], shares[1], rel_tol=1e-9)
    assert inf["zero"] == 0.0 and math.isclose(inf["r2"], shares.sum(), rel_tol=1e-9)
    # factored in blocks of rows, and on chosen rows and columns read in place
    blocked = Influence.of(["x", "z", "zero"], d, a, block=37).value()
    assert all(math.isclose(blocked[k], inf[k], rel_tol=1e-9, abs_tol=1e-12) for k in inf)
    rows = np.flatnonzero(rng.random(1000) < 0.6)
    picked = Influence.of(["x", "zero"], d, a, rows=rows, cols=np.array([0, 2]), block=50).value()
    whole = Influence.of(["x", "zero"], d[rows][:, [0, 2]], a[rows]).value()
    assert all(math.isclose(picked[k], whole[k], rel_tol=1e-9, abs_tol=1e-12) for k in whole)
    assert Influence.of(["x"], d[:0, :1], a[:0]).value() == {"x": None, "r2": None}
    sizes = rng.integers(1, 30, size=101)
    assert merge_all(SizeMedian.of(sizes[a:b]) for a, b in [(0, 50), (50, 51), (51, 101)]).value() == float(np.median(sizes))
    assert merge_all(SizeMedian.of(sizes[a:b]) for a, b in [(0, 50), (50, 100)]).value() == float(np.median(sizes[:100]))


def merge_all(items):
    out = None
    for item in items:
        out = merge(out, item)
    return out


def test_sizes_parse():
    assert parse_size("512MB") == 512 << 20 and parse_size("1.5GiB") == int(1.5 * (1 << 30)) and parse_size("4096") == 4096
    for bad in ("", "12XB", "-1GB", "GB"):
        with pytest.raises(mocli.UsageError):
            parse_size(bad)


# ---------------------------------------------------------------------------------------
# whole reports
# ---------------------------------------------------------------------------------------
ESTIMATORS = [
    "grpo", "gdpo", "rloo:normalize=true", "gpg", "reinforce_pp:token_weighted=true", "grpo:scale=batch",
    "gd2po", "dvao", "gdpo:nan_policy=zero", "grpo:leave_one_out=true",
]


@pytest.mark.parametrize("scheme", ["weighted_sum", "chebyshev"])
@pytest.mark.parametrize("n_chunks", [1, 2, 7])
def test_chunked_report_equals_the_in_memory_report(tmp_path, scheme, n_chunks):
    path = tmp_path / "r.parquet"
    rollout_table(3000, seed=n_chunks).write_parquet(path)
    s = mocli.Settings.merge(length="response_length")
    memory = mocli.analyze([path], by="step", compare=True, estimators=ESTIMATORS, scheme=scheme, length="response_length")
    p = plan([path], extra=["step"], **s.roles())
    with chunked_input(p, n_chunks) as chunked:
        assert len(chunked) == n_chunks
        streamed = analyze_chunked(chunked, resolve(ESTIMATORS), make_scheme(scheme), [], compare=True, by="step")
    same(memory.report.to_dict(), streamed.to_dict())


def test_a_profile_s_token_weighting_without_lengths_runs_over_rows_in_memory_streamed_and_in_sweep(run_cli, tmp_path):
    """--profile verl weighs gdpo's rows by their tokens; a table without --length still
    gets its report, gdpo over rows, labelled and warned alike whether it is streamed or not
    (and in a sweep); the numbers are those of asking for it by name."""
    path = tmp_path / "r.parquet"
    table = rollout_table(20000, seed=8)
    table.write_parquet(path)
    base = ["analyze", path, "--profile", "verl", "--format", "json"]
    code, mem_out, err = run_cli(*base)
    assert code == 0 and "streamed" not in err, err
    warning = "gdpo ran over rows instead; pass --length COL for the profile's numbers"
    assert warning in err
    code, out, err = run_cli(*base, "--memory-limit", f"{table.height * 8}")
    assert code == 0 and "streamed in" in err and warning in err, err
    memory, streamed = json.loads(mem_out), json.loads(out)
    same(memory, streamed)
    assert list(memory["estimators"]) == ["grpo", "gdpo:token_weighted=false"]
    assert any(warning in w for w in memory["input"]["warnings"])
    code, out, _ = run_cli(*base, "-e", "grpo", "-e", "gdpo:token_weighted=false")
    assert code == 0 and json.loads(out)["estimators"] == memory["estimators"]
    code, out, err = run_cli("sweep", path, "--profile", "verl", "--samples", "2", "--format", "json")
    assert code == 0 and warning in err, err
    assert {c["estimator"] for c in json.loads(out)["sweep"]["candidates"]} == {"grpo", "gdpo:token_weighted=false"}


def test_a_table_over_the_memory_limit_streams_to_the_same_report_from_the_cli(run_cli, tmp_path):
    folder = tmp_path / "steps"
    folder.mkdir()
    table = rollout_table(60000, seed=5)
    for step, part in table.group_by("step", maintain_order=True):  # a directory of step files
        part.write_parquet(folder / f"step_{step[0]}.parquet")
    cols_bytes = table.height * 8 * 5
    args = ["analyze", folder, "-e", "grpo", "-e", "gdpo", "-e", "rloo:normalize=true", "--length", "response_length", "--format", "json"]
    code, mem_out, err = run_cli(*args)
    assert code == 0 and "streamed" not in err, err
    limit = cols_bytes // 4  # far below the columns themselves
    code, out, err = run_cli(*args, "--memory-limit", f"{limit}")
    assert code == 0, err
    assert "streamed in" in err and "group-complete chunks" in err
    same(json.loads(mem_out), json.loads(out))
    code, out, err = run_cli("check", folder, "--fail-if", "collapse.zero_variance_group_rate > 0.99", "--memory-limit", f"{limit}")
    assert code == 0 and "streamed in" in err
    code, _, err = run_cli("report", folder, "-o", tmp_path / "r.html", "--memory-limit", f"{limit}")
    assert code == 2 and err.startswith("error: the HTML report needs the table in memory") and not (tmp_path / "r.html").exists()
    code, _, err = run_cli("analyze", folder, "--memory-limit", "lots")
    assert code == 2 and "--memory-limit 'lots'" in err


def test_streaming_bounds_the_peak_memory(tmp_path):
    """The same report with a peak that stays near the limit, not near the table's size."""
    path = tmp_path / "big.parquet"
    rollout_table(1_500_000, seed=9).write_parquet(path)

    # the child's own high-water mark (VmHWM): its ru_maxrss would start from this test
    # process's, which Linux carries across fork and exec
    hwm = "[l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]"

    def peak(*extra):
        code = (
            "import sys; from mocli.cli import main; sys.argv = ['mocli'] + sys.argv[1:]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"sys.stderr.write('PEAK %s\\n' % {hwm})\n"
        )
        proc = subprocess.run([sys.executable, "-c", code, "analyze", str(path), "--format", "json", *extra],
                              capture_output=True, text=True, check=True)
        kib = int(proc.stderr.rsplit("PEAK", 1)[1])
        return json.loads(proc.stdout), kib / 1024

    baseline = subprocess.run([sys.executable, "-c", f"import mocli.cli, polars, numba; print({hwm})"],
                              capture_output=True, text=True, check=True)
    imports = int(baseline.stdout) / 1024
    whole, whole_peak = peak("--memory-limit", "100GB")  # in memory
    streamed, streamed_peak = peak("--memory-limit", "32MB")
    auto, _ = peak()  # auto: a table that fits in half the available memory stays in memory
    same(whole, auto)
    same(whole, streamed)
    assert streamed_peak - imports < 0.5 * (whole_peak - imports), (imports, whole_peak, streamed_peak)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".json"])
def test_advantages_over_the_memory_limit_write_the_in_memory_table(run_cli, tmp_path, suffix):
    """advantages streamed in chunks: the same rows in the same order, every input column,
    the advantage columns equal (a same-named input column replaced in place), across files
    whose columns differ, within a --steps range."""
    folder = tmp_path / "steps"
    folder.mkdir()
    table = rollout_table(30000, seed=8).with_columns(pl.lit(1.5).alias("adv:grpo"))
    for step, part in table.group_by("step", maintain_order=True):
        if step[0] == 1:
            part = part.with_columns(pl.lit("note").alias("extra_text"))  # a column only some files have
        part.write_parquet(folder / f"step_{step[0]}.parquet")
    args = ["advantages", folder, "-e", "grpo", "-e", "gdpo", "-e", "rloo:normalize=true", "--steps", "1:2"]
    whole, streamed = tmp_path / f"whole{suffix}", tmp_path / f"streamed{suffix}"
    code, _, err = run_cli(*args, "-o", whole, "--memory-limit", "100GB")
    assert code == 0 and "streamed" not in err, err
    code, _, err = run_cli(*args, "-o", streamed, "--memory-limit", str(table.height * 8))
    assert code == 0 and "streamed in" in err, err
    read = {".parquet": pl.read_parquet, ".csv": pl.read_csv, ".jsonl": pl.read_ndjson, ".json": pl.read_json}[suffix]
    a, b = read(whole), read(streamed)
    assert a.columns == b.columns and a.columns[-2:] == ["adv:gdpo", "adv:rloo:normalize=true"]
    assert a.height == b.height == int(table["step"].is_between(1, 2).sum())
    for col in a.columns:
        if col.startswith("adv:"):
            np.testing.assert_allclose(b[col].to_numpy(), a[col].to_numpy(), rtol=1e-9, atol=1e-12)
        else:
            assert a[col].equals(b[col]), col
    assert not (b["adv:grpo"] == 1.5).all()  # the input's adv:grpo was replaced
    if suffix == ".parquet":  # in memory, too, the input streams through the writer: the whole frame's table
        import mocli

        ref = mocli.advantages_table([folder], estimators=["grpo", "gdpo", "rloo:normalize=true"], steps="1:2")
        assert a.equals(ref)


def test_the_statistics_pass_keeps_what_a_scheme_step_needs(tmp_path):
    """After the first chunk only the estimators with a batch-wide step run in the
    statistics passes; one whose NaN policy prepares its own chebyshev score (a batch-wide
    ideal point) must stay, or its chunks would use their own ideal point."""
    from mocli import compute_advantages
    from mocli.engine.stream import advantages_chunked  # noqa: I001

    path = tmp_path / "r.parquet"
    rollout_table(3000, seed=4).write_parquet(path)
    specs = ["grpo", "grpo:nan_policy=zero"]
    whole = compute_advantages(mocli.load([path]).rollouts, specs, scheme="chebyshev")
    p = plan([path])
    with chunked_input(p, 5, row_index=True) as chunked:
        streamed = advantages_chunked(chunked, resolve(specs), make_scheme("chebyshev"), [])
    for label in specs:
        np.testing.assert_allclose(streamed[label], whole[label], rtol=1e-9, atol=1e-12)
