"""The command line: reference vectors from ESTIMATORS.md, bad input, listings, samples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path


@pytest.fixture
def toy(tmp_path):
    return write_csv(tmp_path / "toy.csv", "g,a,b\n1,0,0\n1,1,1\n2,1,0\n2,0,0\n3,1,0\n3,0,1")


@pytest.fixture
def one(tmp_path):
    return write_csv(tmp_path / "one.csv", "g,r\n1,1\n1,0\n1,0\n1,1\n2,1\n2,1\n2,1\n2,0")


def adv(run_cli, tmp_path, *args):
    out = tmp_path / "out.parquet"
    code, _, err = run_cli("advantages", *args, "-o", out)
    assert code == 0, err
    return pl.read_parquet(out)


# --- reference vectors (ESTIMATORS.md, end) ------------------------------------------
def test_gdpo_toy_reference(run_cli, tmp_path, toy):
    df = adv(run_cli, tmp_path, toy, "-g", "g", "-r", "a", "-r", "b", "-e", "grpo:eps=0", "-e", "advantage_sum:eps=0")
    np.testing.assert_allclose(df["adv:grpo:eps=0"], [-0.7071, 0.7071, 0.7071, -0.7071, 0, 0], atol=5e-5)
    np.testing.assert_allclose(df["adv:advantage_sum:eps=0"], [-1.4142, 1.4142, 0.7071, -0.7071, 0, 0], atol=5e-5)


def test_one_reward_references(run_cli, tmp_path, one):
    trl = adv(run_cli, tmp_path, one, "-g", "g", "-r", "r", "-e", "grpo", "-e", "rloo", "--profile", "trl")
    np.testing.assert_allclose(trl["adv:grpo"], [0.865875, -0.865875, -0.865875, 0.865875, 0.4999, 0.4999, 0.4999, -1.4997], atol=5e-7)
    np.testing.assert_allclose(trl["adv:rloo"], [0.666667, -0.666667, -0.666667, 0.666667, 0.333333, 0.333333, 0.333333, -1.0], atol=5e-7)
    nemo = adv(run_cli, tmp_path, one, "-g", "g", "-r", "r", "-e", "grpo", "--profile", "nemo_rl")
    np.testing.assert_allclose(nemo["adv:grpo"], [1.154699, -1.154699, -1.154699, 1.154699, 0.577349, 0.577349, 0.577349, -1.0], atol=5e-7)


def test_ngrpo_reference(run_cli, tmp_path):
    f = write_csv(tmp_path / "z.csv", "g,r\n" + "\n".join("1,0" for _ in range(8)))
    df = adv(run_cli, tmp_path, f, "-g", "g", "-r", "r", "-e", "ngrpo")
    # -1/3 with eps 1e-6 added to sigma' = 1/3: -0.3333323, within one unit of the printed -0.333333
    np.testing.assert_allclose(df["adv:ngrpo"], -0.333333, atol=1e-6)


# --- the advantages command -------------------------------------------------------------
def test_advantages_keeps_rows_and_labels(run_cli, tmp_path, toy):
    out = tmp_path / "o.jsonl"
    code, stdout, err = run_cli("advantages", toy, "-g", "g", "-r", "a=1", "-r", "b=0.5", "-e", "gdpo:eps=1e-4,batch_norm=false", "-e", "grpo:scale=batch", "-o", out)
    assert code == 0 and stdout == ""
    assert out.stat().st_mode & 0o044 == 0o044  # readable by others, like any new file
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert list(rows[0]) == ["g", "a", "b", "adv:gdpo:eps=1e-4,batch_norm=false", "adv:grpo:scale=batch"]
    assert len(rows) == 6


def test_float32_and_config(run_cli, tmp_path, toy):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tool.mocli]\ngroup = "g"\nrewards = ["a", "b"]\nestimators = ["rloo"]\n')
    df = adv(run_cli, tmp_path, toy, "--config", cfg, "--float32")
    assert df.schema["adv:rloo"] == pl.Float32
    np.testing.assert_allclose(df["adv:rloo"], [-2, 2, 1, -1, 0, 0])


def test_python_dash_m_and_console_script(tmp_path, toy):
    out = tmp_path / "o.csv"
    r = subprocess.run([sys.executable, "-m", "mocli", "advantages", str(toy), "-g", "g", "-r", "a", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert pl.read_csv(out)["adv:grpo"].round(4).to_list() == [-0.7071, 0.7071, 0.7071, -0.7071, 0.7071, -0.7071]


# --- bad input: exit 2, one error line, no traceback, no output -------------------------
def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list, str]]:
    good = write_csv(tmp_path / "good.csv", "g,r,text\n1,1,x\n1,0,y")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet at all")
    norows = tmp_path / "norows.parquet"
    pl.DataFrame({"g": pl.Series([], dtype=pl.Int64), "r": pl.Series([], dtype=pl.Float64)}).write_parquet(norows)
    inf = write_csv(tmp_path / "inf.csv", "g,r\n1,1\n1,inf")
    allnull = tmp_path / "allnull.jsonl"
    allnull.write_text('{"g": 1, "r": null}\n{"g": 1, "r": null}\n')
    badjson = tmp_path / "bad.jsonl"
    badjson.write_text('{"g": 1, "r": 1}\n{"g": 1, "r": \n')
    nulls = write_csv(tmp_path / "nullkey.csv", "g,r\n1,1\n,0")
    emptycol = write_csv(tmp_path / "emptycol.csv", "g,r,s\n1,1,\n1,0,")
    gr = ["-g", "g", "-r", "r"]
    return {
        "missing file": ([tmp_path / "nope.parquet", *gr], "nope.parquet"),
        "empty file": ([empty, *gr], "empty.jsonl"),
        "corrupt file": ([corrupt, *gr], "corrupt.parquet"),
        "no rows": ([norows, *gr], "no rows"),
        "missing reward column": ([good, "-g", "g", "-r", "rr"], "'rr'"),
        "missing group column": ([good, "-g", "gg", "-r", "r"], "'gg'"),
        "non-numeric column": ([good, "-g", "g", "-r", "text"], "'text'"),
        "infinite rewards": ([inf, *gr], "infinite"),
        "reward with no values": ([allnull, *gr], "no values"),
        "empty csv column": ([emptycol, "-g", "g", "-r", "r", "-r", "s"], "'s' has no values"),
        "malformed jsonl": ([badjson, *gr], "bad.jsonl"),
        "null group key": ([nulls, *gr], "null"),
        "misspelt estimator": ([good, *gr, "-e", "gdpoo"], "did you mean 'gdpo'"),
        "misspelt profile": ([good, *gr, "--profile", "verll"], "did you mean 'verl'"),
        "misspelt parameter": ([good, *gr, "-e", "grpo:epss=1"], "did you mean 'eps'"),
        "non-numeric parameter": ([good, *gr, "-e", "grpo:eps=abc"], "'eps'"),
        "bad choice": ([good, *gr, "-e", "grpo:scale=groups"], "did you mean 'group'"),
        "non-numeric weight": ([good, "-g", "g", "-r", "r=heavy"], "heavy"),
        "misspelt scheme": ([good, *gr, "--scheme", "weighted_summ"], "did you mean 'weighted_sum'"),
        "unknown option": ([good, *gr, "--estimatr", "grpo"], "No such option: --estimatr"),
        "passk singleton": ([write_csv(tmp_path / "s.csv", "g,r\n1,1\n2,0\n2,1"), *gr, "-e", "passk"], "passk"),
        "opo without length": ([good, *gr, "-e", "opo"], "--length"),
    }


@pytest.mark.parametrize("case", [
    "missing file", "empty file", "corrupt file", "no rows", "missing reward column", "missing group column",
    "non-numeric column", "infinite rewards", "reward with no values", "empty csv column", "malformed jsonl", "null group key",
    "misspelt estimator", "misspelt profile", "misspelt parameter", "non-numeric parameter", "bad choice",
    "non-numeric weight", "misspelt scheme", "unknown option", "passk singleton", "opo without length",
])
def test_bad_input_exits_2_with_one_line(run_cli, tmp_path, case):
    args, culprit = _bad_inputs(tmp_path)[case]
    fresh = tmp_path / "fresh.parquet"
    kept = tmp_path / "kept.parquet"
    kept.write_bytes(b"existing")
    for out in (fresh, kept):
        code, stdout, err = run_cli("advantages", *args, "-o", out)
        assert code == 2, (case, err)
        assert stdout == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert culprit in lines[0], lines[0]
        assert "Traceback" not in err
    assert not fresh.exists()
    assert kept.read_bytes() == b"existing"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_output_folder_missing(run_cli, tmp_path, toy):
    code, _, err = run_cli("advantages", toy, "-g", "g", "-r", "a", "-o", tmp_path / "no" / "out.parquet")
    assert code == 2 and err.startswith("error: -o/--output") and "does not exist" in err and len(err.splitlines()) == 1


def test_unknown_output_extension(run_cli, tmp_path, toy):
    code, _, err = run_cli("advantages", toy, "-g", "g", "-r", "a", "-o", tmp_path / "out.xlsx")
    assert code == 2 and "out.xlsx" in err and "accepted: .parquet" in err


def test_debug_shows_the_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mocli", "--debug", "advantages", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o.parquet")], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" in r.stderr


# --- listings and docs ------------------------------------------------------------------
def test_listings_json(run_cli):
    code, out, _ = run_cli("estimators", "--format", "json")
    names = [e["name"] for e in json.loads(out)]
    assert names == ["grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline", "remax", "opo", "gpg",
                     "passk", "mc_grpo", "g2rpo", "ngrpo", "pref_grpo", "dgpo", "gdpo", "advantage_sum", "dvao", "gd2po"]
    grpo = json.loads(out)[0]
    assert {p["name"]: p["default"] for p in grpo["params"]} == {
        "nan_policy": "omit", "clip": 0.0, "singleton": "zero", "eps": 1e-6, "eps_mode": "add", "ddof": 1,
        "scale": "group", "leave_one_out": False}
    code, out, _ = run_cli("schemes", "--format", "json")
    assert [e["name"] for e in json.loads(out)] == ["weighted_sum", "weighted_mean", "min", "uwo", "chebyshev", "power_mean", "product", "gated"]
    code, out, _ = run_cli("profiles", "--format", "json")
    assert [e["name"] for e in json.loads(out)] == ["mocli", "trl", "trl_gdpo_fork", "verl", "openrlhf", "nemo_rl"]
    code, out, _ = run_cli("estimators")
    assert code == 0 and "gd2po" in out


def test_docs_page_is_generated_from_the_code():
    from mocli.render.catalog import reference_markdown

    page = (ROOT / "docs" / "estimators.md").read_text()
    assert page == reference_markdown(), "docs/estimators.md drifted: run python -m mocli.render.catalog > docs/estimators.md"


def test_cli_reference_page_is_generated_from_the_help():
    from mocli.cli.reference import reference_markdown

    page = (ROOT / "docs" / "cli.md").read_text()
    assert page == reference_markdown(), "docs/cli.md drifted: run python -m mocli.cli.reference > docs/cli.md"


def test_every_estimator_docstring_states_its_numerics():
    from mocli.render.catalog import estimators

    for e in estimators():
        assert "=" in e["doc"] and e["source"], e["name"]


# --- samples ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["math", "tool_calling", "safety"])
def test_bundled_samples_are_what_mocli_sample_writes(run_cli, tmp_path, name):
    out = tmp_path / f"{name}.parquet"
    code, _, _ = run_cli("sample", name, "-o", out)
    assert code == 0
    fresh = pl.read_parquet(out)
    bundled = pl.read_parquet(ROOT / "sample_data" / f"{name}.parquet")
    assert fresh.equals(bundled)
    code, out_json, _ = run_cli("inspect", out, "--format", "json")
    doc = json.loads(out_json)
    assert doc["rows"] == fresh.height and len(doc["rewards"]) >= 2


def test_math_sample_has_variable_group_sizes(run_cli):
    code, out, _ = run_cli("inspect", ROOT / "sample_data" / "math.parquet", "--format", "json")
    doc = json.loads(out)
    assert doc["group_size"]["min"] == 4 and doc["group_size"]["max"] == 16


def test_a_first_compile_is_announced_once_on_a_terminal():
    """Numba fires its compile event only on a cache miss: the note shows on a terminal's
    stderr once however many kernels compile, and never on a pipe."""
    import io

    from numba import njit
    from numba.core import event

    from mocli.cli import COMPILING, CompileNote

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, want in ((Terminal(), COMPILING), (io.StringIO(), "")):
        with event.install_listener("numba:compile", CompileNote(stream)):
            njit(lambda x: x + 1)(1)
            njit(lambda x: x * 2.0)(1.0)
        assert stream.getvalue() == want


def test_version_in_the_cli_the_json_and_the_html(run_cli, tmp_path):
    """``mocli --version`` names mocli and the libraries that compute; the JSON report's
    ``input`` and the HTML report's footer say the same."""
    import json

    import numba
    import numpy
    import polars

    import mocli

    code, out, _ = run_cli("--version")
    assert code == 0 and out.startswith(f"mocli {mocli.__version__} (polars {polars.__version__}, numpy {numpy.__version__}")
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "math.parquet"
    code, out, _ = run_cli("analyze", sample, "--format", "json", "--by", "step")
    doc = json.loads(out)
    versions = {"polars": polars.__version__, "numpy": numpy.__version__, "numba": numba.__version__}
    for inp in [doc["input"], *(rep["input"] for rep in doc["by"].values())]:
        assert inp["mocli_version"] == mocli.__version__ and inp["versions"] == versions
    code, _, err = run_cli("report", sample, "-o", tmp_path / "r.html")
    assert code == 0, err
    assert f"made by mocli {mocli.__version__} (polars {polars.__version__}" in (tmp_path / "r.html").read_text()
