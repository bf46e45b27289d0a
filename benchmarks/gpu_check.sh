#!/usr/bin/env bash
# The GPU checks, as one run on a lent GPU machine (no network there): the CUDA kernels
# against the CPU ones on the real device, `analyze --device cuda` against the CPU report,
# and the benchmark with --cuda. Polars travels as wheels in .whl/ (see docs/performance.md);
# what it prints goes to $OUT (or ./gpu-out) as well. `--quick` (for a short lease): the
# parity tests with the default blocks only, and the benchmark without the CUDA rows.
set -uo pipefail
quick=0; [ "${1:-}" = "--quick" ] && quick=1
out="${OUT:-gpu-out}"; mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
# numba-cuda 0.30 calls numpy.row_stack, which NumPy 2.5 removed (a fresh
# `pip install mocli[cuda]` resolves NumPy 2.4, which has it): put it back for this run
mkdir -p /tmp/shim && printf 'import numpy\nif not hasattr(numpy, "row_stack"):\n    numpy.row_stack = numpy.vstack\n' > /tmp/shim/sitecustomize.py
export PYTHONPATH=/tmp/shim:$PYTHONPATH
export PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/tmp/numba-cache
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import sys, numba, numpy, polars; from numba import cuda; print('python', sys.version.split()[0], 'numba', numba.__version__, 'numpy', numpy.__version__, 'polars', polars.__version__, 'cuda available', cuda.is_available())"
  python3 -c "import importlib.metadata as m; print('numba-cuda', m.version('numba-cuda'))"
} 2>&1 | tee "$out/env.txt"
echo "== CUDA parity, default blocks"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/cuda_parity.py 2>&1 | tail -5 | tee "$out/parity.txt"
if [ $quick = 0 ]; then
  echo "== CUDA parity, blocks of 4 threads"
  MOCLI_CUDA_BLOCK=4 timeout 150 python3 -m pytest -q -p no:cacheprovider tests/cuda_parity.py 2>&1 | tail -5 | tee -a "$out/parity.txt"
fi
echo "== analyze --device cuda against cpu"
python3 - <<'PY' 2>&1 | tee "$out/analyze.txt"
import mocli
def walk(a, b):
    if isinstance(a, dict):
        return max([walk(a[k], b[k]) for k in a] + [0.0])
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) / max(1.0, abs(a))
    return 0.0
for spec in (["grpo", "gdpo"], ["rloo", "reinforce_pp", "dr_grpo"]):
    cpu = mocli.analyze(["sample_data/math.parquet"], estimators=spec, device="cpu").report.to_dict()
    gpu = mocli.analyze(["sample_data/math.parquet"], estimators=spec, device="cuda").report.to_dict()
    print(spec, "largest relative difference", walk(cpu["estimators"], gpu["estimators"]))
PY
echo "== benchmark"
cuda_rows=--cuda; [ $quick = 1 ] && cuda_rows=
timeout 270 python3 benchmarks/run.py --rows 4000000 --repeats 1 --skip-verl $cuda_rows 2>&1 | tee "$out/bench.txt"
