#!/usr/bin/env bash
# Label a corpus with a SLURM job array and no Dask scheduler: N independent jobs share one store.
#
# Each array task K labels the shards i with i % N == K (a shard is written by exactly one task,
# so the tasks never touch the same files). A killed or failed task is simply resubmitted.
#
# Usage: pipelines/slurm_array.sh SOURCE ROOT OUT N [sbatch options...]
#   pipelines/slurm_array.sh casia /data/CASIA-WebFace /scratch/casia.zarr 50 --partition=cpu --time=04:00:00
set -euo pipefail
source_name=${1:?source}
root=${2:?corpus root (visible from every node)}
out=${3:?output store (on a shared filesystem)}
parts=${4:?number of array tasks}
shift 4

common=(--source "$source_name" --root "$root" --out "$out")
# 1. Scan the corpus and create the store once.
labelgen run "${common[@]}" --prepare-only
# 2. The array: each task runs a local Dask cluster over its part of the shards.
array_job=$(sbatch --parsable --array=0-$((parts - 1)) --cpus-per-task=8 "$@" \
  --wrap "labelgen run ${common[*]} --workers 8 --part \${SLURM_ARRAY_TASK_ID}/$parts")
# 3. After all parts: a run that finds nothing left to do consolidates the store.
sbatch --dependency=afterany:"$array_job" "$@" --wrap "labelgen run ${common[*]} --serial && labelgen stats $out"
