"""Mouth-ROI extraction speed and agreement, old method against new, and dataset preparation on 1 and 2 processes.

    python -m benchmarks.bench_roi                                  # crop speed + agreement -> RESULTS_roi.md
    python -m benchmarks.bench_roi --corpus CORPUS --clips 300      # + mmsllama-prepare on CORPUS/face (synthetic)

Speed: a 250-frame (10 s) 640x480 H.264 clip of scikit-image's astronaut with a known pan and zoom
(tests/media_factory.py). Each method's stages are timed back to back in CPU seconds, the median of three runs:
decoding to 25 fps grayscale (`read_media`), ROI extraction, both together. The methods are the whole-frame one of
before issue 23 (`tracking=False, landmark_every=1`: detection every 5th frame, landmarks on every frame), tracking
with landmarks on every frame, and the default (tracking, landmarks every 2nd frame).

Agreement: the largest distance between the crop corners of the old and the new method (the crops' rotation, scale
and shift), and each method's mouth error against the truth, on the speed clip, the rolling talking head at 25 and
30 fps, and synthetic talking faces.

Preparation: `processing.prepare` on the face clips of a synthetic corpus, with `--num-proc 1` and then 2, back to
back in one run, then as 4 shards + merge, whose manifests must equal the single-process ones.
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from modeling_mmsllama.media_mmsllama import frame_indices_at_25fps, read_media
from modeling_mmsllama.mouth_roi_mmsllama import MouthROIExtractor, crop_corners, to_gray
from tests.media_factory import astronaut_head_motion, astronaut_talking_head, astronaut_talking_video, write_clip


SECONDS = 10  # s of video
FPS = 25  # frames/s
RUNS = 3
RESULTS = Path(__file__).with_name("RESULTS_roi.md")
METHODS = {  # name -> MouthROIExtractor arguments
    "before: whole-frame detection every 5th frame, landmarks on every frame": dict(tracking=False, landmark_every=1),
    "tracking, landmarks on every frame": dict(tracking=True, landmark_every=1),
    "after (default): tracking, landmarks every 2nd frame": dict(tracking=True, landmark_every=2),
}
OLD = next(iter(METHODS.values()))


def _cpu_seconds(function) -> tuple[float, float]:
    """Median wall-clock and CPU seconds (CPU time is what the work costs; other processes inflate the wall clock)."""
    walls, cpus = [], []
    for _ in range(RUNS):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _decode_luma(path: str) -> np.ndarray:
    """For reference only: the frames' luma plane read straight from the decoder, no swscale conversion (limited-range
    Y mapped to full-range gray by a table, which gives `read_media`'s values on these clips)."""
    import av

    table = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        planes = []
        for frame in container.decode(stream):
            plane = frame.planes[0]
            planes.append(np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width])
    return table[np.stack(planes)]


