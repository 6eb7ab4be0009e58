"""Mouth-ROI extraction speed on a 640x480 talking-face video, in frames per second (target: >= 50, twice real time).

    python -m benchmarks.bench_roi            # writes benchmarks/RESULTS_roi.md

The clip is scikit-image's astronaut photo animated with a known pan and zoom (tests/media_factory.py), 10 s at 25 fps,
H.264 in mp4. Three stages are timed, each the median of three runs: decoding to 25 fps grayscale, ROI extraction
(face detection every 5th frame, 68 landmarks on every frame, smoothing, warp and 96x96 crop), and both together.
"""

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from modeling_mmsllama.media_mmsllama import read_media
from modeling_mmsllama.mouth_roi_mmsllama import MouthROIExtractor
from tests.media_factory import astronaut_talking_video, write_clip


SECONDS = 10  # s of video
FPS = 25  # frames/s
TARGET_FPS = 50  # frames/s, twice real time
RUNS = 3
RESULTS = Path(__file__).with_name("RESULTS_roi.md")


def _median_seconds(function) -> tuple[float, float]:
    """Median wall-clock and CPU seconds (CPU time is unaffected by other processes competing for the cores)."""
    walls, cpus = [], []
    for _ in range(RUNS):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    frames, _ = astronaut_talking_video(num_frames=SECONDS * FPS // 2)
    frames = np.concatenate([frames, frames[::-1]])  # forth and back: 10 s of smooth motion
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "talking_face_640x480.mp4")
        write_clip(path, frames, fps=FPS)
        extractor = MouthROIExtractor()
        gray = read_media(path, audio=False).frames
        extractor.landmarker.detect(gray[0])  # load the model outside the timings
        num_frames = len(gray)
        decode = _median_seconds(lambda: read_media(path, audio=False))
        extract = _median_seconds(lambda: extractor(gray))
        end_to_end = _median_seconds(lambda: extractor(read_media(path, audio=False).frames))

    rows = [("decode to 25 fps gray", decode), ("ROI extraction", extract), ("decode + ROI extraction", end_to_end)]
    lines = [
        "# Mouth-ROI extraction speed",
        "",
        f"`python -m benchmarks.bench_roi`: a {num_frames}-frame ({SECONDS} s) 640x480 H.264 talking-face clip; "
        f"median of {RUNS} runs; {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}. Detector: dlib HOG every 5th frame + 68-point landmarks on every frame.",
        "",
        f"Load average during the run: {os.getloadavg()[0]:.1f} (above the core count, other processes shared the CPU "
        "and the wall-clock figures are pessimistic; the CPU-time figures are not affected).",
        "",
        "| stage | wall s | frames/s (wall) | x real time | CPU s | frames/CPU-s |",
        "|---|---|---|---|---|---|",
    ]
    for name, (wall, cpu) in rows:
        lines.append(
            f"| {name} | {wall:.2f} | {num_frames / wall:.0f} | {num_frames / wall / FPS:.1f} | {cpu:.2f} "
            f"| {num_frames / cpu:.0f} |"
        )
    verdict = "meets" if num_frames / end_to_end[0] >= TARGET_FPS else "misses"
    lines += ["", f"End to end (wall clock) {verdict} the target of {TARGET_FPS} frames/s (twice real time).", ""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
