#!/usr/bin/env bash
# Measures teacher files the way the model card (docs/teacher.md) reports them; every number of the card comes
# from one of these commands. For each MODEL, with --split test (the default, the card's final numbers):
#
#   1. the teacher's own output against exact labels of synthetic occlusions on LFW Part Labels faces:
#      the synthetic test split (held-out occluder families hands, glasses, props; whole crop and face region),
#      each held-out family alone, and the synthetic val split (training families);
#   2. clean LFW Part Labels test faces (face vs rest: LFW's third class is hair, the teacher's occlusion);
#   3. through the whole labelling chain: synthetic val faces with held-out families (the numbers the
#      quality test guards);
#   4. under photometric variants (labelgen/eval/variants.py: greyscale, jpeg, low-res, colour-cast, dark,
#      bright): the synthetic test split scored directly (labelgen synth --variant, then svc-eval) and through
#      the chain (labelgen eval-labels --variant, first CHAIN_LIMIT faces; its clean run is the card's chain
#      row and draws chain.png), printed as one table per teacher: clean, each variant, the variants' mean;
#   5. the 16 synthetic test images it gets most wrong, as a picture (worst.png).
#
# With --split val only step 4 runs, on the synthetic val split (training families): the split for decisions
# (which teacher, which export); nothing reads the test split.
#
# Each command's printed table lands beside its JSON report (.txt); the console gets the robustness tables.
# Every output is skipped when it exists (stores are written under a .partial name and renamed when complete),
# so a rerun resumes and a second teacher reuses the stores. Outputs: OUT/stores/ (synthetic stores),
# OUT/<model file stem>/ (JSON reports, tables, pictures; <split>/ holds step 4's files and table.txt).
#
# Usage: pipelines/evaluate_teacher.sh [--split test|val] [--out OUT=out/teacher_eval] [MODEL ...]
#   MODEL: teacher files, .onnx or TorchScript .pt (default: the default shipped teacher's file, 'labelgen teachers').
# Environment: CHAIN_LIMIT (faces through the chain in step 4; 300 on test, 100 on val);
#   LIMIT=N (only the first N faces everywhere: a smoke test, its numbers mean nothing).
set -euo pipefail
split=test
out=out/teacher_eval
models=()
while [ $# -gt 0 ]; do
  case $1 in
    --split) split=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "Error: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) models+=("$1"); shift ;;
  esac
done
[ ${#models[@]} -gt 0 ] || models=("$(python -c 'from labelgen.teachers import DEFAULT_TEACHER, shipped_teacher_file
print(shipped_teacher_file(DEFAULT_TEACHER))')")
case $split in
  test) chain_limit=${CHAIN_LIMIT:-300} ;;
  val) chain_limit=${CHAIN_LIMIT:-100} ;;
  *) echo "Error: --split is test or val, not '$split'" >&2; exit 2 ;;
esac
limit=(); lfw_images=(); guard_limit=100  # the quality guard's faces (labelgen/teachers/registry.json)
if [ -n "${LIMIT:-}" ]; then
  limit=(--limit "$LIMIT"); lfw_images=(--max-images "$LIMIT")
  [ "$chain_limit" -gt "$LIMIT" ] && chain_limit=$LIMIT
  [ "$guard_limit" -gt "$LIMIT" ] && guard_limit=$LIMIT
fi
variants="clean greyscale jpeg low-res colour-cast dark bright"
for model in "${models[@]}"; do
  [ -f "$model" ] || { echo "Error: model file not found: $model" >&2; exit 2; }
done
tags=$(for model in "${models[@]}"; do basename "${model%.*}"; done)
if [ "$(sort <<<"$tags" | uniq -d)" != "" ]; then
  echo "Error: two models share a file name ($(sort <<<"$tags" | uniq -d | head -1)); their outputs would mix" >&2
  exit 2
fi
mkdir -p "$out/stores"

store() {  # store NAME [labelgen synth options...]: write OUT/stores/NAME.zarr unless it is there, complete
  local final="$out/stores/$1.zarr"
  shift
  [ -d "$final" ] && return
  rm -rf "$final.partial"
  labelgen synth "$@" "${limit[@]}" --out "$final.partial" >/dev/null
  mv "$final.partial" "$final"
}

direct() {  # direct MODEL STORE JSON [svc-eval options...]: score MODEL's own output on STORE unless JSON exists
  local model=$1 name=$2 json=$3
  shift 3
  [ -f "$json" ] && return
  svc-eval "$model" --model-classes occlusion --labels "$out/stores/$name.zarr" --json "$json.partial" "$@" \
    >"${json%.json}.txt"
  mv "$json.partial" "$json"
}

chain() {  # chain MODEL JSON [eval-labels options...]: score the chain with MODEL unless JSON exists
  local model=$1 json=$2
  shift 2
  [ -f "$json" ] && return
  labelgen eval-labels --teacher "$model" --json "$json.partial" "$@" >"${json%.json}.txt"
  mv "$json.partial" "$json"
}

robustness() {  # robustness MODEL SPLIT: step 4 on SPLIT, then its table
  local model=$1 split=$2 here="$out/$(basename "${model%.*}")/$2" variant extra
  mkdir -p "$here"
  for variant in $variants; do
    store "${split}_$variant" --split "$split" --variant "$variant"
    extra=()
    [ "$split" = test ] && [ "$variant" = clean ] && extra=(--worst-grid "$here/../worst.png")
    direct "$model" "${split}_$variant" "$here/direct_$variant.json" "${extra[@]}"
    [ "$split" = test ] && [ "$variant" = clean ] && extra=(--grid "$here/../chain.png") || extra=()
    chain "$model" "$here/chain_$variant.json" --split "$split" --limit "$chain_limit" --variant "$variant" \
      "${extra[@]}"
  done
  python -m labelgen.eval.robustness "$here" --teacher "$model" --json "$here/table.json" \
    --title "$model on the synthetic $split split under photometric variants (chain: first $chain_limit faces)" \
    | tee "$here/table.txt"
}

for model in "${models[@]}"; do
  card="$out/$(basename "${model%.*}")"
  mkdir -p "$card/val"
  if [ "$split" = test ]; then
    for family in hands glasses props; do
      store "test_$family" --split test --families "$family"
      direct "$model" "test_$family" "$card/test_$family.json"
    done
    store val_clean --split val
    direct "$model" val_clean "$card/val/direct_clean.json"
    [ -f "$card/lfw_test_clean.json" ] || svc-eval "$model" --model-classes occlusion "${lfw_images[@]}" \
      --json "$card/lfw_test_clean.json" >"$card/lfw_test_clean.txt"
    chain "$model" "$card/chain_val_guard.json" --split val --limit "$guard_limit" --families hands,glasses,props
  fi
  robustness "$model" "$split"
done
