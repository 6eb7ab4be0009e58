"""Generation speed and size of the synthetic corpus; writes benchmarks/RESULTS_synth.md.

    python benchmarks/bench_synth.py --utterances 2000 [--workers 1 2] [--out /tmp/synth_bench]

Targets (issue 5): 2,000 utterances in under 5 minutes on 2 cores, under 100 MB.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from processing.synth.corpus import CorpusConfig, generate_corpus


TARGET_SECONDS_PER_2000 = 300.0
TARGET_MB_PER_2000 = 100.0
RESULTS = Path(__file__).with_name("RESULTS_synth.md")


def folder_bytes(folder: Path) -> dict[str, int]:
    sizes = {}
    for child in sorted(folder.iterdir()):
        files = [child] if child.is_file() else [p for p in child.rglob("*") if p.is_file()]
        sizes[child.name] = sum(p.stat().st_size for p in files)
    return sizes


def cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def generate_timed(out: Path, config: CorpusConfig, workers: int) -> tuple[dict, float, float]:
    """The corpus made from nothing with `workers` processes; returns its settings, wall and CPU seconds."""
    start, cpu_start = time.perf_counter(), cpu_seconds()
    settings = generate_corpus(out, config, overwrite=True, workers=workers)
    return settings, time.perf_counter() - start, cpu_seconds() - cpu_start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1],
                        help="worker processes; one timed run per value, in this order (default: 1 and one per core)")
    parser.add_argument("--out", default=None, help="corpus folder (default: a temporary folder, deleted after)")
    args = parser.parse_args()

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="synth_bench_"))
    config = CorpusConfig(utterances=args.utterances, seed=args.seed)
    runs = {workers: generate_timed(out, config, workers) for workers in args.workers}
    settings = runs[args.workers[-1]][0]
    load = os.getloadavg()[0]

    sizes = folder_bytes(out)
    total_mb = sum(sizes.values()) / 1e6
    metas = [json.loads(p.read_text()) for p in (out / "meta").rglob("*.json")]
    durations = np.array([m["num_video_frames"] / 25 for m in metas])
    rates = np.array([m["speech_rate"] for m in metas])
    scale = 2000 / args.utterances
    lines = [
        "# Synthetic corpus generation (processing.synth)",
        "",
        f"Command: `python benchmarks/bench_synth.py --utterances {args.utterances} --seed {args.seed} --workers "
        f"{' '.join(map(str, args.workers))}` (the same corpus made from nothing once per number of worker processes, "
        "in that order, in one sitting)",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs. Default settings "
        f"({sum(config.speakers.values())} speakers {config.speakers}, talking-face video for {list(config.face_splits)}).",
        "",
        "| measure | value | target (2,000 utts) |",
        "|---|---|---|",
        f"| utterances | {args.utterances} ({settings['counts']['roi88']}) | |",
        *[f"| wall time, {workers} worker(s) | {seconds:.1f} s ({1000 * seconds / args.utterances:.0f} ms/utt; {seconds * scale:.0f} s per 2,000) | < {TARGET_SECONDS_PER_2000:.0f} s |"
          for workers, (_, seconds, _) in runs.items()],
        *[f"| CPU time, {workers} worker(s) | {cpu:.1f} s ({cpu * scale:.0f} s per 2,000) | |" for workers, (_, _, cpu) in runs.items()],
        f"| disk | {total_mb:.1f} MB ({1000 * total_mb / args.utterances:.1f} kB/utt; {total_mb * scale:.1f} MB per 2,000) | < {TARGET_MB_PER_2000:.0f} MB |",
        f"| media duration | {durations.sum() / 60:.1f} min, {durations.mean():.2f} s mean ({durations.min():.2f}-{durations.max():.2f}) | |",
        f"| speech_rate label | mean {rates.mean():.2f}, 1st-99th percentile {np.percentile(rates, 1):.2f}-{np.percentile(rates, 99):.2f}, min {rates.min():.2f}, max {rates.max():.2f} | spans 0.6-1.8 |",
        "",
        f"Load average at the end: {load:.1f} (other jobs on the machine slow the wall time; the CPU time, workers' included, is the cost of generation itself).",
        "",
        "Disk by folder (MB): " + ", ".join(f"{name} {size / 1e6:.1f}" for name, size in sizes.items()),
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
