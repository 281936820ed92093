"""Peak memory of decoding and of labelling a large image, per pixel: where ``--max-pixels``'s default comes from.

Usage: python benchmarks/decode_memory.py [--side 6000] [--teacher NAME]

Writes one ``side x side`` photograph (the sample astronaut, upscaled) in
each format ``labelgen`` decodes, and measures in a fresh process per case
(peak resident memory is per process):

* decode: the peak resident memory that ``decode_image`` adds, per pixel;
* label: a labelling worker's memory (chain loaded, sample labelled: its
  resting size) and the peak that labelling the large JPEG adds, per pixel.

``labelgen.stages.decode.DEFAULT_MAX_PIXELS`` is worked out from these numbers.
``--dask-check`` then tries the worst case at that limit for real: an
uncompressed TIFF of exactly ``DEFAULT_MAX_PIXELS`` pixels labelled by the
chain on a one-worker local Dask cluster with a 2 GiB memory limit, and
reports whether the worker lived and its peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Peak resident memory from /proc (VmHWM, reset to the current size by clear_refs 5): ru_maxrss
# would include the parent's size at fork, which holds the large photo.
MEMORY = """
import json, sys
def resident(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
def reset_peak():
    with open("/proc/self/clear_refs", "w") as control:
        control.write("5")
"""

DECODE = MEMORY + """
from labelgen.stages.decode import decode_image
data = open(sys.argv[1], "rb").read()
reset_peak()
before = resident("VmRSS")
image = decode_image(data, max_pixels=1 << 40)
print(json.dumps({"added": resident("VmHWM") - before, "pixels": image.shape[0] * image.shape[1]}))
"""

LABEL = MEMORY + """
import distributed  # a Dask worker process holds it too
from labelgen.chain import ChainConfig, LabelChain
from labelgen.sample import sample_jpeg, sample_keys
data = open(sys.argv[1], "rb").read()
with LabelChain(ChainConfig(teacher=sys.argv[2], max_pixels=1 << 40)) as chain:
    for key in sample_keys()[:6]:
        chain.label_bytes(sample_jpeg(key), key)
    resting = resident("VmHWM")  # the worker's own peak while labelling ordinary photos
    reset_peak()
    before = resident("VmRSS")
    result = chain.label_bytes(data, "large")
    added = resident("VmHWM") - before
print(json.dumps({"resting": resting, "added": added, "status": result.status.label,
                  "pixels": result.image_shape[0] * result.image_shape[1]}))
"""


def large_photo(side: int):
    """The sample astronaut upscaled to ``side`` x ``side`` as a Pillow image."""
    from PIL import Image

    from labelgen.sample import sample_image

    return Image.fromarray(sample_image("astronaut/original.jpg")).resize((side, side), Image.Resampling.BILINEAR)


def write_formats(photo, folder: Path) -> dict[str, Path]:
    """The photo in every format and depth, plus a JPEG stored sideways with EXIF orientation 6."""
    import cv2
    import numpy as np
    from PIL import Image

    files = {}
    for name, fmt, options in [("jpeg", "JPEG", {"quality": 90}), ("png", "PNG", {"compress_level": 1}),
                               ("bmp", "BMP", {}), ("webp", "WEBP", {"quality": 90}), ("tiff", "TIFF", {}),
                               ("gif", "GIF", {})]:
        if fmt == "WEBP" and max(photo.size) > 16383:
            continue  # WebP's limit
        files[name] = folder / f"large.{name}"
        photo.save(files[name], format=fmt, **options)
    bgr = cv2.cvtColor(np.asarray(photo), cv2.COLOR_RGB2BGR)
    for name, image, extension in [("png, RGBA", cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), ".png"),
                                   ("png, 16-bit", bgr.astype(np.uint16) * 257, ".png"),
                                   ("tiff, 16-bit", bgr.astype(np.uint16) * 257, ".tiff")]:
        files[name] = folder / f"large-{name.split()[-1]}{extension}"
        cv2.imwrite(str(files[name]), image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned left: the decoder turns it right
    files["jpeg, EXIF 6"] = folder / "large-exif6.jpg"
    photo.transpose(Image.Transpose.ROTATE_90).save(files["jpeg, EXIF 6"], format="JPEG", quality=90,
                                                    exif=exif.tobytes())
    return files


def label_in_a_worker(path: str) -> tuple[str, float]:
    """Label the file at ``path`` as a labelling worker does; its status and this process's peak MiB."""
    from labelgen.chain import LabelChain
    from labelgen.sample import sample_jpeg, sample_keys

    with LabelChain() as chain:
        for key in sample_keys()[:6]:
            chain.label_bytes(sample_jpeg(key), key)
        status = chain.label_bytes(open(path, "rb").read(), "large").status.label
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    return status, peak / 1024


def dask_check(folder: Path) -> None:
    """The worst case at the default limit, on a Dask worker with 2 GiB (see the module docstring)."""
    from distributed import Client, LocalCluster

    from labelgen.stages.decode import DEFAULT_MAX_PIXELS

    side = int(DEFAULT_MAX_PIXELS ** 0.5)
    path = folder / "worst.tiff"
    large_photo(side).save(path, format="TIFF")
    with LocalCluster(n_workers=1, threads_per_worker=1, memory_limit="2GiB", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        status, peak = client.submit(label_in_a_worker, str(path), pure=False).result()
    print(f"\nDask worker with a 2 GiB limit (killed at 95% = 1946 MiB), uncompressed TIFF {side} x {side} "
          f"({path.stat().st_size / 2 ** 20:.0f} MiB): {status}, worker peak {peak:.0f} MiB")


def measure(script: str, *arguments: str) -> dict:
    output = subprocess.run([sys.executable, "-c", script, *arguments], cwd=REPO,
                            env={"OMP_NUM_THREADS": "1", **os.environ},
                            capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=6000, help="side of the large test image, pixels")
    parser.add_argument("--teacher", default=None, help="the chain's teacher (default: the shipped default)")
    parser.add_argument("--dask-check", action="store_true", help="also label the worst case at the default "
                        "limit on a Dask worker with 2 GiB")
    args = parser.parse_args()
    from labelgen.teachers import DEFAULT_TEACHER

    mib = 2 ** 20
    with tempfile.TemporaryDirectory() as folder:
        files = write_formats(large_photo(args.side), Path(folder))
        print(f"decode_image, {args.side} x {args.side} = {args.side ** 2 / 1e6:.0f} Mpx, peak resident memory added")
        print(f"{'format':>14}{'file MiB':>10}{'added MiB':>11}{'bytes/px':>10}{'with file':>11}")
        for name, path in files.items():
            row, size = measure(DECODE, str(path)), path.stat().st_size
            print(f"{name:>14}{size / mib:>10.1f}{row['added'] / mib:>11.0f}"
                  f"{row['added'] / row['pixels']:>10.2f}{(row['added'] + size) / row['pixels']:>11.2f}")
        teacher = args.teacher or DEFAULT_TEACHER
        row = measure(LABEL, str(files["jpeg"]), teacher)
        print(f"\nlabelling worker (teacher {teacher}, one thread): resting {row['resting'] / mib:.0f} MiB; "
              f"labelling the large JPEG ({row['status']}) adds {row['added'] / mib:.0f} MiB = "
              f"{row['added'] / row['pixels']:.2f} bytes/px")
        if args.dask_check:
            dask_check(Path(folder))


if __name__ == "__main__":
    main()
