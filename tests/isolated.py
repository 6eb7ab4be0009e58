"""Runs code in a new interpreter where this repository's packages are not importable: only what a user who downloaded
a model folder has (torch, Transformers and the media extras)."""

import subprocess
import sys
import textwrap
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
PRELUDE = f"""
import sys
for name in ('modeling_mmsllama', 'hub_cards', 'processing', 'training'):
    sys.modules[name] = None
sys.path = [p for p in sys.path if p and (not p.startswith({str(REPO)!r}) or p.startswith({str(REPO / '.venv')!r}))]
"""


def run_isolated(code: str, cwd, timeout: float = 300) -> str:
    """Runs `code` (dedented) after `PRELUDE`; returns its stdout, failing with its stderr when it fails."""
    result = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], cwd=cwd, capture_output=True,
                            text=True, timeout=timeout)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
