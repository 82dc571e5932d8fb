#!/usr/bin/env bash
# Every GPU check rnnsym has, in one command for a lent CUDA machine with PyTorch and JAX already on
# it (no network there): the CUDA tests, a DistributedDataParallel run over NCCL, and
# benchmarks/bench_gpu.py. Logs and the Markdown table go to $OUT (default ./gpu-out).
#
#   bash benchmarks/gpu_session.sh
#
# Packages the machine lacks (latex2mathml, array-api-compat) travel as wheels in .whl/ and are
# installed into /tmp/site; the C activations are built in place for that machine's Python.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$OUT/gpu.txt"
python3 setup.py -q build_ext --inplace >"$OUT/build.log" 2>&1 || echo "C activations not built (NumPy's used)"
python3 -c "import rnnsym.numeric.printer as p, torch, jax; print('activations:', p.kernels_in_use(), '| torch', torch.__version__, torch.cuda.is_available(), '| jax', jax.__version__, jax.devices())" | tee -a "$OUT/gpu.txt"

echo "== CUDA tests"
timeout 240 python3 -m pytest -q -p no:cacheprovider -o addopts="" -rs tests/test_cuda_graphs.py \
    tests/test_to_torch.py::test_a_module_on_cuda_gives_the_cpu_modules_gradients \
    tests/test_training_backends.py::test_torch_on_cuda_is_the_numpy_run 2>&1 | tee "$OUT/tests.log" | tail -8

echo "== DistributedDataParallel over NCCL, one process"
timeout 120 python3 -m torch.distributed.run --nproc_per_node=1 examples/train_ddp.py /tmp/ddp-model.json --device cuda --steps 5 \
    >"$OUT/ddp.log" 2>&1 && echo "ddp: ok" || { echo "ddp: failed"; tail -5 "$OUT/ddp.log"; }

echo "== bench_gpu"
# BENCH_ONLY=torch,torch_eager (say) times only those contenders
timeout "${BENCH_TIMEOUT:-420}" python3 benchmarks/bench_gpu.py --markdown "$OUT/gpu-bench.md" \
    ${BENCH_ONLY:+--only "$BENCH_ONLY"} 2>&1 | tee "$OUT/bench.log"
