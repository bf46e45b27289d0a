"""The contract for bad input and faults, as a new user meets them, through the CLI:
exit 2 with one ``error:`` line that names the culprit, nothing on stdout, no file left
behind, no output or input overwritten; or a correct result. Interruptions (SIGINT,
SIGTERM) are sent to real runs while they write."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

OLD = b"an output that must survive\n"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    chunks = tmp_path / "chunks"
    chunks.mkdir()
    monkeypatch.setenv("MOCLI_TMPDIR", str(chunks))
    pl.DataFrame({"g": [1, 1, 2, 2], "a_reward": [1.0, 0.0, 0.0, 1.0], "b_reward": [1.0, 1.0, 1.0, 0.0]}).write_parquet(tmp_path / "ok.parquet")
    return tmp_path


def leftovers(folder: Path) -> list[str]:
    """Temporary output files and chunk folders still there."""
    found = [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]
    return found + [p.name for p in (folder / "chunks").iterdir()]


def refused(run_cli, folder: Path, *args, culprit: str = "") -> str:
    """Run with an output that already exists; assert the whole contract for exit 2 and
    return the error line."""
    out = folder / "out.parquet"
    out.write_bytes(OLD)
    args = [a.replace("OUT", str(out)) if isinstance(a, str) else a for a in args]
    code, stdout, err = run_cli(*args)
    assert code == 2, (args, err)
    assert stdout == "", stdout
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert "internal error" not in err, err
    assert culprit in err, (culprit, err)
    assert out.read_bytes() == OLD
    assert leftovers(folder) == []
    return lines[0]


# ---------------------------------------------------------------------------------------
# numbers that would be silently wrong
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("estimator", ["grpo", "rloo", "gdpo", "reinforce_pp", "dr_grpo"])
@pytest.mark.parametrize("command", ["advantages", "analyze"])
def test_rewards_that_overflow_are_refused(run_cli, folder, estimator, command):
    pl.DataFrame({"g": [1, 1, 2, 2], "a_reward": [1e308, -1e308, 0.0, 1.0], "b_reward": [0.0, 1.0, 0.5, 0.0]}).write_parquet(folder / "big.parquet")
    args = [command, folder / "big.parquet", "-g", "g", "-e", estimator] + (["-o", "OUT"] if command == "advantages" else ["--format", "json"])
    line = refused(run_cli, folder, *args, culprit="'a_reward'")
    assert "1e+308" in line


def test_large_but_safe_rewards_still_work(run_cli, folder):
    pl.DataFrame({"g": [1, 1, 1, 2, 2], "a_reward": [1e140, 3e140, -1e140, 0.0, 1.0], "b_reward": [1e140, -3e140, 0.0, 0.0, 1.0]}).write_parquet(folder / "b.parquet")
    code, out, err = run_cli("analyze", folder / "b.parquet", "-g", "g", "--format", "json")
    assert code == 0 and err == "" and out.startswith("{")


@pytest.mark.parametrize("args, culprit", [
    (["-e", "grpo:eps=nan"], "parameter 'eps' of estimator 'grpo'"),
    (["-e", "grpo:eps=inf"], "parameter 'eps' of estimator 'grpo'"),
    (["-e", "ngrpo:r_max=nan"], "parameter 'r_max' of estimator 'ngrpo'"),
    (["-e", "gdpo:eps_batch=inf"], "parameter 'eps_batch' of estimator 'gdpo'"),
    (["-e", "rloo:clip=nan"], "parameter 'clip' of estimator 'rloo'"),
    (["--scheme", "power_mean:p=nan"], "parameter 'p' of scheme 'power_mean'"),
    (["--scheme", "uwo:lam=nan"], "parameter 'lam' of scheme 'uwo'"),
    (["--scheme", "chebyshev:ideal=1;inf"], "parameter 'ideal' of scheme 'chebyshev'"),
    (["--gate", "a_reward>=nan"], "--gate 'a_reward>=nan'"),
    (["--when", "b_reward:a_reward>=inf"], "--when 'b_reward:a_reward>=inf'"),
    (["-r", "a_reward=nan"], "--reward 'a_reward=nan'"),
    (["-r", "a_reward=1e300", "-r", "b_reward"], "weights a_reward=1e+300"),  # squares of the score overflow
    (["-e", "gd2po:tau=nan"], "parameter 'tau' of estimator 'gd2po'"),
    (["--scheme", "chebyshev:rho=inf"], "parameter 'rho' of scheme 'chebyshev'"),
])
def test_parameters_must_be_finite(run_cli, folder, args, culprit):
    refused(run_cli, folder, "advantages", folder / "ok.parquet", "-g", "g", *args, "-o", "OUT", culprit=culprit)


def test_nan_where_it_has_a_meaning_is_accepted(run_cli, folder):
    out = folder / "o.csv"
    code, _, err = run_cli("advantages", folder / "ok.parquet", "-g", "g", "-e", "gdpo:eps_batch=nan", "--when", "b_reward:a_reward>=1:nan", "-o", out)
    assert code == 0, err


def test_check_thresholds_must_be_finite(run_cli, folder):
    for expr in ("sign_flip.a_reward > nan", "sign_flip.a_reward < inf"):
        code, out, err = run_cli("check", folder / "ok.parquet", "-g", "g", "--fail-if", expr)
        assert code == 2 and out == "" and err.startswith(f"error: --fail-if '{expr}'") and len(err.splitlines()) == 1


def test_group_keys_of_different_types_across_files(run_cli, folder):
    pl.DataFrame({"g": [1, 1], "a_reward": [1.0, 0.0]}).write_parquet(folder / "int.parquet")
    pl.DataFrame({"g": ["1", "1"], "a_reward": [0.0, 1.0]}).write_parquet(folder / "text.parquet")
    line = refused(run_cli, folder, "advantages", folder / "int.parquet", folder / "text.parquet", "-g", "g", "-o", "OUT")
    assert "int.parquet" in line and "text.parquet" in line and "group column 'g'" in line


def test_duplicate_column_names(run_cli, folder):
    (folder / "dup.csv").write_text("g,a,a\n1,1,0\n1,0,1\n")
    refused(run_cli, folder, "analyze", folder / "dup.csv", "-g", "g", "-r", "a", culprit="names column 'a' twice")


# ---------------------------------------------------------------------------------------
# data loss
# ---------------------------------------------------------------------------------------
def test_an_output_that_is_an_input_is_refused(run_cli, folder):
    src = folder / "ok.parquet"
    before = src.read_bytes()
    for args in (["advantages", src, "-g", "g", "-o", src],
                 ["advantages", folder, "-g", "g", "-o", folder / "ok.parquet"],
                 ["analyze", src, "-g", "g", "--html", src]):
        code, out, err = run_cli(*args)
        assert code == 2 and out == "" and "is also an input" in err and "--overwrite-input" in err
        assert src.read_bytes() == before
    code, _, err = run_cli("advantages", src, "-g", "g", "-o", src, "--overwrite-input")
    assert code == 0, err
    got = pl.read_parquet(src)
    assert got.columns == ["g", "a_reward", "b_reward", "adv:grpo"] and got.height == 4


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------
def test_csv_null_markers_read_as_not_applicable(run_cli, folder):
    (folder / "markers.csv").write_text("g,a_reward,b_reward\n1,nan,1\n1,1,NA\n1,NaN,0\n1,0,null\n2,,1\n2,1,\n")
    (folder / "empty.csv").write_text("g,a_reward,b_reward\n1,,1\n1,1,\n1,,0\n1,0,\n2,,1\n2,1,\n")
    outs = []
    for name in ("markers", "empty"):
        out = folder / f"{name}.out.csv"
        code, _, err = run_cli("advantages", folder / f"{name}.csv", "-g", "g", "-e", "gdpo", "-o", out)
        assert code == 0, err
        outs.append(pl.read_csv(out)["adv:gdpo"].to_numpy())
    np.testing.assert_array_equal(outs[0], outs[1])


def test_byte_order_marks_are_accepted(run_cli, folder):
    (folder / "bom.jsonl").write_text('{"g":1,"a_reward":1}\n{"g":1,"a_reward":0}\n', encoding="utf-8-sig")
    (folder / "bom.csv").write_text("g,a_reward\n1,1\n1,0\n", encoding="utf-8-sig")
    for name in ("bom.jsonl", "bom.csv"):
        code, out, err = run_cli("analyze", folder / name, "-g", "g", "--format", "json")
        assert code == 0 and '"rows": 2' in out, err


@pytest.mark.parametrize("text, culprit", [
    ('{"g":1,"a_reward":1}\n{"g":1,"a_reward":NaN}\n', "line 2"),
    ('{"g":1,"a_reward":1}\n{"g":1,"a_reward":Infinity}\n', "line 2"),
    ('{"g":1,"a_reward":1}\n{"g":1,"a_reward":0}\n{"g":1,"a_reward":0\n', "line 3, character 20"),
    ('{"g":1,"a_reward":1}\n[1, 2]\n', "line 2"),
])
def test_jsonl_errors_name_the_file_and_line(run_cli, folder, text, culprit):
    (folder / "bad.jsonl").write_text(text)
    line = refused(run_cli, folder, "advantages", folder / "bad.jsonl", "-g", "g", "-o", "OUT", culprit=culprit)
    assert "bad.jsonl" in line


def test_a_corrupt_or_late_changing_input_is_blamed_not_the_output(run_cli, folder):
    (folder / "corrupt.parquet").write_bytes((folder / "ok.parquet").read_bytes()[:60])
    refused(run_cli, folder, "advantages", folder / "corrupt.parquet", "-g", "g", "-o", "OUT", culprit="cannot read")
    rows = ["g,a_reward,note"] + [f"{i // 4},{i % 2},{i}" for i in range(12000)] + ["7,1,oops"]
    (folder / "late.csv").write_text("\n".join(rows) + "\n")
    line = refused(run_cli, folder, "advantages", folder / "late.csv", "-g", "g", "-o", "OUT", culprit="late.csv")
    assert "cannot read" in line and "'note'" in line


@pytest.mark.parametrize("make, culprit", [
    (lambda f: None, "does not exist"),
    (lambda f: f.write_bytes(b""), "is empty"),
    (lambda f: f.write_bytes(os.urandom(2000)), "cannot read"),
])
def test_missing_empty_and_garbage_files(run_cli, folder, make, culprit):
    target = folder / "x.parquet"
    make(target)
    refused(run_cli, folder, "advantages", target, "-g", "g", "-o", "OUT", culprit=culprit)


@pytest.mark.parametrize("args, culprit", [
    (["-e", "grpoo"], "did you mean 'grpo'"),
    (["-g", "gg"], "did you mean 'g'"),
    (["-r", "a_rewrd"], "did you mean 'a_reward'"),
    (["--profile", "trll"], "did you mean 'trl'"),
    (["--from", "verll"], "did you mean 'verl'"),
    (["--batch-by", "stepp"], "batch column 'stepp'"),
])
def test_misspellings_are_named(run_cli, folder, args, culprit):
    refused(run_cli, folder, "advantages", folder / "ok.parquet", "-g", "g", *args, "-o", "OUT", culprit=culprit)


def test_config_errors(run_cli, folder):
    (folder / "bad.toml").write_text("[tool.mocli\nestimators = 3\n")
    refused(run_cli, folder, "advantages", folder / "ok.parquet", "-g", "g", "--config", folder / "bad.toml", "-o", "OUT", culprit="bad.toml")


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------
@pytest.fixture
def mount(tmp_path):
    """A real tmpfs mounted for the test (root only; skipped where mounting is refused)."""
    mounted = []

    def make(options: str) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", str(where)], capture_output=True)


def test_an_output_that_cannot_be_written(run_cli, folder):
    code, out, err = run_cli("advantages", folder / "ok.parquet", "-g", "g", "-o", folder / "no" / "o.parquet")
    assert code == 2 and out == "" and "does not exist" in err and len(err.splitlines()) == 1
    code, out, err = run_cli("advantages", folder / "ok.parquet", "-g", "g", "-o", folder)
    assert code == 2 and "is a folder" in err


def test_a_read_only_file_system(run_cli, folder, mount):
    ro = mount("ro,size=64k")
    for args in (["advantages", folder / "ok.parquet", "-g", "g", "-o", ro / "o.parquet"],
                 ["analyze", folder / "ok.parquet", "-g", "g", "--html", ro / "r.html"],
                 ["check", folder / "ok.parquet", "-g", "g", "--fail-if", "sign_flip.a_reward > 0.9", "--summary", ro / "s.md"]):
        code, out, err = run_cli(*args)
        assert code == 2 and out == "" and len(err.splitlines()) == 1, err
        assert str(args[-1]) in err and "read-only file system" in err, err


def test_a_full_disk(run_cli, folder, mount):
    small = mount("size=64k")
    n = 40000
    pl.DataFrame({"g": np.arange(n) // 4, "a_reward": np.arange(n) % 3 * 1.0}).write_parquet(folder / "n.parquet")
    (small / "old.csv").write_bytes(OLD)
    code, out, err = run_cli("advantages", folder / "n.parquet", "-g", "g", "-o", small / "old.csv")
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert f"cannot write '{small / 'old.csv'}'" in err and "no space left" in err.lower(), err
    assert (small / "old.csv").read_bytes() == OLD and sorted(p.name for p in small.iterdir()) == ["old.csv"]


def test_concurrent_runs_on_one_output(folder):
    """Two runs writing the same output at once: each renames a whole file into place."""
    out = folder / "o.parquet"
    cmd = [sys.executable, "-m", "mocli", "advantages", str(folder / "ok.parquet"), "-g", "g", "-e", "gdpo", "-o", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    assert all(p.wait(120) == 0 for p in procs)
    assert pl.read_parquet(out).height == 4 and leftovers(folder) == []


# ---------------------------------------------------------------------------------------
# interruptions
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def large(tmp_path_factory):
    path = tmp_path_factory.mktemp("large") / "large.parquet"
    n = 1_500_000
    rng = np.random.default_rng(0)
    pl.DataFrame({"g": np.repeat(np.arange(n // 8), 8), "a_reward": rng.random(n), "b_reward": rng.random(n),
                  "note": ["a line of text"] * n}).write_parquet(path)
    return path


def _as_from_a_terminal() -> None:
    """In the child before it starts Python: SIGINT as a terminal leaves it (a test runner
    started in the background inherits it ignored, and Python then keeps it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(cmd: list[str], sig: int, delay: float, env: dict) -> tuple[int, str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, preexec_fn=_as_from_a_terminal)
    time.sleep(delay)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, err.decode()


@pytest.mark.parametrize("sig, streamed", [(signal.SIGINT, True), (signal.SIGTERM, False)])
def test_signals_mid_run_leave_nothing_behind(folder, large, sig, streamed):
    """The signal lands at several moments (reading, computing, writing); whatever the
    moment, the run ends with 128 + the signal and one line and the old output untouched,
    or (too late to stop it) with the whole new output; never a temporary file or chunk
    folder left."""
    out = folder / "out.csv"
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "mocli", "advantages", str(large), "-g", "g", "-e", "grpo", "-e", "gdpo", "-o", str(out),
           "--memory-limit", "20MB" if streamed else "100GB"]
    subprocess.run(cmd, check=True, capture_output=True, env=env)  # compiles and caches the kernels once
    start = time.time()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    whole = time.time() - start
    interrupted = 0
    for fraction in (0.3, 0.5, 0.65, 0.8):
        out.write_bytes(OLD)
        code, err = _interrupt(cmd, sig, fraction * whole, env)
        assert leftovers(folder) == [], (fraction, leftovers(folder))
        assert "Traceback" not in err and "Exception ignored" not in err, err
        if code == 0:
            assert pl.read_csv(out).height == 1_500_000
        elif code == -sig:  # still starting up (importing), before mocli's handlers: nothing begun
            assert err == "" and out.read_bytes() == OLD
            interrupted += 1
        else:
            assert code == 128 + sig and err.splitlines()[-1].startswith("error: interrupted by"), (code, err)
            if "written in full" in err:  # the signal came after the output was in place
                assert pl.read_csv(out).height == 1_500_000
            else:
                assert len(err.splitlines()) == 1, err
                assert out.read_bytes() == OLD
                interrupted += 1
    assert interrupted >= 1


