"""Transcribe videos (any length) with the pipeline, and write subtitles.

    python examples/transcribe_video.py                        # sample clips made on the fly, the demo model
    python examples/transcribe_video.py talk.mp4 --model exported/ --modality audio --srt talk.srt

The same in one line from the shell: `mmsllama transcribe talk.mp4 --model demo_model --format srt`.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub_cards.cli import load_pipeline  # noqa: E402
from modeling_mmsllama.subtitles_mmsllama import to_srt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("videos", nargs="*", help="video or audio files (default: generated sample clips)")
    parser.add_argument("--model", default="demo_model")
    parser.add_argument("--modality", choices=["av", "audio", "video"], default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--queries-per-second", type=float, default=None, help="token budget (default: trained)")
    parser.add_argument("--srt", default=None, help="write the first video's subtitles here")
    args = parser.parse_args()
    videos = args.videos
    if not videos:
        from sample_clips import sample_clips

        videos = [str(p) for p in sample_clips()[:4]]

    # A folder exported with `mmsllama export` also loads with Transformers alone:
    #   asr = transformers.pipeline("automatic-speech-recognition", model=folder, trust_remote_code=True)
    asr = load_pipeline(args.model)
    options = {"modality": args.modality, "queries_per_second": args.queries_per_second}
    results = asr(videos, batch_size=args.batch_size, **{k: v for k, v in options.items() if v is not None})
    for video, result in zip(videos, results):
        print(f"{video}\n  text: {result['text']!r}\n  {result['speech_tokens']} speech tokens "
              f"({result['tokens_per_second']:.2f} per second), {len(result['chunks'])} chunk(s)")  # fmt: skip
        for chunk in result["chunks"]:
            start, end = chunk["timestamp"]
            print(f"    [{start:7.2f} - {end:7.2f}] {chunk['text']}")
    if args.srt:
        Path(args.srt).write_text(to_srt(results[0]))
        print(f"subtitles of {videos[0]} written to {args.srt}")


if __name__ == "__main__":
    main()
