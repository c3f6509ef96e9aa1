#!/usr/bin/env bash
# The one prepared script for a session that is lent a GPU (see issue "Benchmarks"): install the
# project from the copied tree, run the CuPy tests, then the benchmark suite at a reduced size with
# the CuPy and PyTorch-CUDA backends.  Everything it produces lands in $OUT (default: results/gpu).
# Budget: about 10 minutes on one H200; each part has its own timeout so a hang cannot eat the rest.
#
# The device machine reaches no package index.  It has CuPy, PyTorch, NumPy, pytest, hypothesis,
# tqdm and matplotlib, but not array-api-compat (a dependency) or array-api-strict (a test extra):
# carry them as wheels.  Once, here, in the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl array-api-compat==1.16.0 array-api-strict==2.6.1
# then run  bash benchmarks/gpu_check.sh  through the device tool with carry [".whl"].
set -uo pipefail
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  python3 -c "import cupy; print('cupy', cupy.__version__)" 2>&1
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())" 2>&1
} | tee "$OUT/env.txt"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>&1 | tail -2
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# No index to fetch a build backend from: build with the setuptools already there.
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
python3 -c "import scratchvae, array_api_compat, array_api_strict; print('imports ok')" 2>&1 | tee -a "$OUT/env.txt"
# 1. every test that has a CuPy parameter or a gpu marker, on the real GPU
timeout 300 python3 -m pytest -q -k "cupy or gpu" -p no:cacheprovider 2>&1 | tail -40 | tee "$OUT/cupy_tests.txt"
# 2. the benchmark at reduced size: both presets, the step sweep, with the engine on CuPy and the references
timeout 330 python3 benchmarks/run.py --quick --workloads step,eval,overhead \
  --backends numpy,hand-numpy,cupy,cupy-gemm,torch-cpu,torch-cuda \
  --batch-sizes 16,128,1024,4096 --widths 400 --dtypes float32 --k 500 --n-test 200 \
  --out "$OUT/bench" 2>&1 | tail -60 | tee "$OUT/bench_log.txt"
ls -la "$OUT" "$OUT/bench" 2>/dev/null