TRIP = """
import os, signal, sys

class Trip:  # sends the signal to this process when the named module begins to load
    def find_spec(self, name, path=None, target=None):
        if name == WANT:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), SIG)
        return None

SIG, WANT = int(sys.argv[1]), sys.argv[2]
sys.meta_path.insert(0, Trip())
sys.argv = ["mocli"] + sys.argv[3:]
from mocli.launch import main
main()
"""


@pytest.mark.parametrize("sig, module", [
    (signal.SIGINT, "polars"), (signal.SIGINT, "numba"), (signal.SIGINT, "typer"), (signal.SIGINT, "mocli.cli.commands"),
    (signal.SIGINT, "mocli.api"), (signal.SIGTERM, "numba"), (signal.SIGTERM, "mocli.cli.commands"),
])
def test_a_signal_while_the_command_loads(folder, sig, module):
    """A Ctrl-C or SIGTERM while Python is still loading the command line (a slow disk or a
    cold CI runner can take seconds there): the same one line and 128 + the signal, nothing
    written."""
    out = folder / "out.csv"
    out.write_bytes(OLD)
    cmd = [sys.executable, "-c", TRIP, str(int(sig)), module, "advantages", str(folder / "ok.parquet"), "-g", "g", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_as_from_a_terminal, timeout=120)
    assert proc.returncode == 128 + sig and proc.stdout == "", (proc.returncode, proc.stderr)
    assert proc.stderr == f"error: interrupted by {sig.name}; no output was written or changed\n"
    assert out.read_bytes() == OLD and leftovers(folder) == []


def test_chunk_folders_of_dead_processes_are_removed(run_cli, folder):
    chunks = folder / "chunks"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = chunks / f"mocli-chunks-{dead.pid}-abcd"
    stale.mkdir()
    (stale / "chunk00000-000000.arrow").write_bytes(b"x" * 1000)
    alive = chunks / f"mocli-chunks-{os.getpid()}-efgh"
    alive.mkdir()
    code, _, err = run_cli("inspect", folder / "ok.parquet", "-g", "g", "--format", "json")  # any command
    assert code == 0, err
    assert not stale.exists() and alive.exists()
    shutil.rmtree(alive)
