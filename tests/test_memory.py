"""`keep_freed_memory`: a freed large block stays in the process for the next allocation instead of being unmapped."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest


BLOCK = 64 * 2**20  # bytes: above glibc's largest mmap threshold (32 MiB)
PROBE = f"BLOCK = {BLOCK}" + """
import json, os, sys
import numpy as np
from training.memory import keep_freed_memory

def resident():  # bytes
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

took = keep_freed_memory() if sys.argv[1] == "keep" else None
before = resident()
np.ones(BLOCK // 8).sum()  # allocated, every page touched, freed
print(json.dumps({"took": took, "kept": resident() - before}))
"""


def _probe(mode: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parents[1])
    return json.loads(result.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings exist in glibc only")
def test_a_freed_large_block_stays_in_the_process():
    default, kept = _probe("default"), _probe("keep")
    assert default["kept"] < BLOCK // 4  # glibc unmapped the block: the next one is mapped and faulted in anew
    assert kept["took"] is True
    assert kept["kept"] > BLOCK * 3 // 4  # the block stayed in the heap, mapped, for the next allocation
