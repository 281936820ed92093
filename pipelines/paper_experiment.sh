#!/usr/bin/env bash
# The paper's experiment at the scale of one CPU machine (docs/experiments.md reports its numbers):
#
#   1. the pseudo-label corpus: LFW Part Labels train+val photos (2,000) plus occluded copies of them made with
#      the TRAINING occluder families (labelgen synth --photos: photos only, the exact labels are not used),
#      labelled by `labelgen run` with the shipped default teacher. The test split never enters it;
#   2. students: FaceOccNet trained on that store with the consensus loss and with cross-entropy (same width,
#      schedule, epochs and seed), validated on exact labels of the synthetic val split (training families;
#      drawn with another seed than the corpus's occluded copies);
#   3. the teacher and every student scored on exact labels of the synthetic test split (held-out families
#      hands, glasses, props; whole crop and face region), each family alone, and one picture of 16 test faces:
#      truth | teacher | consensus student | CE student; then each of them as the teacher of the labelling chain
#      (labelgen eval-labels, first 300 test faces), where the hull decides what the face region is for all;
#   4. LFW Part Labels parsing (background / face / hair): consensus and cross-entropy, scored on the test split;
#   5. the tables (python pipelines/paper_tables.py OUT), as in docs/experiments.md.
#
# Every step is skipped when its output exists, and a stopped training continues from its last checkpoint, so
# rerunning the script resumes it. Raising an EPOCHS setting and rerunning continues those runs to the new count.
# Every training runs without photometric augmentation (--photometric 0, in pipelines/paper_steps.sh), as the
# numbers of docs/experiments.md were made. UNTIL=students stops after step 2 (pipelines/paper_table3.sh
# fine-tunes the consensus student).
#
# Usage: pipelines/paper_experiment.sh [OUT=out/paper]
# Settings (environment): WIDTH=0.5 (1.0 on a GPU), SEEDS="0" (e.g. "0 1"), COPIES=3 (occluded copies per photo),
#   STUDENT_EPOCHS=6, LFW_EPOCHS=70 (LFW_EPOCHS_CE / LFW_EPOCHS_CONSENSUS for one loss), LOSSES="consensus ce",
#   WORKERS=2 (labelling processes), BATCH=32,
#   PARALLEL=2 (trainings run side by side, one torch thread each: on a 2-core CPU this keeps both cores busy
#   without two runs' threads contending; PARALLEL=1 trains one at a time with torch's default threads).
# Smoke test (tests/pipelines/test_paper_experiment.py): LIMIT=N takes the first N faces of each split and MAX_STEPS=N stops
#   each training after N steps; their numbers mean nothing.
set -euo pipefail
out=${1:-out/paper}
width=${WIDTH:-0.5}
seeds=${SEEDS:-0}
copies=${COPIES:-3}
student_epochs=${STUDENT_EPOCHS:-6}
lfw_epochs=${LFW_EPOCHS:-70}
losses=${LOSSES:-consensus ce}
workers=${WORKERS:-2}
parallel=${PARALLEL:-2}
batch=${BATCH:-32}
limit=(); max_steps=(); val_images=(); lfw_images=()
if [ -n "${LIMIT:-}" ]; then
  limit=(--limit "$LIMIT"); val_images=(--val-max-images "$LIMIT"); lfw_images=(--max-images "$LIMIT")
fi
[ -n "${MAX_STEPS:-}" ] && max_steps=(--max-steps "$MAX_STEPS")
here=$(cd "$(dirname "$0")/.." && pwd)
lfw=${SVC_LFW_PARTS:-$here/../shared/data/lfw_parts}
# v1, not the default teacher: docs/experiments.md's numbers were made with it (TEACHER=file to change).
teacher=${TEACHER:-$here/labelgen/teachers/faceocc-w05-v1.onnx}
mkdir -p "$out/runs" "$out/eval"
. "$here/pipelines/paper_steps.sh"  # log, train, result, in_parallel, finish_parallel, evaluate

# 1. the pseudo-label corpus
if [ ! -f "$out/corpus.done" ]; then
  log "corpus: LFW train+val photos and $copies occluded copies of each"
  mkdir -p "$out/corpus"
  for split in train val; do head -n "${LIMIT:-100000}" "$lfw/splits/$split.txt"; done | while read -r stem; do
    ln -sf "$lfw/images/$stem.jpg" "$out/corpus/$stem.jpg"
  done
  for split in train val; do
    labelgen synth --split "$split" --copies "$copies" --seed 1 --photos --root "$lfw" --out "$out/corpus" \
      "${limit[@]}"
  done
  touch "$out/corpus.done"
