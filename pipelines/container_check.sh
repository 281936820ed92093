#!/usr/bin/env bash
# Builds the Dockerfile with buildah and labels the embedded sample inside the image.
#
#   pipelines/container_check.sh            # as root, with: apt-get install -y buildah debootstrap
#
# No Docker engine is needed (CI has none):
#  1. The base image stands in for the Dockerfile's FROM (python:3.11-slim, which is Debian bookworm
#     with Python 3.11): Debian bookworm made with debootstrap, Python 3.11 in a venv on PATH, tagged
#     with the FROM name. It is cached as an OCI archive in $SVC_CONTAINER_CACHE (default
#     ~/.cache/structure-via-consensus/container), so a rerun skips debootstrap.
#  2. buildah builds the Dockerfile (chroot isolation, vfs storage in a temporary folder). The host's
#     pip settings (index URLs, find-links folders, certificate bundle, constraints) reach the build
#     only as bind mounts of that build: the image holds none of them, which step 3 checks.
#  3. Inside the image: its default command, `labelgen run --source sample` (every image must get its
#     expected status: ok, and no_face for the photo without a face), `labelgen stats`, `svc-train --help`.
#
# Exits non-zero on any failure, removes its storage (about 5 GB) on exit, and ends with a timing line.
# Environment: DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR (the apt mirrors of the base image),
# SVC_CONTAINER_CACHE (where the base image is kept), SVC_CONTAINER_STORAGE (where the storage goes;
# by default /dev/shm when memory has room for it, else $TMPDIR or /var/tmp), TORCH_INDEX (passed to
# the build as the Dockerfile's build argument).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CACHE=${SVC_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/structure-via-consensus/container}
BASE=$(awk 'toupper($1) == "FROM" {print $2; exit}' Dockerfile)
IMAGE=localhost/structure-via-consensus:check

for tool in buildah debootstrap; do
    command -v "$tool" >/dev/null || { echo "Error: $tool is missing; apt-get install -y buildah debootstrap" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "Error: run as root (buildah's chroot isolation and debootstrap need it)" >&2; exit 2; }

storage_parent() {  # where the storage goes: vfs writes whole copies of the image and deletes them after,
    # so memory is the place where there is room (on a busy disk, the deleting alone took 5 minutes)
    local shm_free_kib mem_free_kib
    shm_free_kib=$(df --output=avail -k /dev/shm 2>/dev/null | tail -1 || echo 0)
    mem_free_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    if [ -n "${SVC_CONTAINER_STORAGE:-}" ]; then
        echo "$SVC_CONTAINER_STORAGE"
    elif [ "${shm_free_kib:-0}" -gt $((10 << 20)) ] && [ "${mem_free_kib:-0}" -gt $((16 << 20)) ]; then
        echo /dev/shm
    else
        echo "${TMPDIR:-/var/tmp}"
    fi
}

WORK=$(mktemp -d "$(storage_parent)/container_check.XXXXXX")
cleanup() {  # nothing is mounted outside a buildah command here, so the storage is plain files
    rm -rf "$WORK"
}
trap cleanup EXIT

bah() {  # buildah on this check's own storage, so nothing is left in /var/lib/containers
    buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs "$@"
}

timings=() last=$SECONDS
took() {  # $1: what just ended; its seconds go into the last line
    timings+=("$1 $((SECONDS - last)) s")
    last=$SECONDS
}

make_base_archive() {  # $1: the OCI archive to write
    local rootfs="$WORK/rootfs" ctr
    debootstrap --variant=minbase --include=ca-certificates,python3,python3-venv \
        bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log" >&2; echo "Error: debootstrap failed (log above)" >&2; return 1; }
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb $DEBIAN_SECURITY_MIRROR bookworm-security main
EOF
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    ctr=$(bah from scratch)
    tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . \
        | tar -C "$(bah mount "$ctr")" --numeric-owner -xf -
    bah umount "$ctr" >/dev/null
    rm -rf "$rootfs"
    bah run --isolation chroot "$ctr" -- python3 -m venv /opt/python
    bah config --env PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd python3 "$ctr"
    bah commit --quiet "$ctr" "$BASE" >/dev/null
    bah rm "$ctr" >/dev/null
    mkdir -p "$(dirname "$1")"
    bah push --quiet "$BASE" "oci-archive:$1.partial" && mv "$1.partial" "$1"
}

in_image() {  # $1: a container of the image; the rest: the command, with /out bound to $WORK/out
    local ctr=$1
    shift
    bah run --isolation chroot --volume "$WORK/out:/out" "$ctr" -- "$@"
}

