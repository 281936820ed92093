#!/usr/bin/env bash
# The paper's Table 3 protocol on LFW Part Labels (docs/experiments.md, "The paper's Table 3 protocol"):
#
#   1. start: a FaceOccNet pre-trained on pseudo-labels, the consensus student of paper_experiment.sh
#      (PRETRAINED; if unset, that script's student under PAPER, trained there first with UNTIL=students if
#      it is missing). Its classes are background / face / occlusion; LFW's are background / face / hair, so
#      the occlusion output becomes the hair output, index for index;
#   2. fine-tuning on all 2,000 LFW Part Labels train + val faces at a flat learning rate of 1e-4 for EPOCHS
#      epochs, the last epoch kept (no validation: the paper fine-tunes "until convergence reaches saturation
#      on the training set"), once per row:
#        ce        pixel-wise cross-entropy, the baseline
#        consensus the structure-via-consensus loss, default reductions, BLOBS blobs
#        official  the consensus loss with the reductions of the authors' release (whole class masks as blobs)
#        ce-blob   the control: cross-entropy with every blob weighted equally (Eq. 5, no consensus term)
#      each without regularisation (--dropout 0 --no-flip) and with it ("+reg": Dropout2d 0.2 and flips);
#      ce and consensus once per seed of SEEDS, the others with the first seed;
#   3. every run scored on the 927 test faces at 128 and 250 px (pixel accuracy, IoU per class, mIoU, mean
#      recall, component error), and the table (python pipelines/paper_table3.py OUT) beside the paper's.
# Rows run in this order, so a budget that runs out leaves the later ones (the issue's priority: the CE vs
# consensus pair, then the control, then +reg): ce, consensus, official, ce-blob without +reg (first seed), ce
# and consensus without +reg for the further seeds, then the same with +reg.
#
# Every step is skipped when its output exists, and a stopped training continues from its last checkpoint, so
# rerunning the script resumes it; raising EPOCHS continues the runs to the new count (scored again then).
#
# Usage: pipelines/paper_table3.sh [OUT=out/table3]
# Settings (environment): PRETRAINED (checkpoint or run folder), PAPER=out/paper (paper_experiment.sh's OUT),
#   WIDTH=0.5 (the pre-trained model's), SEEDS="0 1", EPOCHS=10, BATCH=32 (the paper: 128), BLOBS=classes
#   (the default-mode consensus and ce-blob rows; 'components' for connected components), LR=1e-4,
#   PARALLEL=2 (trainings side by side, one torch thread each; 1: one at a time with torch's default threads).
# Smoke test (tests/pipelines/test_paper_table3.py): LIMIT=N scores the first N test faces, MAX_STEPS=N stops each training
#   after N steps; their numbers mean nothing.
set -euo pipefail
out=${1:-out/table3}
width=${WIDTH:-0.5}
seeds=${SEEDS:-0 1}
epochs=${EPOCHS:-10}
batch=${BATCH:-32}
blobs=${BLOBS:-classes}
lr=${LR:-1e-4}
parallel=${PARALLEL:-2}
max_steps=(); val_images=(); lfw_images=()
[ -n "${LIMIT:-}" ] && lfw_images=(--max-images "$LIMIT")
[ -n "${MAX_STEPS:-}" ] && max_steps=(--max-steps "$MAX_STEPS")
here=$(cd "$(dirname "$0")/.." && pwd)
lfw=${SVC_LFW_PARTS:-$here/../shared/data/lfw_parts}
first_seed=${seeds%% *}
mkdir -p "$out/runs" "$out/eval"
. "$here/pipelines/paper_steps.sh"  # log, train, result, in_parallel, finish_parallel, evaluate

# 1. the pre-trained start
pretrained=${PRETRAINED:-}
if [ -z "$pretrained" ]; then
  paper=${PAPER:-out/paper}
  student="student_consensus_s$first_seed"
  if [ ! -f "$paper/runs/$student/finished" ]; then
    log "pre-training: the consensus student of pipelines/paper_experiment.sh $paper"
    UNTIL=students LOSSES=consensus SEEDS=$first_seed "$here/pipelines/paper_experiment.sh" "$paper"
  fi
  pretrained=$(out=$paper result "$student")
fi
[ -e "$pretrained" ] || { echo "Error: no pre-trained checkpoint at $pretrained (set PRETRAINED)" >&2; exit 1; }
log "fine-tuning from $pretrained"

# 2. fine-tuning, one run per row, seed and regularisation
loss_options() {  # loss_options ROW: the svc-train options of a row's loss
  case $1 in
    ce) echo "--loss ce" ;;
    consensus) echo "--loss consensus --consensus-mode default --blobs $blobs" ;;
    official) echo "--loss consensus --consensus-mode official --blobs classes" ;;
    ce-blob) echo "--loss ce-blob --blobs $blobs" ;;
  esac
}
runs=()  # "NAME ROW SEED REG", in the order they train
for reg in plain reg; do
  for seed in $seeds; do
    for row in ce consensus official ce-blob; do
      case "$seed $row" in "$first_seed "* | *" ce" | *" consensus") ;; *) continue ;; esac
      runs+=("${row}_${reg}_s$seed $row $seed $reg")
    done
  done
done
for spec in "${runs[@]}"; do
  read -r name row seed reg <<< "$spec"
  regularisation=(--dropout 0 --no-flip)
  [ "$reg" = reg ] && regularisation=(--dropout 0.2 --flip)
  read -ra loss <<< "$(loss_options "$row")"
  in_parallel train "$name" "$epochs" --lfw-parts --lfw-root "$lfw" --lfw-split train+val \
    --init-weights "$pretrained" --lr "$lr" --schedule flat --select last --seed "$seed" \
    "${regularisation[@]}" "${loss[@]}"
done
finish_parallel

# 3. scores on the test split, then the table
for spec in "${runs[@]}"; do
  read -r name _ <<< "$spec"
  evaluate "$out/eval/${name}_e${epochs}_test.json" "$(result "$name")" --lfw-root "$lfw" "${lfw_images[@]}"
done
python "$here/pipelines/paper_table3.py" "$out"
