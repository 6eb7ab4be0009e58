"""Sample talking-mouth clips for the examples: a few utterances of the synthetic corpus (made in seconds, offline).

    python examples/sample_clips.py --out /tmp/mmsllama-samples --utterances 6
"""

import argparse
import tempfile
from pathlib import Path


def sample_clips(out: str | Path | None = None, utterances: int = 6, variant: str = "roi88") -> list[Path]:
    """Makes (or reuses) a small synthetic corpus and returns its clips of `variant` ("roi88": mouth crops + audio,
    "face": 320x240 talking face + audio; the face variant exists for the test split only)."""
    from processing.synth.corpus import CorpusConfig, generate_corpus

    out = Path(out or Path(tempfile.gettempdir()) / "mmsllama-samples")
    config = CorpusConfig(utterances=utterances, seed=7, speakers={"train": 1, "valid": 1, "test": 1}, face_splits=("test",))
    if not (out / "corpus.json").exists():
        generate_corpus(out, config, progress=False)
    return sorted((out / variant).rglob("*.mp4"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--utterances", type=int, default=6)
    args = parser.parse_args()
    for path in sample_clips(args.out, args.utterances):
        print(path)
