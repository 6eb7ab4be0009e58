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
# The LRS3 test manifest is not part of the repository (LRS3 is licensed; do not copy it in). The benchmarks read it
# from `--lrs3-manifest PATH`, else from $MMSLLAMA_LRS3_TEST_TSV, else from data/lrs3/test.tsv (data/ is not tracked).
LRS3_MANIFEST_ENV = "MMSLLAMA_LRS3_TEST_TSV"
LRS3_TEST_TSV = Path(os.environ.get(LRS3_MANIFEST_ENV) or REPO_ROOT / "data" / "lrs3" / "test.tsv")
LRS3_MANIFEST_HELP = (
    "the LRS3 test set's test.tsv manifest (1,321 utterances) with its test.wrd transcripts beside it, in the format "
    "of the AV-HuBERT / Auto-AVSR LRS3 preparation scripts (a root line, then `id video audio frames samples`; the "
    "MMS-LLaMA reference release's manifest/433h/test.tsv adds a sixth `speech_rate` column, which is used when "
    "present, else the label is computed from test.wrd). LRS3 itself is available under licence from the University "
    "of Oxford's Visual Geometry Group (https://www.robots.ox.ac.uk/~vgg/data/lip_reading/lrs3.html)"
)


def find_lrs3_manifest(explicit: str | os.PathLike | None = None) -> Path | None:
    """The LRS3 test manifest: `explicit`, else $MMSLLAMA_LRS3_TEST_TSV, else data/lrs3/test.tsv; None if missing."""
    path = Path(explicit) if explicit else LRS3_TEST_TSV
    return path if path.is_file() else None


def lrs3_missing_message(explicit: str | os.PathLike | None, skipped: str) -> str:
    """Why the LRS3 parts are skipped, and what they need and where to get it."""
    if explicit:
        where = f"--lrs3-manifest {explicit}: no such file"
    else:
        source = f"${LRS3_MANIFEST_ENV}" if os.environ.get(LRS3_MANIFEST_ENV) else "the default"
        shown = LRS3_TEST_TSV.relative_to(REPO_ROOT) if LRS3_TEST_TSV.is_relative_to(REPO_ROOT) else LRS3_TEST_TSV
        where = f"no --lrs3-manifest given, and no file at {shown} ({source})"
    return (f"LRS3 test manifest not found ({where}): skipping {skipped}. To include it, pass --lrs3-manifest PATH "
            f"(or set ${LRS3_MANIFEST_ENV}): {LRS3_MANIFEST_HELP}.")  # fmt: skip


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
    """Reads an LRS3-style `.tsv` (root line, then `tag video audio frames samples rate`) and its `.wrd` if present.

    Five-field rows (AV-HuBERT / Auto-AVSR manifests, no `rate`) need the `.wrd`: their rate label is computed from
    it as the paper does (words per second over LRS3's 2.7073).
    """
    tsv_path = Path(tsv_path)
    lines = tsv_path.read_text().splitlines()[1:]
    wrd_path = tsv_path.with_suffix(".wrd")
    words = wrd_path.read_text().splitlines() if wrd_path.exists() else None
    rows = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        fields = line.split("\t")
        num_words = len(words[index].split()) if words is not None and index < len(words) else None
        if len(fields) == 5 and num_words is not None:
            from processing.manifest import speech_rate_label

            fields.append(str(speech_rate_label(num_words, int(fields[3]))))
        if len(fields) != 6:
            raise ValueError(f"{tsv_path}:{index + 2}: expected 6 tab-separated fields (5 with a .wrd beside the "
                             f".tsv), got {len(fields)}")  # fmt: skip
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


NOTES_MARKER = "<!-- notes: text below this line is written by hand and kept when the benchmark rewrites the file -->"


def kept_notes(path: Path) -> str:
    """The hand-written text below `NOTES_MARKER` in a results file about to be rewritten ("" if none)."""
    old = path.read_text() if path.exists() else ""
    return old.split(NOTES_MARKER, 1)[1].lstrip("\n") if NOTES_MARKER in old else ""


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(value):
        if isinstance(value, float):
            return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
