"""Hash every output mocli writes on a fixed set of inputs, to show a change leaves them
bit for bit as they were.

    python benchmarks/output_hashes.py > before.txt
    ... change the code ...
    python benchmarks/output_hashes.py > after.txt
    diff before.txt after.txt        # no line may differ

Inputs: the bundled samples, two benchmark tables (``run.make_table`` with 120,000 rows:
ragged groups, and the same size in groups of 8) and, when ``../shared/data/dumps`` is
there, every framework dump read with ``--from auto``. For each input it hashes the
``adv:*`` columns ``mocli advantages`` writes for every registered estimator and for every
profile's default estimators, and ``mocli analyze --format json`` (default and under every
profile). A run that ends in an error hashes the error line instead, so a change in what is
refused shows too. The benchmark tables are also run streamed (``--memory-limit 2MB``: many
group-complete chunks, batch-wide statistics settled over them). One line per output: ``<input> <command> <sha256 prefix>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import make_table  # noqa: E402

from mocli.cli import main  # noqa: E402
from mocli.estimators import ESTIMATORS  # noqa: E402
from mocli.profiles import PROFILES  # noqa: E402

DUMPS = ROOT.parent / "shared" / "data" / "dumps"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def advantages_hash(source: list[str], extra: list[str], work: Path) -> str:
    target = work / "out.parquet"
    target.unlink(missing_ok=True)
    code, _, err = cli("advantages", *source, "-o", target, *extra)
    if code != 0:
        return f"exit{code}:" + digest(err.strip().encode())
    frame = pl.read_parquet(target)
    h = hashlib.sha256()
    for name in sorted(c for c in frame.columns if c.startswith("adv:")):
        h.update(name.encode())
        h.update(np.ascontiguousarray(frame[name].to_numpy(), dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def analyze_hash(source: list[str], extra: list[str]) -> str:
    code, out, err = cli("analyze", *source, "--format", "json", *extra)
    if code not in (0, 1):
        return f"exit{code}:" + digest(err.strip().encode())
    return digest(out.encode())


def inputs(work: Path) -> list[tuple[str, list[str]]]:
    # the toy CSV names its columns g, a, b: nothing to detect them by
    roles = {"gdpo_toy.csv": ["-g", "g", "-r", "a", "-r", "b"]}
    found = [(p.name, [str(p), *roles.get(p.name, [])]) for p in sorted((ROOT / "sample_data").iterdir())]
    ragged, _ = make_table(120_000, seed=0)
    equal, _ = make_table(120_000, seed=1, equal=8)
    for name, frame in (("bench-ragged", ragged), ("bench-equal8", equal)):
        path = work / f"{name}.parquet"
        frame.write_parquet(path)
        found.append((name, [str(path)]))
    if DUMPS.is_dir():
        for folder in sorted(p for p in DUMPS.rglob("*") if p.is_dir()):
            files = [p for p in folder.iterdir() if p.is_file() and p.suffix in (".jsonl", ".parquet")]
            if files:
                found.append((str(folder.relative_to(DUMPS)), [str(folder), "--from", "auto"]))
    return found


# runs that split a benchmark table into chunks (a small memory limit)
STREAMED = [
    ["--memory-limit", "2MB", "-e", "gdpo", "-e", "gpg", "-e", "rloo:normalize=true", "-e", "grpo:scale=batch",
     "-e", "gd2po", "-e", "reinforce_pp"],
    ["--memory-limit", "2MB", "--scheme", "chebyshev", "-e", "grpo", "-e", "gdpo"],
]


def main_() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, source in inputs(work):
            for est in ESTIMATORS.names():
                print(name, f"advantages -e {est}", advantages_hash(source, ["-e", est], work), flush=True)
            for profile in PROFILES.names():
                print(name, f"advantages --profile {profile}",
                      advantages_hash(source, ["--profile", profile], work), flush=True)
            print(name, "analyze", analyze_hash(source, []), flush=True)
            for profile in PROFILES.names():
                print(name, f"analyze --profile {profile}", analyze_hash(source, ["--profile", profile]), flush=True)
            if name.startswith("bench-"):  # streamed in chunks, with batch-wide statistics settled over them
                for extra in STREAMED:
                    print(name, "advantages " + " ".join(extra), advantages_hash(source, extra, work), flush=True)
                    print(name, "analyze " + " ".join(extra), analyze_hash(source, extra), flush=True)


if __name__ == "__main__":
    main_()
