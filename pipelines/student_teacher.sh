#!/usr/bin/env bash
# The full teacher recipe on LFW Part Labels (CPU-sized; see README "Teachers and label quality"):
#   1. synthetic occlusions with exact labels on the train and val splits (training occluder families),
#   2. a supervised teacher: slim FaceOccNet trained on them, exported to TorchScript + ONNX,
#   3. the student-as-teacher loop on LFW train+val photos (never the test split),
#   4. the quality table on the held-out test split: hull, classical, supervised teacher, best student.
# Usage: pipelines/student_teacher.sh [OUT=out] [WIDTH=0.25] [EPOCHS=6]
# For the full-width model on a GPU: WIDTH=1.0 EPOCHS=30 (batch 128 is then sensible).
set -euo pipefail
out=${1:-out}
width=${2:-0.25}
epochs=${3:-6}
lfw=$(cd "$(dirname "$0")/../../shared/data/lfw_parts" && pwd)
mkdir -p "$out"

labelgen synth --split train --copies 4 --out "$out/synth_train.zarr"
labelgen synth --split val --copies 1 --out "$out/synth_val.zarr"
svc-train --labels "$out/synth_train.zarr" --val-labels "$out/synth_val.zarr" --width "$width" \
  --batch-size 32 --epochs "$epochs" --lr-patience 1 --num-workers 1 --out "$out/runs/teacher"
svc-export "$out/runs/teacher/checkpoints/best.ckpt" --out-dir "$out/teacher" --name teacher

# LFW train+val photos as an unlabelled corpus (symbolic links; the test split stays out).
mkdir -p "$out/lfw_trainval"
cat "$lfw/splits/train.txt" "$lfw/splits/val.txt" | while read -r stem; do
  ln -sf "$lfw/images/$stem.jpg" "$out/lfw_trainval/$stem.jpg"
done
svc-loop --source folder --root "$out/lfw_trainval" --teacher "$out/teacher/teacher.pt" \
  --out "$out/loop" --rounds 2 --width "$width" --epochs 4

best=$(python -c "import json,sys; h=json.load(open(sys.argv[1])); print(max(h, key=lambda r: r['score'])['student'])" "$out/loop/history.json")
labelgen eval-labels --limit 300 --teacher "$out/teacher/teacher.pt" --teacher "$best" --json "$out/quality_test.json"
