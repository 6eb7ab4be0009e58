"""WER of a model clean and in babble noise, for audio+video, audio only and video only.

    python examples/evaluate_noise.py --model demo_model                   # a generated test set
    python examples/evaluate_noise.py --model runs/avsr --data data/synthgrid --limit 200

It runs `mmsllama-eval` and writes eval.json / eval.md / eval.png into --out; `mmsllama export --card-results` puts the
table into the model card.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo_model")
    parser.add_argument("--data", default=None, help="corpus root or LRS3-style folder (default: generated)")
    parser.add_argument("--limit", type=int, default=16, help="test utterances")
    parser.add_argument("--num_beams", type=int, default=1)
    parser.add_argument("--out", default="runs/eval_noise")
    args = parser.parse_args()
    data = args.data
    if data is None:
        from sample_clips import sample_clips

        data = Path("runs/eval_data")
        sample_clips(data, utterances=48)
    from training.cli import eval_command

    eval_command(["--model", args.model, "--data", str(data), "--split", "test", "--limit", str(args.limit),
                  "--snr", "clean", "5", "0", "-5", "--modality", "av", "a", "v", "--num_beams", str(args.num_beams),
                  "--out", args.out])  # fmt: skip
    print(f"report: {args.out}/eval.md and {args.out}/eval.png")


if __name__ == "__main__":
    main()
