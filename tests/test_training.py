"""Training and evaluation on the tiny preset and a tiny synthetic corpus."""

import json
import os

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from modeling_mmsllama import MMSLlamaConfig, MMSLlamaForConditionalGeneration, MMSLlamaInputError
from modeling_mmsllama.processing_mmsllama import MMSLlamaProcessor
from processing.noise import measured_snr_db
from training.cli import train
from training.augment import EncoderAugment, warp_frequency
from training.collator import AVSRCollator, TextCollator
from training.ctc import CTCVocabulary
from training.data import Utterance, load_split
from training.diagnostics import oracle_features, run, slot_cross_entropy
from training.evaluation import noisy_audio, normalize_text, token_error_rate, word_error_rate


def utterance(frames: int, text: str, seed: int = 0) -> Utterance:
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 255, (frames, 96, 96), dtype=np.uint8)
    audio = (0.1 * rng.standard_normal(frames * 640)).astype(np.float16)
    return Utterance(video, audio, text, 1.2, f"utt{seed}")


@pytest.fixture(scope="module")
def processor():
    return MMSLlamaProcessor.from_config(MMSLlamaConfig.from_preset("tiny"))


def test_collator_pads_and_labels_only_the_transcript(processor):
    batch = AVSRCollator(processor)([utterance(30, "bin blue", 0), utterance(20, "set red", 1)])
    assert batch["pixel_values_videos"].shape == (2, 30, 1, 88, 88)
    assert batch["video_mask"].sum(-1).tolist() == [30, 20]
    ids, labels = batch["input_ids"], batch["labels"]
    eos = processor.tokenizer.eos_token_id
    for row, text in enumerate(["bin blue", "set red"]):
        target = labels[row][labels[row] != -100].tolist()
        assert target == processor.tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
        assert (ids[row] == processor.speech_token_id).sum() == 1
    assert torch.equal(batch["speech_rate_labels"], torch.tensor([1.2, 1.2]))


def test_collator_modality_dropout_never_drops_both(processor):
    collator = AVSRCollator(processor, drop_audio=0.5, drop_video=0.5)
    torch.manual_seed(0)
    batch = collator([utterance(10, "a", i) for i in range(32)])
    assert (batch["has_audio"] | batch["has_video"]).all()
    assert (~batch["has_audio"]).any() and (~batch["has_video"]).any()


def test_text_collator_and_ctc_labels(processor):
    batch = TextCollator(processor.tokenizer)([utterance(5, "ab", 0), utterance(5, "abcd", 1)])
    assert batch["input_ids"][0, :4].tolist() == [1, 5, 6, 2] and batch["labels"][0, 4:].tolist() == [-100, -100]
    clips = [utterance(10, "ab c", 0), utterance(10, "abc", 1)]
    characters = CTCVocabulary.from_utterances("characters", clips)
    assert characters.symbols == ["<blank>", "a", "b", "c", "|"]
    ctc = AVSRCollator(processor, ctc=characters, with_text=False)(clips)
    assert ctc["ctc_labels"].tolist() == [[1, 2, 4, 3], [1, 2, 3, -100]]


def test_encoder_augmentation_changes_real_frames_only_and_repeats_per_seed(processor):
    clips = [utterance(30, "bin blue", 0), utterance(20, "set red", 1)]
    plain = AVSRCollator(processor, with_text=False)(clips)
    augmented = [AVSRCollator(processor, with_text=False, encoder_augment=EncoderAugment(), seed=7)(clips) for _ in "ab"]
    for name, mask in (("input_features", "input_features_mask"), ("pixel_values_videos", "video_mask")):
        assert torch.equal(augmented[0][name], augmented[1][name])  # the batch seed fixes every draw
        real = plain[mask][1].bool()
        # time is the last axis of the log-mels (M, T) and the first of the video (T, C, H, W)
        before, after = (plain[name][1], augmented[0][name][1])
        if name == "input_features":
            before, after = before.T, after.T
        assert not torch.equal(after[real], before[real])
        assert torch.equal(after[~real], before[~real])  # padding stays padding
    mels = torch.arange(80.0)[:, None].repeat(1, 4)
    assert torch.equal(warp_frequency(mels, 1.0), mels)
    assert warp_frequency(mels, 2.0)[:3, 0].tolist() == [0.0, 0.5, 1.0]  # stretched: bin k shows bin k / 2
    assert warp_frequency(mels, 0.5)[-1, 0] == 79.0  # compressed: the top bin repeats


