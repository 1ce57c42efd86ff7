#!/usr/bin/env bash
# Here, before a GPU session's device calls: downloads the wheels benchmarks/gpu_check.sh needs beyond the
# device image (torch with CUDA; onnxruntime-gpu comes from ../shared/device/) into .gpuwheels/ (ignored
# through .git/info/exclude; ~40 MB: carry it in a call of its own, see gpu_check.sh). Python 3.12 like the
# image (see ../shared/device/prepare-ort-gpu.sh).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
grep -qx '/.gpuwheels/' .git/info/exclude 2>/dev/null || echo '/.gpuwheels/' >> .git/info/exclude
rm -rf .gpuwheels && mkdir .gpuwheels
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d .gpuwheels onnx onnxscript click pillow pytest
du -sh .gpuwheels
