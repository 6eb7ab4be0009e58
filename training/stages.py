"""The training stages of the demo recipe (`docs/training.md`), each a module `Trainer` can train.

- `encoders`: the audio (Whisper) and video (AV-HuBERT) encoders learn phonemes, with CTC (or on transcript characters)
  or framewise from phoneme spans; they stand in for the pretrained Whisper and AV-HuBERT of the paper.
- `lm`: the language model learns the transcripts' text.
- `rate-predictor`: the speech-rate predictor learns the normalised rate (MSE) on frozen audio features.
- `avsr`: the paper's stage: frozen encoders, rate predictor and LLM (LoRA on q/k/v/o); the length adapter, fusion,
  Q-Former and projector train.

Every stage saves a complete MMS-LLaMA folder; later stages take the parts they need from earlier ones. `STAGE_TABLE`
says, for each stage, what it keeps frozen, which earlier stages' weights it starts from, and how it builds the module
`Trainer` trains with its collators (`StageSetup`).
"""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from modeling_mmsllama import MMSLlamaConfig, MMSLlamaForConditionalGeneration
from modeling_mmsllama.errors_mmsllama import MMSLlamaInputError
from modeling_mmsllama.modeling_mmsllama import speech_rate_loss

from .augment import EncoderAugment
from .collator import AVSRCollator, TextCollator
from .ctc import BLANK_ID, CTCVocabulary
from .data import Utterance
from .evaluation import token_error_rate


PART_PREFIXES = {  # which weights each earlier stage contributes
    "encoders": ("audio_encoder.", "vision_encoder."),
    "lm": ("language_model.",),
    "rate-predictor": ("rate_predictor.",),
}
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"
TRAINED_IN_AVSR = ("audio_adapter", "video_adapter", "fusion", "qformer", "projector", "video_projector")
CTC_HEADS_FILE = "ctc_heads.safetensors"
CTC_EVAL_UTTERANCES = 200


def load_parts(model: MMSLlamaForConditionalGeneration, folder: str | os.PathLike, stage: str) -> int:
    """Copies the weights that `stage` trained from its output folder into `model`; returns how many tensors."""
    path = Path(folder) / "model.safetensors"
    if not path.exists():
        raise MMSLlamaInputError(f"{folder}: no model.safetensors; pass the output folder of the {stage} stage.")
    state = {k: v for k, v in load_file(path).items() if k.startswith(PART_PREFIXES[stage])}
    if not state:
        raise MMSLlamaInputError(f"{folder}: holds none of the {stage} stage's weights {PART_PREFIXES[stage]}.")
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if mismatched:
        raise MMSLlamaInputError(
            f"{folder}: {len(mismatched)} weights do not fit this configuration (e.g. {mismatched[0]}); "
            "train all stages with the same preset."
        )
    model.load_state_dict(state, strict=False)
    return len(state)


ENCODER_OBJECTIVES = ("ctc", "framewise")


