"""Shared helpers: manifest reading, environment description, timing and memory probes, Markdown tables."""

import ctypes
import datetime
import os
import platform
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch


REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
VIDEO_FPS = 25
# The LRS3 test manifest lives outside the repository (it is CC BY-NC metadata; do not copy it in).
LRS3_TEST_DIR = REPO_ROOT.parent / "shared" / "data" / "lrs3-test-manifest"
LRS3_TEST_TSV = Path(os.environ.get("MMSLLAMA_LRS3_TEST_TSV", LRS3_TEST_DIR / "test.tsv"))


@dataclass(frozen=True)
class Utterance:
    """One manifest row: its length in 25 fps video frames, its rate label, and its word count if known."""

    num_video_frames: int
    speech_rate: float
    num_words: int | None = None

    @property
    def duration_s(self) -> float:
        return self.num_video_frames / VIDEO_FPS


def read_tsv_manifest(tsv_path: str | os.PathLike, limit: int | None = None) -> list[Utterance]:
    """Reads an LRS3-style `.tsv` (root line, then `tag video audio frames samples rate`) and its `.wrd` if present."""
    tsv_path = Path(tsv_path)
    lines = tsv_path.read_text().splitlines()[1:]
    wrd_path = tsv_path.with_suffix(".wrd")
    words = wrd_path.read_text().splitlines() if wrd_path.exists() else None
    rows = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 6:
            raise ValueError(f"{tsv_path}:{index + 2}: expected 6 tab-separated fields, got {len(fields)}")
        num_words = len(words[index].split()) if words is not None and index < len(words) else None
        rows.append(Utterance(int(fields[3]), float(fields[5]), num_words))
        if limit is not None and len(rows) >= limit:
            break
    return rows


def environment() -> dict:
    """Machine, versions and date, for the header of RESULTS.md."""
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu}; {os.cpu_count()} visible cores; torch threads {torch.get_num_threads()}; "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
    }


def median(values) -> float:
    return statistics.median(values)


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def release_memory() -> None:
    """Returns freed heap pages to the OS so that RSS-based peaks of consecutive runs do not hide each other."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


class PeakRSS:
    """Samples the process's resident set size in a thread; `peak - start` is the run's extra working memory."""

    def __init__(self, interval_s: float = 0.002):
        import psutil

        self._process = psutil.Process()
        self.interval_s = interval_s
        self.start = self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        release_memory()
        self.start = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def extra_bytes(self) -> int:
        return self.peak - self.start


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(value):
        if isinstance(value, float):
            return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
