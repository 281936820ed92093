#!/usr/bin/env bash
# Label a corpus on an existing Dask cluster.
#
# 1. On the scheduler host:            dask scheduler --port 8786
# 2. On each worker host (bare metal): dask worker tcp://SCHEDULER:8786 --nworkers 8 --nthreads 1
#    or with the Docker image:         docker run --rm -v /data:/data -v /out:/out --entrypoint dask \
#                                        structure-via-consensus worker tcp://SCHEDULER:8786 --nworkers 8 --nthreads 1
#    Workers must see the corpus and the store at the same paths as the driver (shared filesystem).
# 3. On the driver (this script):
# Usage: pipelines/distributed.sh tcp://SCHEDULER:8786 SOURCE ROOT OUT
set -euo pipefail
scheduler=${1:?scheduler address, e.g. tcp://10.0.0.1:8786}
source_name=${2:?source}
root=${3:?corpus root (same path on every worker)}
out=${4:?output store (on a shared filesystem)}
labelgen run --scheduler "$scheduler" --source "$source_name" --root "$root" --out "$out"
labelgen stats "$out"