class EncoderStageModel(nn.Module):
    """Stage `encoders`: phoneme (or character) heads over the Whisper encoder (50 Hz) and AV-HuBERT (25 Hz) outputs.

    `objective="ctc"` learns the unit sequence with CTC. `"framewise"` learns each frame's phoneme (0 between
    phonemes) with cross-entropy; its features are dense, where CTC's are spiky (the demo's CTC audio encoder gave
    blank on 87% of frames), and the Q-Former of the avsr stage learns several times faster from dense features
    (`training/diagnostics.py`). AV-HuBERT itself is trained framewise (masked prediction of frame clusters).
    """

    def __init__(self, model: MMSLlamaForConditionalGeneration, vocabulary: CTCVocabulary, objective: str = "ctc"):
        super().__init__()
        if objective not in ENCODER_OBJECTIVES:
            raise MMSLlamaInputError(f"--encoder_objective {objective!r} is not one of {ENCODER_OBJECTIVES}.")
        self.model = model
        self.vocabulary = vocabulary
        self.objective = objective
        self.audio_head = nn.Linear(model.config.audio_config.d_model, len(vocabulary))
        self.video_head = nn.Linear(model.config.vision_config.hidden_size, len(vocabulary))

    def logits(self, input_features, pixel_values_videos, video_mask) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{"audio": (logits (B, 2T, V), lengths), "video": (logits (B, T, V), lengths)}."""
        num_frames = video_mask.long().sum(-1)
        audio = self.model.encode_audio(input_features, num_frames)  # (B, L, Da) at 50 Hz
        audio_lengths = torch.clamp(2 * num_frames, max=audio.shape[1])
        video = self.model.encode_video(pixel_values_videos, video_mask)  # (B, T, Dv)
        return {"audio": (self.audio_head(audio), audio_lengths), "video": (self.video_head(video), num_frames)}

    @staticmethod
    def _ctc(logits: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (L, B, V)
        target_lengths = (labels != -100).sum(-1)
        targets = labels.clamp(min=0)
        return F.ctc_loss(log_probs, targets, lengths, target_lengths, blank=BLANK_ID, zero_infinity=True)

    @staticmethod
    def _framewise(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        frames = min(logits.shape[1], labels.shape[1])
        return F.cross_entropy(logits[:, :frames].float().flatten(0, 1), labels[:, :frames].flatten(), ignore_index=-100)

    def forward(self, input_features, pixel_values_videos, video_mask, ctc_labels, audio_frame_labels=None,
                video_frame_labels=None, **unused):  # fmt: skip
        outputs = self.logits(input_features, pixel_values_videos, video_mask)
        if self.objective == "framewise":
            audio_loss = self._framewise(outputs["audio"][0], audio_frame_labels)
            video_loss = self._framewise(outputs["video"][0], video_frame_labels)
        else:
            audio_loss = self._ctc(*outputs["audio"], ctc_labels)
            video_loss = self._ctc(*outputs["video"], ctc_labels)
        return {"loss": audio_loss + video_loss, "audio_loss": audio_loss.detach(), "video_loss": video_loss.detach()}

    @torch.no_grad()
    def error_rates(self, utterances: list[Utterance], collator, batch_size: int = 16) -> dict[str, float]:
        """Greedy-decoded unit error rate (%) of each encoder on `utterances` (clean, both streams present); framewise
        outputs decode the same way (repeats merged, frames of class 0 dropped)."""
        was_training = self.training
        self.eval()
        hypotheses = {"audio": [], "video": []}
        for start in range(0, len(utterances), batch_size):
            batch = collator(utterances[start : start + batch_size])
            outputs = self.logits(batch["input_features"], batch["pixel_values_videos"], batch["video_mask"])
            for stream, (logits, lengths) in outputs.items():
                hypotheses[stream] += self.vocabulary.greedy_decode(logits, lengths)
        self.train(was_training)
        references = [self.vocabulary.reference(u) for u in utterances]
        return {stream: token_error_rate(references, hyps) for stream, hyps in hypotheses.items()}

    def save(self, folder: str | os.PathLike) -> None:
        self.model.save_pretrained(folder)
        heads = {f"audio_head.{k}": v for k, v in self.audio_head.state_dict().items()}
        heads |= {f"video_head.{k}": v for k, v in self.video_head.state_dict().items()}
        save_file({k: v.contiguous() for k, v in heads.items()}, Path(folder) / CTC_HEADS_FILE)
        self.vocabulary.save(folder)


class LanguageModelStage(nn.Module):
    """Stage `lm`: the Llama model on transcripts alone."""

    def __init__(self, model: MMSLlamaForConditionalGeneration):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels, **unused):
        return {"loss": self.model.language_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss}

    def save(self, folder: str | os.PathLike) -> None:
        self.model.save_pretrained(folder)


class RatePredictorStage(nn.Module):
    """Stage `rate-predictor`: MSE between the predictor's output on frozen audio features and the rate label."""

    def __init__(self, model: MMSLlamaForConditionalGeneration):
        super().__init__()
        self.model = model

    def forward(self, input_features, input_features_mask, speech_rate_labels, video_mask=None, **unused):
        num_frames = self.model.count_frames(input_features_mask, None, None) if video_mask is None else video_mask.sum(-1)
        with torch.no_grad():
            audio = self.model.encode_audio(input_features, num_frames)[:, : 2 * int(num_frames.max())]
        rate = self.model.predict_speech_rate(audio, num_frames)
        loss = speech_rate_loss(rate, speech_rate_labels)
        return {"loss": loss, "mean_abs_error": (rate.detach() - speech_rate_labels).abs().mean()}

    def save(self, folder: str | os.PathLike) -> None:
        self.model.save_pretrained(folder)


