#!/usr/bin/env bash
# Measures a teacher file the way its model card (docs/teacher.md) reports it; every number of the card
# comes from one of these commands. Outputs (JSON, the worst-images picture) go to OUT.
#
#   1. the teacher's own output against exact labels of synthetic occlusions on LFW Part Labels faces:
#      the synthetic test split (held-out occluder families hands, glasses, props; whole crop and face region),
#      each held-out family alone, and the synthetic val split (training families: the split that decides
#      between variants of the file, e.g. int8);
#   2. clean LFW Part Labels test faces (face vs rest: LFW's third class is hair, the teacher's occlusion);
#   3. through the whole labelling chain: synthetic val faces with held-out families (the numbers the
#      quality test guards) and the first 300 synthetic test faces beside the hull and classical teachers;
#   4. the 16 synthetic test images it gets most wrong, as a picture.
#
# Usage: pipelines/evaluate_teacher.sh [MODEL=labelgen/teachers/faceocc-w05-v1.onnx] [OUT=out/teacher_eval]
set -euo pipefail
model=${1:-labelgen/teachers/faceocc-w05-v1.onnx}
out=${2:-out/teacher_eval}
mkdir -p "$out"

[ -d "$out/synth_test.zarr" ] || labelgen synth --split test --out "$out/synth_test.zarr"
[ -d "$out/synth_val.zarr" ] || labelgen synth --split val --out "$out/synth_val.zarr"
for family in hands glasses props; do
  [ -d "$out/synth_test_$family.zarr" ] || labelgen synth --split test --families "$family" \
    --out "$out/synth_test_$family.zarr"
done

svc-eval "$model" --model-classes occlusion --labels "$out/synth_test.zarr" --json "$out/synth_test.json" \
  --worst-grid "$out/worst.png"
for family in hands glasses props; do
  svc-eval "$model" --model-classes occlusion --labels "$out/synth_test_$family.zarr" \
    --json "$out/synth_test_$family.json"
done
svc-eval "$model" --model-classes occlusion --labels "$out/synth_val.zarr" --json "$out/synth_val.json"
svc-eval "$model" --model-classes occlusion --json "$out/lfw_test_clean.json"

labelgen eval-labels --split val --limit 100 --families hands,glasses,props --teacher "$model" \
  --json "$out/chain_val_guard.json"
labelgen eval-labels --split test --limit 300 --teacher "$model" --json "$out/chain_test.json" \
  --grid "$out/chain_test.png"
