"""Confidence and no speech: transcript log-probabilities from `generate`, the pipeline's per-chunk `avg_logprob` and
`no_speech` decision, and the CLI's JSON."""

import json

import numpy as np
import pytest
import torch

from media_factory import tone, write_clip
from modeling_mmsllama import MMSLlamaConfig, MMSLlamaForConditionalGeneration, MMSLlamaProcessor
from modeling_mmsllama.pipeline_mmsllama import (
    NO_SPEECH_AUDIO_DB,
    NO_SPEECH_MOTION,
    MMSLlamaASRPipeline,
    is_no_speech,
    mouth_motion,
)


GREEDY = {"num_beams": 1, "max_new_tokens": 4}
RNG = np.random.default_rng(0)
SPEECH_LIKE = (0.3 * RNG.standard_normal(50 * 640)).astype(np.float32)  # loud audio: 2 s
MOVING = RNG.integers(0, 256, (50, 96, 96), dtype=np.uint8)  # crops that change a lot
STILL = np.repeat(MOVING[:1], 50, axis=0)
ROOM_TONE = (10 ** (-55 / 20) * RNG.standard_normal(50 * 640)).astype(np.float32)


@pytest.fixture(scope="module")
def model_and_processor():
    torch.manual_seed(0)
    model = MMSLlamaForConditionalGeneration(MMSLlamaConfig.from_preset("tiny")).eval()
    return model, MMSLlamaProcessor.from_preset("tiny")


def test_generate_gives_scores_and_transcript_logprobs(model_and_processor):
    model, processor = model_and_processor
    inputs = processor(videos=[MOVING, MOVING[:30]], audio=[SPEECH_LIKE, SPEECH_LIKE[: 30 * 640]], sampling_rate=16_000)
    greedy = model.generate(
        **inputs, max_new_tokens=5, do_sample=False, return_dict_in_generate=True, output_scores=True
    )
    assert torch.equal(greedy.sequences, model.generate(**inputs, max_new_tokens=5, do_sample=False))
    steps = torch.stack([torch.log_softmax(s, -1) for s in greedy.scores], 1)  # (B, steps, vocab)
    chosen = steps.gather(-1, greedy.sequences[:, :, None])[..., 0]
    eos = model.config.text_config.eos_token_id
    expected = []
    for row, tokens in zip(chosen, greedy.sequences.tolist()):
        length = tokens.index(eos) + 1 if eos in tokens else len(tokens)
        expected.append(row[:length].mean())
    torch.testing.assert_close(model.transcript_logprobs(greedy), torch.stack(expected))
    beam = model.generate(**inputs, max_new_tokens=5, num_beams=3, do_sample=False, length_penalty=1.0,
                          return_dict_in_generate=True, output_scores=True)  # fmt: skip
    torch.testing.assert_close(model.transcript_logprobs(beam), beam.sequences_scores)
    assert (model.transcript_logprobs(beam) <= 0).all()


def test_no_speech_rule_and_mouth_motion():
    assert NO_SPEECH_AUDIO_DB == -45.0 and NO_SPEECH_MOTION == 1.0
    assert is_no_speech(audio_db=-50.0, motion=0.2, avg_logprob=-0.01, logprob_threshold=-0.2)  # quiet and still
    assert is_no_speech(audio_db=-50.0, motion=None, avg_logprob=-0.01, logprob_threshold=None)  # audio only, quiet
    assert not is_no_speech(audio_db=-50.0, motion=3.0, avg_logprob=-0.01, logprob_threshold=-0.2)  # lips move
    assert not is_no_speech(audio_db=-20.0, motion=0.0, avg_logprob=-0.01, logprob_threshold=-0.2)  # audible
    assert is_no_speech(audio_db=-20.0, motion=3.0, avg_logprob=-0.5, logprob_threshold=-0.2)  # a guess
    assert not is_no_speech(audio_db=-20.0, motion=3.0, avg_logprob=-0.5, logprob_threshold=None)
    video = torch.zeros(2, 4, 1, 8, 8)
    video[0, 1::2] = 10 / (0.165 * 255)  # crops alternating by 10 gray levels
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    torch.testing.assert_close(mouth_motion(video, mask), torch.tensor([10.0, 0.0]))


@pytest.fixture(scope="module")
def asr(tiny_model_folder):
    model = MMSLlamaForConditionalGeneration.from_pretrained(tiny_model_folder).eval()
    processor = MMSLlamaProcessor.from_pretrained(tiny_model_folder, trust_remote_code=True)
    return MMSLlamaASRPipeline(model=model, processor=processor)