def build_model(preset: str, config_overrides: dict, frozen: list[str], parts: dict[str, str | None],
                init: str | None = None):  # fmt: skip
    """A model of `preset` (or the trained model in `init`, to fine-tune it) with the given frozen modules and the
    weights of earlier stages loaded."""
    if init:
        config = MMSLlamaConfig.from_pretrained(init, frozen_modules=frozen, **config_overrides)
        model = MMSLlamaForConditionalGeneration.from_pretrained(init, config=config, dtype=torch.float32)
    else:
        config = MMSLlamaConfig.from_preset(preset, frozen_modules=frozen, **config_overrides)
        model = MMSLlamaForConditionalGeneration(config)
    for stage, folder in parts.items():
        if folder:
            loaded = load_parts(model, folder, stage)
            print(f"loaded {loaded} tensors of the {stage} stage from {folder}")
    model.freeze(frozen)
    return model


def add_lora(model: MMSLlamaForConditionalGeneration, r: int, alpha: int, dropout: float):
    """LoRA on the LLM's q/k/v/o projections; the non-LLM parts trained in this stage become `modules_to_save`."""
    from peft import LoraConfig, get_peft_model

    trained = [name for name in TRAINED_IN_AVSR if getattr(model, name, None) is not None]
    trained = [name for name in trained if any(True for _ in getattr(model, name).parameters())]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS,
                        modules_to_save=trained)  # fmt: skip
    return get_peft_model(model, config)


@dataclass
class StageSetup:
    """What `Trainer` gets for one stage: the module it trains, the training and evaluation collators, the validation
    utterances transcribed for WER (avsr), and a report to run on the saved folder after training (encoders)."""

    module: nn.Module
    collator: Callable
    eval_collator: Callable
    wer_utterances: list[Utterance] | None = None
    after_training: Callable[[Path], None] | None = None


@dataclass(frozen=True)
class Stage:
    """One stage of the recipe.

    Attributes:
        frozen: the top-level modules it keeps frozen.
        inputs: the earlier stages whose weights it starts from (`load_parts`).
        setup: `(model, args, processor, train_utterances, valid_utterances, noise) -> StageSetup`, where `args` are
            the `StageArguments` of `mmsllama-train`.
        noisy: whether its training audio gets noise (`--noise_probability`).
        lora: whether `--lora_r` > 0 puts LoRA on its (then frozen) LLM.
    """

    frozen: tuple[str, ...]
    inputs: tuple[str, ...]
    setup: Callable[..., StageSetup]
    noisy: bool = False
    lora: bool = False


def _ctc_units(requested: str, utterances: list[Utterance]) -> str:
    if requested != "auto":
        return requested
    return "phonemes" if all(u.phonemes for u in utterances) else "characters"


def report_ctc_error_rates(module: EncoderStageModel, utterances, collator, out: Path, split: str) -> None:
    """Greedy (best-path) unit error rates of both encoders on clean held-out utterances, printed and saved as
    ctc_eval.json: the check that the encoders are good enough before the avsr stage."""
    rates = module.error_rates(utterances, collator)
    unit = {"phonemes": "phone", "characters": "character"}[module.vocabulary.units]
    report = {"split": split, "utterances": len(utterances), "units": module.vocabulary.units,
              **{f"{stream}_error_rate": round(rate, 2) for stream, rate in rates.items()}}  # fmt: skip
    (out / "ctc_eval.json").write_text(json.dumps(report, indent=2))
    print(f"{unit} error rate on {len(utterances)} clean {split} utterances: "
          f"audio {rates['audio']:.1f}%, video {rates['video']:.1f}%")  # fmt: skip


