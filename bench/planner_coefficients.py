"""Measures, on this machine, the CPU coefficients the capacity planner takes from our own agent.

    .venv/bin/python bench/planner_coefficients.py [--seconds 3]

With real OpenCV, on a synthetic street-like scene (texture, noise, a moving block) encoded as
JPEG at the agent's quality, at 640x360, 1280x720 and 1920x1080:

- JPEG decode (``cv2.imdecode``, as the agent does for every MJPEG frame) per megapixel;
- JPEG encode at quality 90 (``cv2.imencode``, as the agent records frames of other codecs)
  per megapixel, and the bits per pixel it produces;
- each analytics module (``recording.analytics``: motion detection, tampering detection) per
  frame, fitted as a fixed part plus a part per megapixel of the source picture.

Single thread (``cv2.setNumThreads(1)``), so a figure is a share of one core. Prints a table
and the values for ``capacity/coefficients.py``; JSON in bench/out/.
"""

import argparse
import json
import statistics
import time

import cv2
import numpy as np
from common import OUT

from recording.analytics import MotionDetector, TamperDetector

RESOLUTIONS = [(640, 360), (1280, 720), (1920, 1080)]


def scene(width: int, height: int, step: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    base = (np.sin(x / 17.0) * 40 + np.cos(y / 23.0) * 40 + 128).astype(np.uint8)
    image = cv2.merge([base, np.roll(base, 7, axis=1), np.roll(base, 13, axis=0)])
    noise = rng.integers(0, 12, image.shape, dtype=np.uint8)
    image = cv2.add(image, noise)
    left = (step * 8) % max(1, width - width // 5)
    cv2.rectangle(image, (left, height // 3), (left + width // 5, height // 3 + height // 4), (30, 200, 60), -1)
    return image


def per_frame(fn, frames, seconds: float) -> float:
    """Median seconds of CPU per call over repeated passes."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or len(samples) < 5:
        started = time.process_time()
        for frame in frames:
            fn(frame)
        samples.append((time.process_time() - started) / len(frames))
        if len(samples) >= 200:
            break
    return statistics.median(samples)


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares: seconds = fixed + per_mpx * megapixels."""
    xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    per_mpx, fixed = np.polyfit(xs, ys, 1)
    return max(0.0, float(fixed)), float(per_mpx)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    rng = np.random.default_rng(1)
    rows, decode, encode, modules = [], [], [], {"motion_detection": [], "tamper_detection": []}
    for width, height in RESOLUTIONS:
        images = [scene(width, height, step, rng) for step in range(20)]
        jpegs = [cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1] for image in images]
        mpx = width * height / 1e6
        bpp = statistics.median(len(j) * 8 / (width * height) for j in jpegs)
        seconds = per_frame(lambda jpeg: cv2.imdecode(jpeg, cv2.IMREAD_COLOR), jpegs, args.seconds)
        decode.append((mpx, seconds))
        encoded = per_frame(lambda image: cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90]), images,
                            args.seconds)  # fmt: skip
        encode.append((mpx, encoded))
        row = {"resolution": f"{width}x{height}", "jpeg_bits_per_pixel": round(bpp, 3),
               "decode_ms": round(seconds * 1000, 3), "encode_ms": round(encoded * 1000, 3)}  # fmt: skip
        for module, detector in (("motion_detection", MotionDetector()), ("tamper_detection", TamperDetector())):
            clock = iter(range(10**9))
            seconds = per_frame(lambda image, d=detector, c=clock: d.feed(image, next(c) / 10), images, args.seconds)
            modules[module].append((mpx, seconds))
            row[f"{module}_ms"] = round(seconds * 1000, 3)
        rows.append(row)
    result = {
        "rows": rows,
        "jpeg_decode_core_seconds_per_mpx": round(decode[-1][1] / decode[-1][0], 5),
        "jpeg_encode_core_seconds_per_mpx": round(encode[-1][1] / encode[-1][0], 5),
        "modules": {
            module: {"core_seconds_per_frame": round(fixed, 6), "core_seconds_per_mpx": round(per_mpx, 6)}
            for module, (fixed, per_mpx) in ((m, fit(points)) for m, points in modules.items())
        },
    }
    columns = ("resolution", "JPEG bpp", "decode ms", "encode ms", "motion ms", "tamper ms")
    print(" ".join(f"{c:>10}" for c in columns))
    for row in rows:
        print(f"{row['resolution']:>10} {row['jpeg_bits_per_pixel']:>10} {row['decode_ms']:>10} {row['encode_ms']:>10} "
              f"{row['motion_detection_ms']:>10} {row['tamper_detection_ms']:>10}")  # fmt: skip
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "planner_coefficients.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