def test_phoneme_ctc_vocabulary_decodes_and_scores(tmp_path):
    clips = [utterance(10, "bin", 0), utterance(10, "set", 1)]
    clips[0].phonemes, clips[1].phonemes = "b ɪ n", "s ɛ t"
    vocabulary = CTCVocabulary.from_utterances("phonemes", clips)
    assert vocabulary.symbols == ["<blank>", "b", "n", "s", "t", "ɛ", "ɪ"]
    assert vocabulary.targets(clips).tolist() == [[1, 6, 2], [3, 5, 4]]
    # best path: b b <blank> ɪ n n -> b ɪ n; frames past the length are ignored
    logits = torch.nn.functional.one_hot(torch.tensor([[1, 1, 0, 6, 2, 2, 3]]), len(vocabulary)).float()
    assert vocabulary.greedy_decode(logits, torch.tensor([6])) == ["b ɪ n"]
    assert token_error_rate(["b ɪ n", "s ɛ t"], ["b ɪ n", "s t"]) == pytest.approx(100 / 6)
    assert token_error_rate(["b ɪ n"], [""]) == pytest.approx(100.0)
    vocabulary.save(tmp_path)
    assert CTCVocabulary.load(tmp_path) == vocabulary
    clips[1].phonemes = None
    with pytest.raises(MMSLlamaInputError, match="no phonemes.*ctc_units characters"):
        vocabulary.targets(clips)
    clips[1].phonemes = "z"
    with pytest.raises(MMSLlamaInputError, match="not in the CTC inventory"):
        vocabulary.targets(clips)


def test_framewise_targets_follow_the_phoneme_spans(processor):
    clips = [utterance(10, "bin", 0), utterance(6, "set", 1)]
    clips[0].phonemes, clips[0].phoneme_times = "b ɪ n", "0.04-0.12 0.12-0.20 0.28-0.40"
    clips[1].phonemes, clips[1].phoneme_times = "s ɛ t", "0.00-0.08 0.08-0.16 0.16-0.24"
    vocabulary = CTCVocabulary.from_utterances("phonemes", clips)  # <blank> b n s t ɛ ɪ
    batch = AVSRCollator(processor, with_text=False, ctc=vocabulary, frame_targets=True)(clips)
    # 25 fps frame centres 0.02, 0.06, ...: silence, b b, ɪ ɪ, silence, n n n, silence
    assert batch["video_frame_labels"][0].tolist() == [0, 1, 1, 6, 6, 0, 0, 2, 2, 2]
    assert batch["video_frame_labels"][1].tolist() == [3, 3, 5, 5, 4, 4] + [-100] * 4
    assert batch["audio_frame_labels"].shape == (2, 20) and batch["audio_frame_labels"][0, :4].tolist() == [0, 0, 1, 1]
    decoded = vocabulary.greedy_decode(torch.nn.functional.one_hot(batch["video_frame_labels"][:1], len(vocabulary)),
                                       torch.tensor([10]))  # fmt: skip
    assert decoded == ["b ɪ n"]  # framewise outputs decode as CTC's best path does
    clips[1].phoneme_times = None
    with pytest.raises(MMSLlamaInputError, match=r"framewise targets need .*\.ali. file"):
        vocabulary.frame_targets(clips, torch.tensor([10, 6]), 25)


def test_word_error_rate_and_normalisation():
    assert normalize_text("Bin BLUE, at A2!") == "bin blue at a2"
    assert word_error_rate(["bin blue at a"], ["bin red at a"]) == pytest.approx(25.0)
    assert word_error_rate(["a b", "c d e"], ["a b", ""]) == pytest.approx(60.0)
    assert word_error_rate(["a b"], ["a b c"]) == pytest.approx(50.0)


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0])
def test_evaluation_noise_is_exact_and_fixed(snr):
    clip = utterance(50, "x", 3)
    noise = np.random.default_rng(1).standard_normal(16000 * 3).astype(np.float32)
    noisy = noisy_audio(clip, 7, noise, snr)
    assert measured_snr_db(clip.audio.astype(np.float64), noisy - clip.audio.astype(np.float32)) == pytest.approx(snr, abs=0.1)
    assert np.array_equal(noisy, noisy_audio(clip, 7, noise, snr))  # the same noise every run


