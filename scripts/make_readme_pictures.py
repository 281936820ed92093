"""Make the README's pictures of the embedded sample: its labels, and its ``labelgen report`` in a browser.

Usage: python scripts/make_readme_pictures.py [--out docs/images/report.png] [--grid docs/images/sample_grid.png]
       [--teacher NAME]

Labels the embedded sample into a temporary store (``labelgen run --source sample
--serial``, the default teacher unless ``--teacher``), draws its overlay grid with
``labelgen show`` (the picture README opens with), writes its report, screenshots
the page in headless Chromium (``apt-get install chromium``; the tests' helper
in ``tests/helpers.py``, so the test extras must be installed) and saves it,
downscaled, as a PNG under 400 KB.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import console_messages, headless_chromium  # noqa: E402

MAX_BYTES = 400_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "report.png")
    parser.add_argument("--grid", type=Path, default=REPO / "docs" / "images" / "sample_grid.png")
    parser.add_argument("--teacher", default=None, help="Teacher of the sample run (default: labelgen's default).")
    parser.add_argument("--width", type=int, default=900, help="Width of the saved pictures, pixels.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="svc-pictures-") as folder:
        store, page, shot = Path(folder) / "sample.zarr", Path(folder) / "report.html", Path(folder) / "shot.png"
        teacher = ["--teacher", args.teacher] if args.teacher else []
        labelgen = [sys.executable, "-m", "labelgen.cli"]
        subprocess.run([*labelgen, "run", "--source", "sample", "--serial", "--out", str(store), *teacher], check=True)
        subprocess.run([*labelgen, "show", str(store), "--n", "16", "--columns", "8", "--out", str(args.grid)],
                       check=True)
        grid = cv2.imread(str(args.grid))
        cv2.imwrite(str(args.grid), cv2.resize(grid, (args.width, round(grid.shape[0] * args.width / grid.shape[1])),
                                               interpolation=cv2.INTER_AREA), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        subprocess.run([*labelgen, "report", str(store), "--out", str(page)], check=True)
        shown = headless_chromium(page, f"--screenshot={shot}", "--window-size=1280,1900")
        if shown.returncode != 0 or console_messages(shown.stderr):
            sys.exit(f"chromium failed or the page logged to its console:\n{shown.stderr[-2000:]}")
        picture = cv2.imread(str(shot))
    height = round(picture.shape[0] * args.width / picture.shape[1])
    small = cv2.resize(picture, (args.width, height), interpolation=cv2.INTER_AREA)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({small.shape[1]}x{small.shape[0]}, {size / 1000:.0f} KB)")
    if size > MAX_BYTES:
        sys.exit(f"{args.out} is {size} bytes, over the README budget of {MAX_BYTES}: use a smaller --width")


if __name__ == "__main__":
    main()
