"""What a person meets first at a terminal: --help, examples, shell completion, and a
report that fits the terminal, clears its progress bar and honours NO_COLOR and --quiet."""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer

from mocli.cli.commands import EXAMPLES, MAIN_EXAMPLE, app
from mocli.io.chunks import AUTO_SHARE
from mocli.options import OPTIONS, PANELS

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data"
MOCLI = [sys.executable, "-m", "mocli"]
COMMANDS = typer.main.get_command(app).list_commands(None)


# --- help ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", COMMANDS)
def test_help_names_values_and_groups_options(run_cli, name):
    """Every value is named for what it is (SPEC, COLUMN, PATH, SIZE...), never a Python type;
    options sit in the table's sections, in order; the command ends with examples."""
    code, out, _ = run_cli(name, "--help")
    assert code == 0
    for python_type in ("<str>", "list[str]", "<float>", "<int>", "<bool>", "{PATH}", "{inputs}", "TEXT"):
        assert python_type not in out, (name, python_type)
    sections = [line[:-1] for line in out.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    shown = [s for s in sections if s in PANELS]
    assert shown == sorted(shown, key=PANELS.index), sections
    assert sections[-1] == "Examples" and out.rstrip().splitlines()[-1].strip().startswith("mocli "), out
    if name in ("analyze", "compare", "check", "advantages", "verify", "report"):
        assert {"Input", "Rewards and groups", "Estimators", "Output"} <= set(sections), sections
        assert f"Usage: mocli {name} [OPTIONS] PATH..." in out


def test_help_states_the_defaults_of_the_option_table(run_cli):
    code, out, _ = run_cli("analyze", "--help")
    text = " ".join(out.split())
    assert f"[default: auto: {AUTO_SHARE:.0%} of the memory still available" in text
    assert "[default: weighted_sum]" in text and "[default: cpu]" in text and "[default: table]" in text
    for option in OPTIONS:
        if option.flags and (option.shared or option.name in ("memory_limit", "format")):
            assert option.flags[-1] in out, option.flags


def test_mocli_alone_shows_the_commands_and_the_main_example(run_cli):
    code, out, _ = run_cli()
    assert code == 0
    assert MAIN_EXAMPLE in out and "Commands:" in out
    for name in COMMANDS:
        assert f"  {name} " in out
    # no summary cut short with "..."
    commands = out.split("Commands:", 1)[1].split("Examples:", 1)[0]
    assert "..." not in commands
    readme = (ROOT / "README.md").read_text()
    assert MAIN_EXAMPLE in readme


def _examples_on_samples() -> list[tuple[str, str]]:
    return [(name, line.strip()) for name, text in EXAMPLES.items() for line in text.splitlines()
            if line.strip().startswith("mocli ") and "sample_data/" in line or line.strip().startswith("mocli sample ")]


@pytest.mark.parametrize("name,line", _examples_on_samples())
def test_every_example_on_the_bundled_samples_runs(run_cli, tmp_path, monkeypatch, name, line):
    """The examples a person copies from --help work (exit 0, or 1 for a check that fails)."""
    (tmp_path / "sample_data").symlink_to(SAMPLES)
    monkeypatch.chdir(tmp_path)
    words = shlex.split(line)
    assert words[1] == name
    code, _, err = run_cli(*words[1:])
    assert code in (0, 1), (line, err)
    assert "error:" not in err, (line, err)


# --- completion ----------------------------------------------------------------------
@pytest.fixture
def complete(monkeypatch, capfd):
    """What bash completion offers for the last word of ``mocli WORDS`` (Typer's own
    completion protocol, run in this process from the repository root)."""
    from mocli.cli.commands import app

    command = typer.main.get_command(app)
    monkeypatch.chdir(ROOT)

    def run(*words: str) -> list[str]:
        monkeypatch.setenv("_MOCLI_COMPLETE", "complete_bash")
        monkeypatch.setenv("COMP_WORDS", " ".join(("mocli",) + words))
        monkeypatch.setenv("COMP_CWORD", str(len(words)))
        capfd.readouterr()
        with pytest.raises(SystemExit) as done:
            command.main(args=[], prog_name="mocli", standalone_mode=False)
        assert done.value.code == 0
        return capfd.readouterr().out.split()

    return run


def test_completion_of_names_and_columns(complete):
    from mocli.estimators import ESTIMATORS
    from mocli.profiles import PROFILES
    from mocli.schemes import SCHEMES

    sample = "sample_data/math.parquet"
    assert complete("ana") == ["analyze"]
    assert complete("analyze", sample, "-e", "g") == [n for n in ESTIMATORS.names() if n.startswith("g")]
    assert complete("analyze", sample, "--scheme", "") == SCHEMES.names()
    assert complete("analyze", sample, "--profile", "t") == [n for n in PROFILES.names() if n.startswith("t")]
    assert complete("analyze", sample, "--from", "") == ["trl", "verl", "nemo_rl", "auto"]
    assert complete("analyze", sample, "--format", "") == ["table", "json", "markdown"]
    columns = pl.read_parquet_schema(ROOT / sample)
    assert complete("analyze", sample, "-g", "") == list(columns)
    assert complete("compare", "-e", "grpo", sample, "-r", "c") == [c for c in columns if c.startswith("c")]
    assert complete("analyze", "sample_data/*.parquet", "--length", "resp") == ["response_length"]
    assert complete("check", sample, "--batch-by", "st") == ["step"]
    assert complete("analyze", sample, "--by", "st") == ["step"]
    assert complete("analyze", "missing.parquet", "-g", "") == []  # nothing readable: nothing offered


# --- the terminal report -------------------------------------------------------------
NAMES = ["correctness_reward_from_verifier", "format_compliance_reward", "length_penalty_reward",
         "safety_classifier_reward", "helpfulness_reward_model_score"]


@pytest.fixture(scope="module")
def long_names(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    n = 800
    g = np.repeat(np.arange(100), 8)
    cols = {"prompt_id": g, "step": g // 25, "response_length": rng.integers(10, 900, n),
            "completion": [f"a completion of several words, number {i}" for i in range(n)]}
    cols.update({name: rng.integers(0, 3, n).astype(float) for name in NAMES})
    path = tmp_path_factory.mktemp("long") / "long.parquet"
    pl.DataFrame(cols).write_parquet(path)
    return path


def _broken(text: str, names: list[str]) -> list[str]:
    """Words in the tables of ``text`` that are a piece of a name cut in two: the tail of a
    name cut inside one of its parts (``eward``), or a name cut at an underscore (``length_``
    then ``penalty_reward``; a whole part such as ``reward`` alone is a word of its own)."""
    cells = "\n".join(line for line in text.splitlines() if "│" in line or "┃" in line or line.startswith(("fail", "pass")))
    words = [w for w in re.split(r"[\s│┃|,=]+", cells) if w and w not in names]
    return [w for w in words for n in names
            if (n.endswith(w) and len(w) < len(n) and n[-len(w) - 1] != "_")
            or (w.endswith("_") and n.startswith(w)) or (w.startswith("_") and n.endswith(w))]


@pytest.mark.parametrize("width", [80, 120])
def test_report_fits_the_terminal_without_broken_names(run_cli, monkeypatch, long_names, width):
    monkeypatch.setenv("COLUMNS", str(width))
    args = [a for n in NAMES for a in ("-r", n)]
    labels = ["grpo", "gdpo", "rloo", "dr_grpo"]
    code, out, err = run_cli("compare", long_names, *args, *(a for lb in labels for a in ("-e", lb)),
                             "--length", "response_length", "--by", "step", "--top", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= width
    assert not _broken(out, NAMES + labels)
    for name in NAMES:
        assert f"sign flip {name}" in out  # each name whole, with the words around it
    if width == 80:  # the objectives as columns, split where five do not fit
        assert "Objectives (continued)" in out


@pytest.mark.parametrize("width", [80, 120])
def test_check_inspect_and_listings_fit_the_terminal(run_cli, monkeypatch, long_names, width):
    monkeypatch.setenv("COLUMNS", str(width))
    rewards = [a for n in NAMES for a in ("-r", n)]
    runs = [("check", long_names, *rewards, "--fail-if", f"sign_flip.{NAMES[0]} > 0.2", "--fail-if", f"interference.{NAMES[2]} > 0.1"),
            ("inspect", long_names, *rewards), ("estimators",), ("schemes",), ("profiles",)]
    for args in runs:
        code, out, err = run_cli(*args)
        assert code in (0, 1), err
        assert max(len(line) for line in out.splitlines()) <= width, args[0]
        assert "…" not in out and not _broken(out, NAMES), args[0]


def test_report_at_a_pipe_keeps_one_wide_layout(run_cli, monkeypatch, long_names):
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run_cli("analyze", long_names, *(a for n in NAMES for a in ("-r", n)))
    assert code == 0 and "(continued)" not in out and max(map(len, out.splitlines())) <= 160


def _on_a_terminal(args: list[str], env: dict[str, str], columns: int = 80) -> bytes:
    """Run mocli with stdout and stderr on one pseudo-terminal; what the terminal received."""
    import fcntl
    import termios

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(MOCLI + args, stdin=child, stdout=child, stderr=child, env=env, cwd=ROOT, close_fds=True)
    os.close(child)
    received = b""
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        received += chunk
    proc.wait(timeout=120)
    os.close(main)
    assert proc.returncode == 0, received[-2000:]
    return received


COLOUR = re.compile(rb"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;[0-9;]+)m")


def test_progress_is_cleared_before_the_report_and_no_color_is_honoured(long_names):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    args = ["analyze", str(long_names), "--by", "step"]
    received = _on_a_terminal(args, env)
    text = received.decode()
    assert "slices by step" in text  # the bar was drawn...
    at = text.index("mocli analyze")
    before = text[:at]
    # ...and erased: the report's title starts a line, after the bar's line was cleared
    assert before.endswith("\x1b[2K\x1b[1m") or before.endswith("\n"), repr(before[-60:])
    assert "\x1b[2K" in before[before.rindex("slices by step"):]
    assert COLOUR.search(received)
    plain = _on_a_terminal(args, dict(env, NO_COLOR="1"))
    assert not COLOUR.search(plain) and b"mocli analyze" in plain


# --- --quiet -------------------------------------------------------------------------
def test_quiet_prints_only_findings_and_the_status_line(run_cli):
    sample = SAMPLES / "math.parquet"
    code, full, _ = run_cli("analyze", sample, "--format", "markdown")
    wanted = [line[2:] for line in full.split("### What to look at first", 1)[1].split("###", 1)[0].splitlines()
              if line.startswith("- ")]
    code, out, err = run_cli("analyze", sample, "--quiet")
    assert code == 0
    assert [line[2:] for line in out.splitlines()] == wanted and all(line.startswith("• ") for line in out.splitlines())
    assert err == f"mocli analyze: {len(wanted)} findings\n"
    code, out, err = run_cli("check", sample, "-q", "--fail-if", "sign_flip.correct_reward > 0.2",
                             "--fail-if", "collapse.zero_variance_group_rate > 0.9")
    assert code == 1
    assert out == "failed: sign_flip.correct_reward > 0.2 (gdpo): 0.2974\n"
    assert err.splitlines() == ["4 checks: 1 failed, 0 null"]
    code, out, err = run_cli("analyze", sample, "-q", "--format", "json")  # JSON stays whole
    assert code == 0 and '"estimators"' in out
