"""`mmsllama-train` and `mmsllama-eval`.

    mmsllama-train --stage encoders --preset demo --data data/synthgrid --out runs/enc --max_steps 3000
    mmsllama-train --stage avsr --preset demo --data data/synthgrid --encoders runs/enc --lm runs/lm \
        --rate-predictor runs/sr --out runs/avsr [--deepspeed training/zero2.json]
    mmsllama-eval --model runs/avsr --data data/synthgrid --split test --snr clean 10 5 0 -5 --modality av a v

Every `TrainingArguments` field is a flag (`--max_steps 5`, `--learning_rate 1e-3`, ...).
"""

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser, TrainerCallback, TrainingArguments, set_seed

from modeling_mmsllama import MMSLlamaConfig, MMSLlamaForConditionalGeneration, MMSLlamaInputError
from modeling_mmsllama.processing_mmsllama import MMSLlamaProcessor
from processing.noise import PAPER_NOISE_PROBABILITY, PAPER_SNRS_DB, NoiseAugmenter

from .collator import training_noises
from .data import AVSRDataset, load_split
from .evaluation import EVAL_NOISE_UTTERANCES, evaluate, evaluation_noise, format_table, write_report
from .memory import keep_freed_memory
from .stages import STAGE_TABLE, STAGES, Stage, build_model, frozen_modules
from .trainer import MMSLlamaTrainer, latest_complete_checkpoint


@dataclass
class StageArguments:
    stage: str = field(metadata={"help": f"one of {STAGES}"})
    data: str = field(metadata={"help": "a synthetic corpus root or a folder of LRS3-style {split}.tsv/.wrd"})
    out: str = field(metadata={"help": "output folder (checkpoints and the final model)"})
    preset: str = field(default="demo", metadata={"help": "model preset: tiny, demo, paper-1b, paper-3b, paper-8b"})
    config_overrides: str | None = field(default=None, metadata={"help": "JSON of MMSLlamaConfig overrides"})
    init: str | None = field(default=None, metadata={"help": "a trained MMS-LLaMA folder to start from (fine-tuning)"})
    encoders: str | None = field(default=None, metadata={"help": "output folder of the encoders stage"})
    lm: str | None = field(default=None, metadata={"help": "output folder of the lm stage"})
    rate_predictor: str | None = field(default=None, metadata={"help": "output folder of the rate-predictor stage"})
    train_split: str = "train"
    valid_split: str = "valid"
    limit_train: int | None = field(default=None, metadata={"help": "use only the first N training utterances"})
    noise_probability: float = field(default=PAPER_NOISE_PROBABILITY, metadata={"help": "share of noisy utterances"})
    noise_snrs: list[float] = field(default_factory=lambda: list(PAPER_SNRS_DB), metadata={"help": "SNRs (dB)"})
    drop_audio: float = field(default=0.1, metadata={"help": "avsr: probability of zeroing a sample's audio"})
    drop_video: float = field(default=0.25, metadata={"help": "avsr: probability of zeroing a sample's video"})
    augment_video: bool = field(default=True, metadata={"help": "random crop and flip of mouth crops"})
    augment_encoders: bool = field(default=False, metadata={"help": "encoders and avsr: frequency warp and masks of "
                                   "the log-mels, gain, offset and time masks of the video (training/augment.py)"})
    ctc_units: str = field(default="auto", metadata={"help": "encoders: CTC on 'phonemes' (from {split}.phn), "
                           "'characters', or 'auto' (phonemes when the training split has them)"})
    encoder_objective: str = field(default="ctc", metadata={"help": "encoders: 'ctc', or 'framewise' (each frame's "
                                   "phoneme, from the {split}.ali phoneme spans: denser features for the Q-Former)"})
    lora_r: int = field(default=16, metadata={"help": "avsr: LoRA rank on the LLM; 0 trains the LLM fully"})
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    wer_samples: int = field(default=64, metadata={"help": "avsr: validation utterances transcribed per evaluation"})
    resume: bool = field(default=True, metadata={"help": "continue from the newest complete checkpoint in --out"})
    skip_bad_samples: bool = field(default=True, metadata={"help": "report and skip unreadable samples (else stop)"})
    keep_freed_memory: bool = field(default=True, metadata={"help": "keep freed memory in the process for the next "
                                    "step instead of mapping it anew (glibc; faster steps, see training/memory.py)"})


def _build_without_zero3_init(training: TrainingArguments, *build_args):
    """Builds the model whole even under ZeRO-3 (whose `zero.Init` would partition it at construction, before the
    earlier stages' weights are copied in); DeepSpeed partitions it when training starts."""
    from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

    if training.deepspeed:
        unset_hf_deepspeed_config()
    try:
        return build_model(*build_args)
    finally:
        if training.deepspeed:
            set_hf_deepspeed_config(training.hf_deepspeed_config)


def _training_args(args: StageArguments, training: TrainingArguments) -> TrainingArguments:
    training.output_dir = args.out
    training.remove_unused_columns = False
    return training


