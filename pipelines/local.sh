#!/usr/bin/env bash
# Label a corpus on this machine with a local Dask process cluster.
# Usage: pipelines/local.sh SOURCE ROOT OUT [WORKERS]
#   pipelines/local.sh casia /data/CASIA-WebFace casia.zarr 8
# WORKERS: Dask worker processes (default: labelgen's, one per core, as many as get 2 GiB of memory each).
# Re-run the same command to resume after an interruption.
set -euo pipefail
source_name=${1:?source (casia, vggface2, lfw, folder, msceleb-tsv, insightface-rec, sample)}
root=${2:?corpus root}
out=${3:?output store}
workers=()
[ -n "${4:-}" ] && workers=(--workers "$4")
labelgen run --source "$source_name" --root "$root" --out "$out" "${workers[@]}" --threads-per-worker 1
labelgen stats "$out"
labelgen show "$out" --occluded --n 64 --out "${out%.zarr}_occluded.png"
