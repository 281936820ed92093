"""Try int8 and float16 copies of a teacher ONNX file: speed beside the float32 original, in one run.

Usage: python benchmarks/quantize_teacher.py MODEL.onnx --out-dir out/quantized [--calibration 64]

- int8: onnxruntime static quantization (QDQ, per-channel weights), calibrated on
  synthetic occluded LFW Part Labels **train** faces (training families), never on val or test.
- float16: the weights and activations converted with onnxruntime's converter (kept
  float32 at the graph's input and output).

Prints ms per image (batch 1, one thread, median of repeated runs) for each copy, and
their file sizes. Quality is measured separately on the synthetic val split with
``svc-eval COPY.onnx --labels synth_val.zarr`` (the decision rule: a copy ships only if
it is faster and loses at most 0.5 IoU points there; docs/teacher.md).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelgen.stages.teacher import to_network_input  # noqa: E402
from labelgen.eval.synth import synthetic_split, to_store_size  # noqa: E402


def calibration_batches(count: int) -> list[np.ndarray]:
    """``count`` synthetic occluded train faces as network inputs (1, 3, 128, 128)."""
    return [to_network_input(to_store_size(image, label, 128)[0], 128)
            for _, image, label in synthetic_split("train", limit=count)]


def quantize_int8(model: Path, out: Path, inputs: list[np.ndarray]) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"image": x} for x in inputs])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(model), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def convert_float16(model: Path, out: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(onnx.load(str(model)), keep_io_types=True)
    onnx.save(converted, str(out))
    return out


def ms_per_image(model: Path, inputs: list[np.ndarray], repeats: int = 3) -> float:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    session.run(None, {"image": inputs[0]})
    times = []
    for _ in range(repeats):
        for x in inputs:
            start = time.perf_counter()
            session.run(None, {"image": x})
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--out-dir", type=Path, default=Path("out/quantized"))
    parser.add_argument("--calibration", type=int, default=64, help="Train faces to calibrate int8 on.")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    inputs = calibration_batches(args.calibration)
    copies = {"float32": args.model}
    try:
        copies["int8"] = quantize_int8(args.model, args.out_dir / f"{args.model.stem}-int8.onnx", inputs)
    except Exception as error:  # report and go on: the comparison is the product here
        print(f"int8: failed: {type(error).__name__}: {error}")
    try:
        copies["float16"] = convert_float16(args.model, args.out_dir / f"{args.model.stem}-fp16.onnx")
    except Exception as error:
        print(f"float16: failed: {type(error).__name__}: {error}")
    timing = inputs[:16]
    results = {}
    for name, path in copies.items():
        try:
            results[name] = ms_per_image(path, timing)
        except Exception as error:
            print(f"{name}: does not run: {type(error).__name__}: {str(error)[:200]}")
    for name, ms in results.items():
        print(f"{name:<8} {ms:8.2f} ms per image (batch 1, 1 thread)  float32 / {name} "
              f"{results['float32'] / ms:5.2f}  {copies[name].stat().st_size / 1e6:.1f} MB  {copies[name]}")


if __name__ == "__main__":
    main()
