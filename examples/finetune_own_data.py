"""Fine-tune on your own data with `mmsllama-train`.

Your data: an LRS3-style folder with `train.tsv`/`train.wrd` and `valid.tsv`/`valid.wrd` (see docs/corpus.md and
`processing/manifest.py`; `processing.roi` crops mouths out of face videos). Without `--data`, this example makes a
small synthetic stand-in.

The run continues the audio-visual stage (Q-Former, projector, adapters, LoRA on the LLM) on your data, starting from
every weight of `--model` (`mmsllama-train --init`); encoders and rate predictor stay frozen (the paper's stage 2):

    python examples/finetune_own_data.py --model demo_model --data my_lrs3_style_folder --out runs/my_avsr
    python examples/finetune_own_data.py --max_steps 20       # a quick check on synthetic data

Then: `mmsllama-eval --model runs/my_avsr --data ...` and `mmsllama export --model runs/my_avsr --out exported/`.
"""

import argparse
from pathlib import Path

from processing.synth.corpus import CorpusConfig, generate_corpus
from training.cli import train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo_model", help="a trained model folder to start from")
    parser.add_argument("--data", default=None, help="your LRS3-style folder (default: a synthetic stand-in)")
    parser.add_argument("--out", default="runs/finetuned")
    parser.add_argument("--max_steps", type=int, default=200)
    args = parser.parse_args()
    data = args.data
    if data is None:
        data = Path("runs/finetune_data")
        generate_corpus(data, CorpusConfig(utterances=60, speakers={"train": 2, "valid": 1, "test": 1}))
    argv = [
        "--stage", "avsr", "--data", str(data), "--out", args.out,
        "--init", args.model,
        "--max_steps", str(args.max_steps), "--per_device_train_batch_size", "8", "--learning_rate", "1e-3",
        "--eval_strategy", "no", "--save_strategy", "no", "--logging_steps", "10", "--report_to", "none",
        "--wer_samples", "8",
    ]  # fmt: skip
    print("mmsllama-train " + " ".join(argv))  # the same from the shell
    train(argv)
    print(f"fine-tuned model in {args.out}; evaluate with: mmsllama-eval --model {args.out} --data {data}")


if __name__ == "__main__":
    main()
