"""`mmsllama-synth`: generate the synthetic GRID-style audio-visual corpus.

    mmsllama-synth --out data/synthgrid --utterances 2000 --seed 0
"""

import argparse
import os
import sys
import time

from ..manifest import LRS3_SPEECH_RATE_CONSTANT
from .corpus import CorpusConfig, generate_corpus
from .speakers import SPLITS


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _face_splits(text: str) -> tuple[str, ...]:
    if text == "none":
        return ()
    if text == "all":
        return SPLITS
    splits = tuple(s for s in text.split(",") if s)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise argparse.ArgumentTypeError(f"expected 'none', 'all' or a comma-separated list of {SPLITS}, got {text!r}")
    return splits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmsllama-synth",
        description="Generate a synthetic GRID-style audio-visual speech corpus (espeak-ng speech, rendered mouth "
        "and talking-face videos, LRS3-style manifests, a datasets copy). Re-running completes a partial corpus.",
    )
    parser.add_argument("--out", required=True, help="corpus folder (created; an existing corpus is completed)")
    parser.add_argument("--utterances", type=_positive_int, default=2000, help="number of utterances (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    for split, default in zip(SPLITS, (18, 3, 3)):
        parser.add_argument(f"--{split}-speakers", type=_positive_int, default=default, help=f"speakers in {split} (default {default})")
    parser.add_argument(
        "--face", type=_face_splits, default=("test",), help="splits that also get the 320x240 talking-face video: none, all, or e.g. 'test' (default) or 'valid,test'"
    )
    parser.add_argument(
        "--speech-rate-constant", type=float, default=LRS3_SPEECH_RATE_CONSTANT, help=f"words/s that speech_rate 1.0 means (default LRS3's {LRS3_SPEECH_RATE_CONSTANT})"
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=os.cpu_count() or 1, help="processes generating utterances side by side; the files do not depend on it (default: one per core)"
    )
    parser.add_argument("--overwrite", action="store_true", help="delete an existing corpus in --out first")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = CorpusConfig(
            utterances=args.utterances,
            seed=args.seed,
            speakers={split: getattr(args, f"{split}_speakers") for split in SPLITS},
            face_splits=args.face,
            speech_rate_constant=args.speech_rate_constant,
        )
        start = time.perf_counter()
        settings = generate_corpus(args.out, config, overwrite=args.overwrite, progress=not args.quiet, workers=args.workers)
    except ValueError as error:
        parser.error(str(error))
    counts = ", ".join(f"{variant}: " + " ".join(f"{s}={n}" for s, n in c.items()) for variant, c in settings["counts"].items())
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s ({counts})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
