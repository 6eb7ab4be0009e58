"""Export a trained model as a Hub-ready folder with its model card, then load it as anyone would.

    python examples/export_model.py --model demo_model --out exported/demo

The same from the shell: `mmsllama export --model demo_model --out exported/demo --card-results demo_model/eval.json`.
Publishing is one more call (needs a token and the network): `huggingface_hub.upload_folder(repo_id="you/name",
folder_path="exported/demo")`.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo_model")
    parser.add_argument("--out", default="exported/demo")
    parser.add_argument("--card-results", default=None, help="eval.json (default: MODEL/eval.json if present)")
    args = parser.parse_args()

    from hub_cards import export_model

    out = export_model(args.model, args.out, card_results=args.card_results, overwrite=True)
    print(f"exported to {out}:")
    for path in sorted(out.iterdir()):
        print(f"  {path.name:<32} {path.stat().st_size / 1e3:10.1f} kB")

    # Loading it needs only Transformers (the code travels in the folder):
    from transformers import pipeline

    from sample_clips import sample_clips

    asr = pipeline("automatic-speech-recognition", model=str(out), trust_remote_code=True)
    clip = str(sample_clips()[0])
    print(clip, "->", asr(clip, num_beams=1))


if __name__ == "__main__":
    main()
