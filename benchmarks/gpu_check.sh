#!/usr/bin/env bash
# The GPU check of issue 4, prepared for a session that is lent a GPU (../shared/device/README.md):
#   here:    bash benchmarks/gpu_wheels.sh; bash ../shared/device/prepare-ort-gpu.sh
#   device:  calls 1-7 carry .ortgpu1..7, call 8 carries .gpuwheels (~40 MB: one call carries at most
#            64 MiB with the working tree), back to back so the machine stays warm; call 9 runs
#            source .ortgpu1/install-ort-gpu.sh && bash benchmarks/gpu_check.sh
# Results under $OUT. Steps:
# 1. correctness on the bundled fashion-cgan: CUDA vs CPU images, CUDA graphs (cuda_graph=True) vs CPU
#    at several batch sizes, the fp16 variant vs fp32 on CUDA;
# 2. tests/test_gpu.py where its fixtures can be built (they train tiny models: scikit-learn, scikit-image);
# 3. benchmarks.compare --device cuda --fp16: torch eager, torch.compile, ort-naive, ganrt, ganrt-fp16 and
#    ganrt-cudagraph side by side in one process, batches 1..4096, fashion-cgan and DCGAN-64.
# Without CUDA it says so and exits 0, so it can be tried on the CPU first.
set -uo pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
if [ -d .gpuwheels ]; then
  $PY -m pip install -q --no-index --find-links .gpuwheels onnx onnxscript click pillow pytest 2>&1 | tail -2
fi
if ! $PY -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; then
  echo "no CUDAExecutionProvider in this onnxruntime: nothing to check here" | tee "$OUT/skipped.txt"
  exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
$PY - <<'PY' 2>&1 | tee "$OUT/correctness.txt"
import numpy as np, ganrt
from ganrt_export.half import half_model
cpu = ganrt.load("fashion-cgan", device="cpu")
ref = cpu.sample(256, seed=1)
for name, model in (("cuda", ganrt.load("fashion-cgan", device="cuda")),
                    ("cuda+graphs", ganrt.load("fashion-cgan", device="cuda", cuda_graph=True))):
    for batch in (1, 7, 64, 256, 64):  # the second 64 replays a captured graph with new latents
        diff = int(np.abs(model.sample(256, seed=1, batch_size=batch).astype(int) - ref).max())
        print(f"{name} batch {batch}: max |diff| to CPU {diff} -> {'ok' if diff <= 1 else 'FAIL'}")
data, report = half_model(ganrt.resolve_model("fashion-cgan").read_bytes(), source="fashion-cgan")
open("/tmp/fashion-cgan-fp16.onnx", "wb").write(data)
half = ganrt.load("/tmp/fashion-cgan-fp16.onnx", device="cuda")
a, b = half.sample(2000, seed=3).astype(float), ganrt.load("fashion-cgan", device="cuda").sample(2000, seed=3).astype(float)
psnr = 10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12))
print(f"fp16 on cuda vs fp32 on cuda: {psnr:.2f} dB (gate on the CPU: {report['psnr_db']} dB) -> {'ok' if psnr >= 35 else 'FAIL'}")
PY
if $PY -c "import sklearn, skimage, pytest" 2>/dev/null; then
  $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -20 | tee "$OUT/pytest-gpu.txt"
else
  echo "tests/test_gpu.py skipped: its fixtures need scikit-learn and scikit-image" | tee "$OUT/pytest-gpu.txt"
fi
$PY -m benchmarks.compare --device cuda --fp16 --models "${MODELS:-fashion-cgan,dcgan-64}" \
  --batch-sizes "${BATCHES:-1,64,256,1024,4096}" --rounds 3 --seconds 0.5 \
  --json "$OUT/compare-cuda.json" --markdown "$OUT/compare-cuda.md" 2> "$OUT/compare-cuda.log"
tail -40 "$OUT/compare-cuda.md"
