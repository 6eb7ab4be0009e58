"""Keeping freed memory in the process, so that every training step does not page-fault its buffers anew.

glibc's malloc serves large blocks (above its mmap threshold, 128 KiB to 32 MiB) with a fresh `mmap` and unmaps them
when they are freed. A training step allocates the same large buffers every time (the padded video batch, 45 MB at
batch 16; the STFT of the log-mels; activations and gradients), so every step pays a page fault per 4 KiB page to map
them again: avsr steps 1.06-1.10x and encoders-stage steps 0.99-1.14x slower on our 2 cores
(`benchmarks/RESULTS_training*.md`). With mmap off and trimming off, freed blocks stay in the heap and the next step
reuses them. The numbers computed are unchanged; the price is a resident set that stays near its peak, since heap
fragments are not given back: call it once the data are loaded (`docs/training.md`).
"""

import ctypes
import ctypes.util


M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc malloc.h)
M_MMAP_MAX = -4
NEVER_TRIM = 2**31 - 1  # bytes; the largest int mallopt accepts


def keep_freed_memory() -> bool:
    """Asks glibc's malloc to serve every block from its heap and never to give freed memory back to the OS.

    Process-wide and for the rest of the process; the training and evaluation commands call it once their data are
    decoded, the library never does. The resident set then stays near its peak instead of shrinking between steps.
    Returns whether the settings took (False where the C library is not glibc, e.g. macOS or musl).
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