fi
start=$SECONDS
labelgen run --source folder --root "$out/corpus" --out "$out/pseudo.zarr" --workers "$workers" --teacher "$teacher"
log "labelling: $(( SECONDS - start )) s (this invocation)"
labelgen stats "$out/pseudo.zarr"
[ -f "$out/pseudo_labels.png" ] || labelgen show "$out/pseudo.zarr" --n 24 --out "$out/pseudo_labels.png"

# exact-label stores: val decides, test (held-out families) only reports
[ -d "$out/synth_val.zarr" ] || labelgen synth --split val --root "$lfw" --out "$out/synth_val.zarr" "${limit[@]}"
[ -d "$out/synth_test.zarr" ] || labelgen synth --split test --root "$lfw" --out "$out/synth_test.zarr" "${limit[@]}"
for family in hands glasses props; do
  [ -d "$out/synth_test_$family.zarr" ] || labelgen synth --split test --families "$family" --root "$lfw" \
    --out "$out/synth_test_$family.zarr" "${limit[@]}"
done

# 2. students
for seed in $seeds; do
  for loss in $losses; do
    in_parallel train "student_${loss}_s$seed" "$student_epochs" --labels "$out/pseudo.zarr" \
      --val-labels "$out/synth_val.zarr" --loss "$loss" --lr-patience 2 --seed "$seed"
  done
done
finish_parallel
if [ "${UNTIL:-}" = students ]; then log "stopping after the students (UNTIL=students)"; exit 0; fi

# 3. teacher and students on exact labels; the teacher file averages flips inside, so the students do too
score() {  # score NAME MODEL [svc-eval options...]
  local name=$1 model=$2
  shift 2
  evaluate "$out/eval/${name}_synth_test.json" "$model" --model-classes occlusion --labels "$out/synth_test.zarr" "$@"
  for family in hands glasses props; do
    evaluate "$out/eval/${name}_synth_test_$family.json" "$model" --model-classes occlusion \
      --labels "$out/synth_test_$family.zarr" "$@"
  done
}
score teacher "$teacher"
for seed in $seeds; do
  for loss in $losses; do
    score "student_${loss}_s$seed" "$(result "student_${loss}_s$seed")" --flip-average
  done
done
first_seed=${seeds%% *}
# the picture needs both students (a run of the script with LOSSES=ce alone skips it)
picture=no
case " $losses " in *" consensus "*) case " $losses " in *" ce "*) picture=yes ;; esac ;; esac
[ "$picture" = no ] || [ -f "$out/students_vs_teacher.png" ] || python "$here/pipelines/paper_picture.py" --labels "$out/synth_test.zarr" \
  --model "teacher=$teacher" \
  --model "consensus=$(result "student_consensus_s$first_seed")" \
  --model "CE=$(result "student_ce_s$first_seed")" --out "$out/students_vs_teacher.png"

if [ "$picture" = yes ] && [ ! -f "$out/eval/chain_test.json" ]; then
  for loss in consensus ce; do
    [ -f "$out/export/student_$loss.onnx" ] || svc-export "$(result "student_${loss}_s$first_seed")" \
      --out-dir "$out/export" --name "student_$loss" --format onnx --flip-average
  done
  labelgen eval-labels --split test --limit "${LIMIT:-300}" --root "$lfw" --teacher "$teacher" \
    --teacher "$out/export/student_consensus.onnx" --teacher "$out/export/student_ce.onnx" \
    --json "$out/eval/chain_test.json"
fi

# 4. LFW Part Labels parsing
lfw_epochs_of() {  # lfw_epochs_of LOSS: LFW_EPOCHS_<LOSS> if set, else LFW_EPOCHS
  local name="LFW_EPOCHS_${1^^}"
  echo "${!name:-$lfw_epochs}"
}
for loss in $losses; do
  in_parallel train "lfw_${loss}_s$first_seed" "$(lfw_epochs_of "$loss")" --lfw-parts --lfw-root "$lfw" \
    --loss "$loss" --lr-patience 3 --seed "$first_seed"
done
finish_parallel
for loss in $losses; do
  evaluate "$out/eval/lfw_${loss}_s${first_seed}_e$(lfw_epochs_of "$loss")_test.json" \
    "$(result "lfw_${loss}_s$first_seed")" --lfw-root "$lfw" "${lfw_images[@]}"
done

# 5. the tables
python "$here/pipelines/paper_tables.py" "$out"