def _losses(folder) -> list[float]:
    state = json.loads(sorted(folder.glob("checkpoint-*"))[-1].joinpath("trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def test_every_stage_learns_and_saves_a_loadable_model(synth_corpus, tmp_path):
    common = ["--preset", "tiny", "--data", str(synth_corpus), "--per_device_train_batch_size", "8", "--logging_steps", "1",
              "--save_steps", "10", "--report_to", "none", "--max_steps", "10", "--warmup_steps", "0"]  # fmt: skip
    runs = {
        "encoders": ["--learning_rate", "3e-3"],
        "lm": ["--learning_rate", "1e-2"],
        "rate-predictor": ["--encoders", str(tmp_path / "encoders"), "--learning_rate", "3e-3", "--max_steps", "40"],
        "avsr": ["--encoders", str(tmp_path / "encoders"), "--lm", str(tmp_path / "lm"),
                 "--rate-predictor", str(tmp_path / "rate-predictor"), "--learning_rate", "5e-3"],  # fmt: skip
    }
    collators = {stage: _TrainingCollator() for stage in runs}
    for stage, extra in runs.items():
        out = tmp_path / stage
        train(["--stage", stage, "--out", str(out), *common, *extra], callbacks=[collators[stage]])
        losses = _losses(out)
        assert np.mean(losses[-5:]) < np.mean(losses[:5]), (stage, losses)
        model = MMSLlamaForConditionalGeneration.from_pretrained(out)
        assert not any(p.requires_grad for p in model.audio_encoder.parameters())
    # the rate predictor learns on noisy audio too, as the encoders and the avsr stage do
    assert all(collators[stage].collator.noise.probability == 0.75 for stage in ("encoders", "rate-predictor", "avsr"))
    ctc_report = json.loads((tmp_path / "encoders" / "ctc_eval.json").read_text())
    assert ctc_report["units"] == "phonemes" and 0 <= ctc_report["audio_error_rate"] <= 100  # the corpus has .phn files
    avsr = MMSLlamaForConditionalGeneration.from_pretrained(tmp_path / "avsr")
    encoders = MMSLlamaForConditionalGeneration.from_pretrained(tmp_path / "encoders")
    assert torch.equal(avsr.audio_encoder.layers[0].fc1.weight, encoders.audio_encoder.layers[0].fc1.weight)
    assert "lora" not in " ".join(avsr.state_dict())  # the adapter is merged into the saved model
    assert (tmp_path / "avsr" / "adapter" / "adapter_config.json").exists()

    # the framewise encoder objective learns from the corpus's phoneme spans
    train(["--stage", "encoders", "--out", str(tmp_path / "framewise"), *common, "--learning_rate", "3e-3",
           "--encoder_objective", "framewise"])  # fmt: skip
    losses = _losses(tmp_path / "framewise")
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses

    # fine-tuning starts from every weight of a trained model; --augment_encoders perturbs the avsr stage's inputs too
    collators = _TrainingCollator()
    train(["--stage", "avsr", "--init", str(tmp_path / "avsr"), "--out", str(tmp_path / "finetuned"), *common,
           "--learning_rate", "1e-3", "--augment_encoders", "true"], callbacks=[collators])  # fmt: skip
    assert _losses(tmp_path / "finetuned")[0] < _losses(tmp_path / "avsr")[0]
    assert isinstance(collators.collator.encoder_augment, EncoderAugment)


class _TrainingCollator(TrainerCallback):
    """Keeps the collator of the training batches."""

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.collator = train_dataloader.collate_fn


def test_validation_on_the_test_split_is_refused(synth_corpus, tmp_path):
    with pytest.raises(MMSLlamaInputError, match="must not be the test split"):
        train(["--stage", "lm", "--preset", "tiny", "--data", str(synth_corpus), "--out", str(tmp_path),
               "--valid_split", "test", "--max_steps", "1"])  # fmt: skip


def test_a_split_is_read_from_disk_once_per_process_until_its_cache_changes(synth_corpus, monkeypatch):
    first = load_split(synth_corpus, "valid")
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("read the cache file again"))
    again = load_split(synth_corpus, "valid")
    assert again is not first and len(again) == len(first) and all(a is b for a, b in zip(again, first))
    again.pop()  # a caller's list is its own
    assert len(load_split(synth_corpus, "valid")) == len(first)
    for cache in synth_corpus.rglob(".cache/valid-*.pt"):  # rewritten by another process
        os.utime(cache, ns=(cache.stat().st_atime_ns, cache.stat().st_mtime_ns + 1))
    with pytest.raises(pytest.fail.Exception, match="read the cache file again"):
        load_split(synth_corpus, "valid")


def test_long_utterances_are_left_out(synth_corpus):
    everything = load_split(synth_corpus, "train")
    short = load_split(synth_corpus, "train", max_frames=60)
    assert len(short) < len(everything) and all(len(u.frames) <= 60 for u in short)


def test_oracle_features_are_dense_or_spiky_one_hots():
    timings = [("b", 0.0, 0.1), ("l", 0.1, 0.16), ("uː", 0.16, 0.3)]
    inventory = {"b": 0, "l": 1, "uː": 2}
    dense = oracle_features(timings, inventory, 20, 8, "dense")
    assert dense[:, :3].argmax(-1)[:15].tolist() == [0] * 5 + [1] * 3 + [2] * 7  # 20 ms frames over each span
    assert (dense > 0).sum(-1)[:15].eq(1).all() and not dense[15:].any()
    spiky = oracle_features(timings, inventory, 20, 8, "spiky")
    assert spiky[:, 7].eq(0).sum() == 3  # one frame per phoneme; the blank unit on every other frame
    assert [int(spiky[:, i].argmax()) for i in range(3)] == [2, 6, 11]  # each phoneme's middle frame


def test_slot_cross_entropy_reads_each_transcript_position_past_the_merged_speech():
    torch.manual_seed(0)
    labels = torch.full((2, 12), -100)
    labels[:, 4:11] = torch.randint(0, 9, (2, 7))  # six words and EOS after a 4-token prompt, one pad at the end
    logits = torch.randn(2, 12 + 5, 9)  # five speech tokens merged in (six in the longer row, one pad in the other)
    per_slot = slot_cross_entropy(logits, labels)
    expected = [
        torch.nn.functional.cross_entropy(logits[:, 5 + 4 + k - 1], labels[:, 4 + k]).item() for k in range(7)
    ]  # the logits predicting a label sit one position before it
    assert per_slot.shape == (7,) and torch.allclose(per_slot, torch.tensor(expected))
    labels[0, 10] = -100  # a transcript that is not one token per word
    assert slot_cross_entropy(logits, labels) is None


def test_oracle_test_bed_learns_from_oracle_features(synth_corpus):
    losses = run(str(synth_corpus), steps=12, batch_size=4, log_every=12)
    assert np.mean(losses[-4:]) < np.mean(losses[:4])


def test_demo_recipe_chains_its_steps_and_every_step_parses(tmp_path):
    from transformers import HfArgumentParser, TrainingArguments

    from training.cli import StageArguments
    from training.demo import recipe

    runs = tmp_path / "runs"
    steps, evaluation = recipe(runs, tmp_path / "data")
    assert list(steps) == ["encoders", "rate-predictor", "avsr", "avsr-low", "avsr-noise"]
    assert steps["avsr"][steps["avsr"].index("--encoders") + 1] == str(runs / "enc")
    assert steps["avsr-low"][steps["avsr-low"].index("--init") + 1] == str(runs / "avsr")
    assert steps["avsr-noise"][steps["avsr-noise"].index("--init") + 1] == str(runs / "avsr-low")
    low = json.loads(steps["avsr-low"][steps["avsr-low"].index("--config_overrides") + 1])
    assert low == {"queries_per_second": 3.4, "min_queries": 3}  # the paper's density: 3.38 tokens/s on this corpus
    assert evaluation[evaluation.index("--model") + 1] == str(runs / "avsr-noise")
    parser = HfArgumentParser((StageArguments, TrainingArguments))
    for argv in steps.values():
        parser.parse_args_into_dataclasses(args=argv + ["--output_dir", str(tmp_path / "out")])


def test_stage_table_freezes_and_loads_what_each_stage_needs():
    from training.stages import STAGE_TABLE, STAGES, frozen_modules

    later = ["qformer", "projector", "audio_adapter", "fusion"]
    assert STAGES == ("encoders", "lm", "rate-predictor", "avsr")
    assert frozen_modules("encoders", 16) == ["rate_predictor", "language_model", *later]
    assert frozen_modules("lm", 16) == ["audio_encoder", "vision_encoder", "rate_predictor", *later]
    assert frozen_modules("rate-predictor", 0) == ["audio_encoder", "vision_encoder", "language_model", *later]
    assert frozen_modules("avsr", 16) == ["audio_encoder", "vision_encoder", "rate_predictor", "language_model"]
    assert frozen_modules("avsr", 0) == ["audio_encoder", "vision_encoder", "rate_predictor"]
    assert {name: stage.inputs for name, stage in STAGE_TABLE.items()} == {
        "encoders": (), "lm": (), "rate-predictor": ("encoders",), "avsr": ("encoders", "lm", "rate-predictor"),
    }  # fmt: skip


def test_rate_predictor_stage_loss_is_the_models_rate_loss():
    from modeling_inputs import media
    from modeling_mmsllama.modeling_mmsllama import speech_rate_loss
    from training.stages import RatePredictorStage

    torch.manual_seed(0)
    model = MMSLlamaForConditionalGeneration(MMSLlamaConfig.from_preset("tiny", frozen_modules=["audio_encoder"]))
    inputs = media(model.config, [50, 30])
    labels = torch.tensor([0.8, 1.3])
    out = RatePredictorStage(model)(inputs["input_features"], inputs["input_features_mask"], labels)
    with torch.no_grad():
        rate = model.get_speech_embeddings(inputs["input_features"], inputs["input_features_mask"]).predicted_rate
    assert torch.allclose(out["loss"], speech_rate_loss(rate, labels))
    assert out["loss"].requires_grad  # the predictor trains, the frozen encoder does not
