#!/usr/bin/env bash
# What a CUDA machine does with this project, in one JSON file (benchmarks/gpu.py):
#   1. labelgen run over IMAGES photos with the onnxruntime CUDA provider: images/s;
#   2. the shipped teacher alone at batch 32 and 128: ms per crop;
#   3. FaceOccNet inference at full width: images/s at batch 1 and 64 (the paper reports about 300 fps);
#   4. svc-train with AMP for TRAIN_STEPS steps: wall clock and images/s.
# On a machine without CUDA it prints one line saying so and exits 0.
# The teacher uses onnxruntime's CUDA provider when onnxruntime-gpu is installed (in place of onnxruntime), else
# its CPU provider; the JSON says which. A section that fails records its error and the others still run.
#
# Usage: pipelines/gpu_check.sh [OUT=gpu_check.json] [IMAGES=1000] [TRAIN_STEPS=300]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python}
"$python" "$here/benchmarks/gpu.py" --out "${1:-gpu_check.json}" --images "${2:-1000}" --train-steps "${3:-300}"