def train(argv: list[str] | None = None, callbacks: list[TrainerCallback] | None = None) -> Path:
    """Trains one stage as `mmsllama-train argv` would; `callbacks` are added to the `Trainer` (e.g. timers)."""
    args, training = _parse(argv)
    stage = STAGE_TABLE[args.stage]
    set_seed(training.seed)

    overrides = json.loads(args.config_overrides) if args.config_overrides else {}
    given = {"encoders": args.encoders, "lm": args.lm, "rate-predictor": args.rate_predictor}
    parts = {name: given[name] for name in stage.inputs}
    frozen = frozen_modules(args.stage, args.lora_r)
    model = _build_without_zero3_init(training, args.preset, overrides, frozen, parts, args.init)
    processor = MMSLlamaProcessor.from_config(model.config)

    max_frames = model.config.max_video_frames
    train_utts = load_split(args.data, args.train_split, args.limit_train, args.skip_bad_samples, max_frames)
    valid_utts = load_split(args.data, args.valid_split, None, args.skip_bad_samples, max_frames)
    noise = None
    if args.noise_probability > 0 and stage.noisy:
        noise = NoiseAugmenter(training_noises(train_utts, training.seed), tuple(args.noise_snrs), args.noise_probability)
    setup = stage.setup(model, args, processor, train_utts, valid_utts, noise)

    trainer = MMSLlamaTrainer(
        model=setup.module,
        args=training,
        train_dataset=AVSRDataset(train_utts),
        eval_dataset=AVSRDataset(valid_utts),
        data_collator=setup.collator,
        eval_data_collator=setup.eval_collator,
        processing_class=processor,
        wer_utterances=setup.wer_utterances,
        wer_processor=processor,
        callbacks=callbacks,
    )
    checkpoint = latest_complete_checkpoint(args.out) if args.resume else None
    if checkpoint:
        print(f"resuming from {checkpoint}")
    if args.keep_freed_memory:  # after the data are loaded: decoding's temporary buffers do not stay resident
        keep_freed_memory()
    trainer.train(resume_from_checkpoint=checkpoint)
    out = _save_final(trainer, stage, setup.module, model, processor, args)
    if setup.after_training is not None and trainer.args.should_save:
        setup.after_training(out)
    return out


def _parse(argv: list[str] | None) -> tuple[StageArguments, TrainingArguments]:
    """`mmsllama-train`'s flags -> (StageArguments, TrainingArguments), with the stage and splits checked."""
    parser = HfArgumentParser((StageArguments, TrainingArguments))
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--output_dir" not in argv:
        argv += ["--output_dir", _value(argv, "--out")]
    args, training = parser.parse_args_into_dataclasses(args=argv)
    if args.stage not in STAGES:
        raise MMSLlamaInputError(f"--stage {args.stage!r} is not one of {STAGES}.")
    if args.valid_split == "test":
        raise MMSLlamaInputError("--valid_split must not be the test split: validate on held-out data you do not report.")
    return args, _training_args(args, training)


def _save_final(trainer, stage: Stage, module, model, processor, args: StageArguments) -> Path:
    out = Path(args.out)
    if not trainer.args.should_save:
        return out
    if stage.lora and args.lora_r:
        module.save_pretrained(out / "adapter")  # the LoRA adapter and the modules_to_save, for reference
        model = module.merge_and_unload()
    model.config.frozen_modules = list(MMSLlamaConfig.from_preset(args.preset).frozen_modules)  # for inference
    if hasattr(module, "save") and not stage.lora:
        module.save(out)
    else:
        model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "training_args.json").write_text(json.dumps({"stage": vars(args), "command": sys.argv}, indent=2, default=str))
    print(f"saved the {args.stage} stage to {out}")
    return out


def _value(argv: list[str], flag: str) -> str:
    if flag not in argv or argv.index(flag) + 1 >= len(argv):
        raise SystemExit(f"{flag} is required")
    return argv[argv.index(flag) + 1]


def main_train() -> None:
    try:
        train()
    except MMSLlamaInputError as error:
        raise SystemExit(f"error: {error}")


def _snr(value: str) -> float | None:
    return None if value.lower() == "clean" else float(value)


def eval_command(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="mmsllama-eval", description="WER per modality and SNR.")
    parser.add_argument("--model", required=True, help="a trained model folder")
    parser.add_argument("--data", required=True, help="corpus root or manifest folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--noise_split", default="valid", help="split whose utterances make the babble (not --split)")
    parser.add_argument("--snr", nargs="+", type=_snr, default=[None, 10.0, 5.0, 0.0, -5.0], help="'clean' or dB")
    parser.add_argument("--modality", nargs="+", default=["av", "a", "v"], choices=["av", "a", "v", "audio", "video"])
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N utterances only")
    parser.add_argument("--num_beams", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--out", default=None, help="where eval.json/.md/.png go (default: the model folder)")
    parser.add_argument("--no_keep_freed_memory", dest="keep_freed_memory", action="store_false",
                        help="let glibc give freed memory back to the OS (slower; see training/memory.py)")
    args = parser.parse_args(argv)
    if args.noise_split == args.split:
        raise SystemExit("--noise_split must differ from --split, so the babble holds no evaluated utterance")
    model = MMSLlamaForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).eval()
    processor = MMSLlamaProcessor.for_model(args.model, model.config)
    utterances = load_split(args.data, args.split, args.limit, max_frames=model.config.max_video_frames)
    noise = evaluation_noise(load_split(args.data, args.noise_split, EVAL_NOISE_UTTERANCES))
    if args.keep_freed_memory:  # after the data are loaded, as in `train`
        keep_freed_memory()
    report = evaluate(model, processor, utterances, noise, args.snr, args.modality, args.batch_size, args.num_beams)
    report["model"], report["split"] = str(args.model), args.split
    write_report(report, Path(args.out or args.model))
    print(format_table(report))
    return report


def main_eval() -> None:
    try:
        eval_command()
    except MMSLlamaInputError as error:
        raise SystemExit(f"error: {error}")
