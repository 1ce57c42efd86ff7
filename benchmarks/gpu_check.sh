#!/usr/bin/env bash
# The GPU check of issue 4, prepared for a session that is lent a GPU (../shared/device/README.md):
# run it as the last device call, after `source .ortgpu1/install-ort-gpu.sh`. It needs torch with CUDA,
# onnxruntime-gpu, numpy, onnx and click importable (the device image has torch; carry the rest).
#
#   bash benchmarks/gpu_check.sh            # results under $OUT (default ./gpu-results)
#
# 1. the GPU tests (tests/test_gpu.py: CUDA vs CPU images, CUDA graphs vs a plain session);
# 2. benchmarks.compare --device cuda --fp16: torch eager, torch.compile, ort-naive, ganrt, ganrt-fp16 and
#    ganrt-cudagraph side by side in one process, batches 1..4096, fashion-cgan and DCGAN-64.
# On a machine without CUDA it says so and stops (exit 0), so it can be tried on the CPU first.
set -uo pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=.
PY=${PYTHON:-python}
if ! $PY -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; then
  echo "no CUDAExecutionProvider in this onnxruntime: nothing to check here" | tee "$OUT/skipped.txt"
  exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
$PY -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -20 | tee "$OUT/pytest-gpu.txt"
$PY -m benchmarks.compare --device cuda --fp16 --models "${MODELS:-fashion-cgan,dcgan-64}" \
  --batch-sizes "${BATCHES:-1,64,256,1024,4096}" --rounds 3 --seconds 0.5 \
  --json "$OUT/compare-cuda.json" --markdown "$OUT/compare-cuda.md" 2> "$OUT/compare-cuda.log"
tail -40 "$OUT/compare-cuda.md"
