#!/usr/bin/env bash
# Student as teacher, starting from the shipped teacher (faceocc-w05-v1; pipelines/train_teacher.sh retrains it):
#   1. exact synthetic labels of the train split, mixed into every student's training,
#   2. the student-as-teacher loop on LFW train+val photos (never the test split): label with the teacher ->
#      train a student with the consensus loss -> export -> measure on synthetic val with held-out occluders,
#   3. the quality table on the held-out test split: hull, classical, the shipped teacher, the best student.
# Usage: pipelines/student_teacher.sh [OUT=out] [WIDTH=0.5]
# --amp is bfloat16 on a CPU and float16 on a GPU. On a GPU: WIDTH=1.0.
set -euo pipefail
out=${1:-out}
width=${2:-0.5}
lfw=${SVC_LFW_PARTS:-$(cd "$(dirname "$0")/../../shared/data/lfw_parts" && pwd)}
mkdir -p "$out"

[ -d "$out/synth_train.zarr" ] || labelgen synth --split train --copies 4 --out "$out/synth_train.zarr"

# LFW train+val photos as an unlabelled corpus (symbolic links; the test split stays out).
mkdir -p "$out/lfw_trainval"
cat "$lfw/splits/train.txt" "$lfw/splits/val.txt" | while read -r stem; do
  ln -sf "$lfw/images/$stem.jpg" "$out/lfw_trainval/$stem.jpg"
done
svc-loop --source folder --root "$out/lfw_trainval" --teacher faceocc-w05-v1 \
  --extra-labels "$out/synth_train.zarr" --out "$out/loop" --rounds 2 --width "$width" --epochs 6 --amp

best=$(python -c "import json,sys; h=json.load(open(sys.argv[1])); print(max(h, key=lambda r: r['score'])['student'])" "$out/loop/history.json")
labelgen eval-labels --limit 300 --teacher faceocc-w05-v1 --teacher "$best" --json "$out/quality_test.json"
