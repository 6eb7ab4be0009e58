"""`mmsllama-convert`: convert AV-HuBERT and the official MMS-LLaMA release, or count a preset's parameters.

    mmsllama-convert avhubert  --checkpoint large_vox_iter5.pt --out avhubert-large/
    mmsllama-convert mms-llama --checkpoint checkpoint_best.pt --sr-checkpoint sr/checkpoint.pt \\
        --avhubert avhubert-large/ --whisper whisper-medium.en/ --llm Llama-3.2-3B/ --out mms-llama-3b/
    mmsllama-convert count --preset paper-3b
"""

import argparse
import sys

import torch

from .configuration_mmsllama import PRESETS
from .convert_report import REPORT_TEXT, MMSLlamaConversionError


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmsllama-convert", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    avhubert = commands.add_parser("avhubert", help="fairseq AV-HuBERT checkpoint -> MMSLlamaAVHubertModel folder")
    avhubert.add_argument("--checkpoint", required=True, help="fairseq AV-HuBERT .pt (e.g. large_vox_iter5.pt)")
    avhubert.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    avhubert.add_argument("--overwrite", action="store_true")

    mms = commands.add_parser("mms-llama", help="official MMS-LLaMA release -> Transformers folder")
    mms.add_argument("--checkpoint", required=True, help="MMS-LLaMA fairseq checkpoint_best.pt")
    mms.add_argument("--sr-checkpoint", required=True, help="speech-rate predictor fairseq checkpoint.pt")
    mms.add_argument("--avhubert", required=True, help="folder from `mmsllama-convert avhubert`, or the AV-HuBERT .pt")
    mms.add_argument("--whisper", required=True, help="local Whisper folder (whisper-medium.en)")
    mms.add_argument("--llm", required=True, help="local Llama folder with tokenizer (Llama-3.2-3B)")
    mms.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    mms.add_argument("--lora", choices=("merge", "adapter"), default="merge",
                     help="merge the LoRA into the LLM (default) or keep it as a PEFT adapter in OUT/lora")  # fmt: skip
    mms.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (default: 2 x rank, as the reference)")
    mms.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="dtype of the saved weights")
    mms.add_argument("--overwrite", action="store_true")

    count = commands.add_parser("count", help="exact parameter counts of a preset, per component")
    count.add_argument("--preset", required=True, choices=sorted(PRESETS))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "count":
            from .convert_mmsllama import count_parameters

            for name, count in count_parameters(args.preset).items():
                print(f"{name} {count}")
            return 0
        if args.command == "avhubert":
            from .convert_avhubert import convert_avhubert

            convert_avhubert(args.checkpoint, args.out, overwrite=args.overwrite)
        else:
            from .convert_mmsllama import convert_mms_llama

            convert_mms_llama(
                args.checkpoint, args.sr_checkpoint, args.avhubert, args.whisper, args.llm, args.out,
                lora=args.lora, lora_alpha=args.lora_alpha, dtype=DTYPES[args.dtype], overwrite=args.overwrite,
            )  # fmt: skip
    except MMSLlamaConversionError as error:
        print(f"mmsllama-convert: error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {args.out} (report: {args.out.rstrip('/')}/{REPORT_TEXT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
