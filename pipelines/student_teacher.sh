#!/usr/bin/env bash
# The full teacher recipe on LFW Part Labels (CPU-sized; see README "Teachers and label quality"):
#   1. a supervised teacher: slim FaceOccNet trained on LFW Part Labels' train faces with fresh synthetic
#      occluders on every draw (training occluder families), validated on the synthetic val split,
#      then two more phases at lr 3e-4 that add smooth skin-toned blobs to the occluders (the best teacher
#      measured; README), exported to TorchScript + ONNX with flip test-time averaging built in,
#   2. exact synthetic labels of the train split, mixed into every student's training,
#   3. the student-as-teacher loop on LFW train+val photos (never the test split),
#   4. the quality table on the held-out test split: hull, classical, supervised teacher, best student.
# Usage: pipelines/student_teacher.sh [OUT=out] [WIDTH=0.5] [EPOCHS=60]
# --amp is bfloat16 on a CPU (about 2x faster with AMX / AVX-512 BF16) and float16 on a GPU.
# For the full-width model on a GPU: WIDTH=1.0 EPOCHS=100 (add --batch-size 128 below).
set -euo pipefail
out=${1:-out}
width=${2:-0.5}
epochs=${3:-60}
lfw=$(cd "${SVC_LFW_PARTS:-$(dirname "$0")/../../shared/data/lfw_parts}" && pwd)
mkdir -p "$out"

# Rerunning the script continues a killed teacher run where it stopped.
resume=()
[ -f "$out/runs/teacher/checkpoints/last.ckpt" ] && resume=(--resume "$out/runs/teacher")
svc-train --lfw-parts --occlude --width "$width" --batch-size 32 --epochs "$epochs" --lr-patience 3 \
  --num-workers 1 --amp --out "$out/runs/teacher" "${resume[@]}"
# Two warm restarts at lr 3e-4 with the skin family added, each from the previous best checkpoint.
previous=teacher
for phase in teacher_skin teacher_skin2; do
  resume=()
  [ -f "$out/runs/$phase/checkpoints/last.ckpt" ] && resume=(--resume "$out/runs/$phase")
  svc-train --lfw-parts --occlude --occluder-families objects,polygons,scarves,skin \
    --init-weights "$out/runs/$previous/checkpoints/best.ckpt" --lr 3e-4 --width "$width" --batch-size 32 \
    --epochs 12 --lr-patience 2 --num-workers 1 --amp --out "$out/runs/$phase" "${resume[@]}"
  previous=$phase
done
svc-export "$out/runs/$previous/checkpoints/best.ckpt" --out-dir "$out/teacher" --name teacher --flip-average
[ -d "$out/synth_train.zarr" ] || labelgen synth --split train --copies 4 --out "$out/synth_train.zarr"

# LFW train+val photos as an unlabelled corpus (symbolic links; the test split stays out).
mkdir -p "$out/lfw_trainval"
cat "$lfw/splits/train.txt" "$lfw/splits/val.txt" | while read -r stem; do
  ln -sf "$lfw/images/$stem.jpg" "$out/lfw_trainval/$stem.jpg"
done
svc-loop --source folder --root "$out/lfw_trainval" --teacher "$out/teacher/teacher.pt" \
  --extra-labels "$out/synth_train.zarr" --out "$out/loop" --rounds 2 --width "$width" --epochs 6 --amp

best=$(python -c "import json,sys; h=json.load(open(sys.argv[1])); print(max(h, key=lambda r: r['score'])['student'])" "$out/loop/history.json")
labelgen eval-labels --limit 300 --teacher "$out/teacher/teacher.pt" --teacher "$best" --json "$out/quality_test.json"