# -- 1. the base image ---------------------------------------------------------------------------------
archive="$CACHE/bookworm-python3.11-venv.oci.tar"
if [ -f "$archive" ]; then
    echo "== base image $BASE from the cache $archive"
    bah pull --quiet "oci-archive:$archive" >"$WORK/base.id"
    bah tag "$(cat "$WORK/base.id")" "$BASE"
else
    echo "== base image $BASE: debootstrap bookworm, Python 3.11 in a venv (cached in $archive)"
    make_base_archive "$archive"
fi
took "base image"

# -- 2. the build ----------------------------------------------------------------------------------------
echo "== buildah build of the Dockerfile"
# The build sees $WORK/pip as /etc/xdg/pip (a pip.conf pip reads), with each local path the settings name
# bound inside it. Their mount points are made here, in $WORK/pip, so the image gets only an empty folder.
mkdir "$WORK/pip"
python3 -m pip config list | python3 pipelines/pip_settings.py "$WORK/pip/pip.conf" /etc/xdg/pip >"$WORK/pip.paths"
mapfile -t pip_paths <"$WORK/pip.paths"
pip_volumes=(--volume "$WORK/pip:/etc/xdg/pip:ro")
for path in "${pip_paths[@]}"; do
    if [ -d "$path" ]; then mkdir -p "$WORK/pip/host$path"; else mkdir -p "$WORK/pip/host${path%/*}" && touch "$WORK/pip/host$path"; fi
    pip_volumes+=(--volume "$path:/etc/xdg/pip/host$path:ro")
done
echo "the host's pip settings, for the build only: $(grep -c = "$WORK/pip/pip.conf") in /etc/xdg/pip/pip.conf; ${pip_paths[*]:-no local paths} under /etc/xdg/pip/host"
bah build --isolation chroot --pull=never --layers=false -f Dockerfile -t "$IMAGE" "${pip_volumes[@]}" \
    ${TORCH_INDEX:+--build-arg "TORCH_INDEX=$TORCH_INDEX"} . \
    >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; echo "Error: buildah build failed (log above)" >&2; exit 1; }
took build

# -- 3. inside the image ---------------------------------------------------------------------------------
mkdir -p "$WORK/out"
ctr=$(bah from --pull=never "$IMAGE")

echo "== the build's pip settings are not in the image"
leftovers=$(in_image "$ctr" sh -c 'find /etc/pip.conf /etc/xdg/pip ! -type d 2>/dev/null | head -5')
[ -z "$leftovers" ] || { echo "Error: the image holds the build's pip settings: $leftovers" >&2; exit 1; }

echo "== the image's default command"
bah inspect --type image "$IMAGE" | python3 -c '
import json, sys
config = json.load(sys.stdin)["OCIv1"]["config"]
print(end="".join(word + "\0" for word in (config.get("Entrypoint") or []) + (config.get("Cmd") or [])))' \
    >"$WORK/default_command"
mapfile -d '' -t default_command <"$WORK/default_command"
echo "default command: ${default_command[*]}"
usage=$(in_image "$ctr" "${default_command[@]}")
[[ $usage == *Usage:* ]] || { echo "Error: the default command printed no usage: $usage" >&2; exit 1; }

echo "== labelgen run --source sample"
in_image "$ctr" \
    labelgen run --source sample --out /out/sample.zarr
in_image "$ctr" python -c '
import sys
import zarr
from labelgen.sample import NO_FACE_KEY, sample_keys
from labelgen.status import Status

group = zarr.open_group("/out/sample.zarr", mode="r")
got = {str(key): Status(int(code)).label for key, code in zip(group["key"][:], group["status"][:])}
expected = {key: "no_face" if key == NO_FACE_KEY else "ok" for key in sample_keys()}
wrong = [f"{key}: {got.get(key)} (expected {status})" for key, status in expected.items() if got.get(key) != status]
if wrong or len(got) != len(expected):
    sys.exit("Error: sample statuses differ from the expected ones:\n  " + "\n  ".join(wrong or [f"{len(got)} rows"]))
print(f"all {len(expected)} sample images have their expected status")
'

echo "== labelgen stats, svc-train --help"
in_image "$ctr" \
    labelgen stats /out/sample.zarr
in_image "$ctr" \
    svc-train --help >/dev/null

took "runs in the image"
echo "== removing $WORK"
cleanup
trap - EXIT
took clean-up
echo "container_check.sh: passed in $((SECONDS - started)) s ($(IFS=,; echo "${timings[*]}" | sed 's/,/, /g'))"