def test_pipeline_marks_chunks_without_speech(asr):
    still = {"video": STILL, "audio": ROOM_TONE, "sampling_rate": 16_000}
    speaking = {"video": MOVING, "audio": SPEECH_LIKE, "sampling_rate": 16_000}
    still_result, speaking_result = asr([still, speaking], **GREEDY)
    (still_chunk,) = still_result["chunks"]
    (speaking_chunk,) = speaking_result["chunks"]
    assert still_chunk["no_speech"] is True and still_chunk["text"] == "" and still_result["text"] == ""
    assert speaking_chunk["no_speech"] is False  # the tiny model's config sets no log-probability threshold
    assert speaking_chunk["avg_logprob"] < 0 and speaking_chunk["text"] == speaking_result["text"]
    kept = asr(still, keep_no_speech=True, **GREEDY)
    assert kept["chunks"][0]["no_speech"] is True and kept["text"] == kept["chunks"][0]["text"]
    assert kept["chunks"][0]["avg_logprob"] == still_chunk["avg_logprob"]
    # with a threshold above every log-probability, each transcript is a guess
    guessed = asr(speaking, no_speech_logprob=0.0, **GREEDY)
    assert guessed["chunks"][0]["no_speech"] is True and guessed["text"] == ""
    # a still mouth with audible audio, or a moving mouth with quiet audio, may be speech
    assert not asr({"video": STILL, "audio": SPEECH_LIKE, "sampling_rate": 16_000}, **GREEDY)["chunks"][0]["no_speech"]
    assert not asr({"video": MOVING, "audio": ROOM_TONE, "sampling_rate": 16_000}, **GREEDY)["chunks"][0]["no_speech"]
    assert asr(ROOM_TONE, sampling_rate=16_000, **GREEDY)["chunks"][0]["no_speech"]
    assert asr({"video": STILL}, **GREEDY)["chunks"][0]["no_speech"]
    silence = asr(np.zeros(32_000, np.float32), sampling_rate=16_000, **GREEDY)["chunks"][0]  # digital silence
    assert silence == {"timestamp": (0.0, 2.0), "text": "", "avg_logprob": None, "no_speech": True}


def test_model_config_sets_the_log_probability_threshold(tiny_model_folder):
    model = MMSLlamaForConditionalGeneration.from_pretrained(tiny_model_folder).eval()
    processor = MMSLlamaProcessor.from_pretrained(tiny_model_folder, trust_remote_code=True)
    model.config.no_speech_logprob = 0.0
    result = MMSLlamaASRPipeline(model=model, processor=processor)({"video": MOVING, "audio": SPEECH_LIKE,
                                                                    "sampling_rate": 16_000}, **GREEDY)  # fmt: skip
    assert result["chunks"][0]["no_speech"] is True


def test_cli_json_reports_confidence_and_no_speech(tiny_export, tmp_path, capsys):
    from hub_cards.cli import EXIT_OK, main

    write_clip(tmp_path / "still.mp4", np.repeat(np.full((1, 96, 96, 3), 120, np.uint8), 25, axis=0), 25,
               tone(1.0, 16_000, amplitude=10 ** (-55 / 20)))  # fmt: skip
    write_clip(tmp_path / "loud.mp4", np.repeat(MOVING[:25, :, :, None], 3, axis=-1), 25, SPEECH_LIKE[:16_000])
    fast = ["--num-beams", "1", "--max-new-tokens", "4", "--quiet", "--format", "json", "--model", str(tiny_export)]
    assert main(["transcribe", str(tmp_path / "still.mp4"), *fast]) == EXIT_OK
    (chunk,) = json.loads(capsys.readouterr().out)["chunks"]
    assert chunk["no_speech"] is True and chunk["text"] == "" and chunk["avg_logprob"] <= 0
    assert main(["transcribe", str(tmp_path / "loud.mp4"), *fast, "--no-speech-logprob", "0"]) == EXIT_OK
    (guess,) = json.loads(capsys.readouterr().out)["chunks"]
    assert guess["no_speech"] is True and guess["text"] == ""
    assert main(["transcribe", str(tmp_path / "loud.mp4"), *fast, "--no-speech-logprob", "0",
                 "--keep-no-speech"]) == EXIT_OK  # fmt: skip
    kept = json.loads(capsys.readouterr().out)
    assert kept["chunks"][0]["no_speech"] is True and kept["text"] == kept["chunks"][0]["text"]
    assert kept["chunks"][0]["avg_logprob"] == guess["avg_logprob"]