def speed(folder: str) -> list[str]:
    frames, _ = astronaut_talking_video(num_frames=SECONDS * FPS // 2)
    frames = np.concatenate([frames, frames[::-1]])  # forth and back: 10 s of smooth motion
    path = os.path.join(folder, "talking_face_640x480.mp4")
    write_clip(path, frames, fps=FPS)
    gray = read_media(path, audio=False).frames
    num_frames = len(gray)
    extractors = {name: MouthROIExtractor(**arguments) for name, arguments in METHODS.items()}
    next(iter(extractors.values())).landmarker.detect(gray[0])  # load the model outside the timings
    decode = _cpu_seconds(lambda: read_media(path, audio=False))
    luma = _cpu_seconds(lambda: _decode_luma(path))
    timings = {}
    for name, extractor in extractors.items():
        timings[name] = (
            _cpu_seconds(lambda: extractor(gray)),
            _cpu_seconds(lambda: extractor(read_media(path, audio=False).frames)),
        )
    base_roi, base_total = timings[next(iter(METHODS))]
    lines = [
        "## Speed",
        "",
        f"A {num_frames}-frame ({SECONDS} s) 640x480 H.264 talking-face clip; CPU seconds, median of {RUNS} runs, each "
        "method right after the other in one process.",
        "",
        "| method | ROI extraction CPU s | frames/CPU-s | x before | decode + ROI CPU s | frames/CPU-s | x before |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (roi, total) in timings.items():
        lines.append(
            f"| {name} | {roi[1]:.2f} | {num_frames / roi[1]:.0f} | {base_roi[1] / roi[1]:.2f} | {total[1]:.2f} "
            f"| {num_frames / total[1]:.0f} | {base_total[1] / total[1]:.2f} |"
        )
    lines += [
        "",
        f"Decoding alone (`read_media`, 25 fps gray): {decode[1]:.2f} CPU s ({num_frames / decode[1]:.0f} "
        "frames/CPU-s). "
        f"Reading the decoder's luma plane directly instead of converting each frame with swscale would take "
        f"{luma[1]:.2f} CPU s (measured here, not what `read_media` does).",
        "",
    ]
    return lines


def _agreement_row(name: str, gray: np.ndarray, truth: np.ndarray | None) -> str:
    old, new = MouthROIExtractor(**OLD)(gray), MouthROIExtractor()(gray)
    both = sorted(set(range(len(gray))) - set(old.missing_frames) - set(new.missing_frames))
    shift = np.array([np.linalg.norm(crop_corners(old.keypoints[t]) - crop_corners(new.keypoints[t]), axis=1).max()
                      for t in both])  # fmt: skip
    errors = ["-", "-"] if truth is None else [
        f"{np.linalg.norm(r.mouth_centres[both] - truth[both], axis=1).max():.2f}" for r in (old, new)]  # fmt: skip
    missing = f"{len(old.missing_frames)} / {len(new.missing_frames)}"
    return f"| {name} | {len(gray)} | {missing} | {shift.max():.2f} | {shift.mean():.2f} | {errors[0]} | {errors[1]} |"


def agreement(folder: str, corpus: Path | None, num_synthetic: int) -> list[str]:
    rows = []
    frames, mouths = astronaut_talking_video(num_frames=SECONDS * FPS // 2)
    rows.append(_agreement_row("pan + zoom astronaut (speed clip, raw frames)", to_gray(frames), mouths))
    for fps in (25, 30):
        head, _ = astronaut_talking_head(4.0, fps, gray=True)
        path = os.path.join(folder, f"head_{fps}.mp4")
        write_clip(path, np.repeat(head[..., None], 3, -1), fps)
        source = frame_indices_at_25fps(np.arange(len(head)) / fps, fps) if fps != 25 else np.arange(len(head))
        truth = astronaut_head_motion(source / fps)[0]
        rows.append(_agreement_row(f"rolling talking head, {fps} fps mp4", read_media(path, audio=False).frames, truth))
    if corpus is None:
        from processing.synth.corpus import CorpusConfig, generate_corpus

        corpus = Path(folder) / "synth"
        config = CorpusConfig(utterances=num_synthetic, seed=0, speakers={"train": 2, "valid": 1, "test": 1},
                              face_splits=("train", "valid", "test"))  # fmt: skip
        generate_corpus(corpus, config, progress=False)
    metas = sorted((corpus / "meta").rglob("*.json"))[:num_synthetic]
    for meta_path in metas:
        meta = json.loads(meta_path.read_text())
        gray = read_media(corpus / meta["media"]["face"], audio=False).frames
        rows.append(_agreement_row(f"synthetic face {meta['id']}", gray, np.array(meta["face_mouth_centres_px"])))
    return [
        "## Agreement with the old method",
        "",
        "Crop shift: the largest distance, in frame pixels, between the corners of the old and the new crop of a frame "
        "(it bounds the difference in shift, scale and rotation), over the frames where both found a face. Mouth "
        "error: the crop centre against the true mouth.",
        "",
        "| clip | frames | faceless frames old / new | crop shift max px | mean px | mouth error old px | new px |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def preparation(corpus: Path, num_clips: int, folder: str) -> list[str]:
    """`processing.prepare` on `num_clips` face clips of `corpus`: 1 then 2 processes, then 4 shards + merge."""
    from processing.manifest import read_manifest, write_manifest
    from processing.prepare import list_manifests, merge, prepare_shard

    entries = [e for split in ("train", "valid", "test") for e in read_manifest(corpus / "face" / f"{split}.tsv")]
    manifest = Path(folder) / "faces.tsv"
    write_manifest(manifest, entries[:num_clips], root="/")
    clips = list_manifests([manifest])
    frames = sum(e.num_video_frames for e in entries[:num_clips])
    lines = [
        "## Preparation on 1 and 2 processes",
        "",
        f"`processing.prepare` on {len(clips)} synthetic talking-face clips (320x240, {frames} frames, "
        f"{frames / 25 / 60:.1f} min): crop, write the 96x96 mp4 and the 16 kHz wav, then merge (manifests + "
        "`datasets` copy). Each run starts from an empty folder; the runs follow each other in one process.",
        "",
        "| run | wall s | clips/s | frames/s | x 1 process | CPU s (frames/CPU-s) | load average before | after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    results, outputs = {}, {}
    for name, num_proc in (("--num-proc 1", 1), ("--num-proc 2", 2)):
        out = Path(folder) / f"proc{num_proc}"
        load = os.getloadavg()[0]
        start, cpu = time.perf_counter(), time.process_time()
        prepare_shard(clips, out, num_proc=num_proc, progress=False)
        merge(out)
        results[name], cpu = time.perf_counter() - start, time.process_time() - cpu
        outputs[name] = out
        cpu_text = f"{cpu:.1f} ({frames / cpu:.0f})" if num_proc == 1 else "(in the workers)"
        wall = results[name]
        lines.append(f"| {name} | {wall:.1f} | {len(clips) / wall:.2f} | {frames / wall:.0f} "
                     f"| {results['--num-proc 1'] / wall:.2f} | {cpu_text} | {load:.1f} "
                     f"| {os.getloadavg()[0]:.1f} |")  # fmt: skip
    sharded = Path(folder) / "shards4"
    start = time.perf_counter()
    for index in range(4):
        prepare_shard(clips, sharded, num_shards=4, shard_index=index, num_proc=2, progress=False)
    merge(sharded)
    shard_wall = time.perf_counter() - start
    splits = [p.stem for p in sorted(outputs["--num-proc 1"].glob("*.wrd"))]
    names = [f"{split}{suffix}" for split in splits for suffix in (".tsv", ".wrd")] + ["failures.tsv", "manifest.json"]
    same = all((outputs["--num-proc 1"] / n).read_bytes() == (sharded / n).read_bytes() == (outputs["--num-proc 2"] / n)
               .read_bytes() for n in names)  # fmt: skip
    failed = len((outputs["--num-proc 1"] / "failures.tsv").read_text().splitlines())
    lines += [
        f"| 4 shards one after the other (2 processes each) + merge | {shard_wall:.1f} | {len(clips) / shard_wall:.2f} "
        f"| {frames / shard_wall:.0f} | | | | |",
        "",
        f"Manifests ({', '.join(names)}) of the 1-process, 2-process and 4-shard runs byte-identical: "
        f"{'yes' if same else 'NO'}. Clips failed (listed in failures.tsv with their reason): {failed}.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="a synthetic corpus with talking faces (mmsllama-synth --face all)")
    parser.add_argument("--clips", type=int, default=0, help="face clips of --corpus to prepare (0: skip that part)")
    parser.add_argument("--synthetic", type=int, default=8, help="synthetic face clips in the agreement table")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        speed_lines = speed(folder)
        lines = [
            "# Mouth-ROI extraction and dataset preparation",
            "",
            f"`python -m benchmarks.bench_roi{f' --corpus CORPUS --clips {args.clips}' if args.clips else ''}`; "
            f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), Python "
            f"{platform.python_version()}, dlib HOG detector + 68-point landmarks. Load average at the start: "
            f"{load:.1f} (other helpers' jobs share the 2 cores: CPU seconds are the comparable figures, wall clock is not).",
            "",
            *speed_lines,
            *agreement(folder, args.corpus, args.synthetic),
        ]
        if args.clips:
            lines += preparation(args.corpus, args.clips, folder)
    lines.append(f"Load average at the end: {os.getloadavg()[0]:.1f}.")
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