def _setup_encoders(model, args, processor, train_utts, valid_utts, noise) -> StageSetup:
    # the inventory covers the validation labels too, so a unit rare enough to miss the training split is no error
    vocabulary = CTCVocabulary.from_utterances(_ctc_units(args.ctc_units, train_utts), train_utts + valid_utts)
    print(f"encoders: {args.encoder_objective} on {len(vocabulary) - 1} {vocabulary.units}")
    module = EncoderStageModel(model, vocabulary, args.encoder_objective)
    framewise = args.encoder_objective == "framewise"
    augment = EncoderAugment() if args.augment_encoders else None
    collator = AVSRCollator(processor, noise, augment=args.augment_video, with_text=False, ctc=vocabulary,
                            encoder_augment=augment, frame_targets=framewise)  # fmt: skip
    eval_collator = AVSRCollator(processor, with_text=False, ctc=vocabulary, frame_targets=framewise)
    report = partial(report_ctc_error_rates, module, valid_utts[:CTC_EVAL_UTTERANCES], eval_collator,
                     split=args.valid_split)  # called with the saved folder
    return StageSetup(module, collator, eval_collator, after_training=report)


def _setup_lm(model, args, processor, train_utts, valid_utts, noise) -> StageSetup:
    collator = TextCollator(processor.tokenizer)
    return StageSetup(LanguageModelStage(model), collator, collator)


def _setup_rate_predictor(model, args, processor, train_utts, valid_utts, noise) -> StageSetup:
    # trained on noisy audio too: the avsr stage and users ask it for the rate of noisy speech
    collator = AVSRCollator(processor, noise, with_text=False, modality="audio")
    return StageSetup(RatePredictorStage(model), collator, AVSRCollator(processor, with_text=False, modality="audio"))


def _setup_avsr(model, args, processor, train_utts, valid_utts, noise) -> StageSetup:
    module = add_lora(model, args.lora_r, args.lora_alpha, args.lora_dropout) if args.lora_r else model
    augment = EncoderAugment() if args.augment_encoders else None
    collator = AVSRCollator(processor, noise, args.drop_audio, args.drop_video, args.augment_video,
                            encoder_augment=augment)  # fmt: skip
    return StageSetup(module, collator, AVSRCollator(processor), wer_utterances=valid_utts[: args.wer_samples])


_LATER_PARTS = ("qformer", "projector", "audio_adapter", "fusion")  # what only the avsr stage trains
STAGE_TABLE = {
    "encoders": Stage(("rate_predictor", "language_model") + _LATER_PARTS, (), _setup_encoders, noisy=True),
    "lm": Stage(("audio_encoder", "vision_encoder", "rate_predictor") + _LATER_PARTS, (), _setup_lm),
    "rate-predictor": Stage(("audio_encoder", "vision_encoder", "language_model") + _LATER_PARTS, ("encoders",),
                            _setup_rate_predictor, noisy=True),
    "avsr": Stage(("audio_encoder", "vision_encoder", "rate_predictor"), ("encoders", "lm", "rate-predictor"),
                  _setup_avsr, noisy=True, lora=True),
}  # fmt: skip
STAGES = tuple(STAGE_TABLE)


def frozen_modules(stage: str, lora_r: int) -> list[str]:
    """The modules a stage keeps frozen (the LLM too when the stage puts LoRA on it, `lora_r` > 0)."""
    entry = STAGE_TABLE[stage]
    return list(entry.frozen) + (["language_model"] if entry.lora and lora_r else [])


__all__ = ["STAGES", "STAGE_TABLE", "Stage", "StageSetup", "ENCODER_OBJECTIVES", "EncoderStageModel",
           "LanguageModelStage", "RatePredictorStage", "build_model", "add_lora", "load_parts", "frozen_modules",
           "report_ctc_error_rates"]
