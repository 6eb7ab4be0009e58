"""Fast checks that the benchmark code (benchmarks/) computes what it claims and does not rot. No timing asserts."""

import importlib.util
import math
import re

import pytest
import torch

from benchmarks import bench_training, cpu, flops, token_rate
from benchmarks.common import LRS3_TEST_TSV, Utterance, read_tsv_manifest


def test_token_rate_modes_on_even_clips():
    clips = [Utterance(50, 1.0), Utterance(100, 1.5), Utterance(76, 2.5)]
    rates = token_rate.token_rate(clips)
    seconds = sum(c.num_video_frames for c in clips) / 25
    assert rates["baseline"] == pytest.approx(25.0)
    assert rates["fusion_only"] == pytest.approx(12.5)
    no_rate = sum(max(math.floor(3 * c.num_video_frames / 25 + 1e-6), 3) for c in clips)
    with_rate = sum(
        max(math.floor(3 * c.num_video_frames / 25 * min(max(c.speech_rate, 1), 2) + 1e-6), 3) for c in clips
    )
    assert rates["qformer_no_rate"] == pytest.approx(no_rate / seconds)
    assert rates["qformer_with_rate"] == pytest.approx(with_rate / seconds)


@pytest.mark.skipif(not LRS3_TEST_TSV.exists(), reason="LRS3 test manifest not available")
def test_token_rate_on_manifest_rows():
    rows = read_tsv_manifest(LRS3_TEST_TSV, limit=4)
    assert [r.num_video_frames for r in rows] == [29, 59, 85, 49]
    assert all(r.num_words for r in rows)
    rates = token_rate.token_rate(rows)
    seconds = (29 + 59 + 85 + 49) / 25
    assert rates["baseline"] == pytest.approx((28 + 58 + 84 + 48) / seconds)
    assert rates["fusion_only"] == pytest.approx(rates["baseline"] / 2)
    # f_Q = 3: floor(3 T / 25), at least 3; with the rate label clamped to [1, 2]
    assert rates["qformer_no_rate"] == pytest.approx((3 + 7 + 10 + 5) / seconds)
    expected = sum(max(math.floor(3 * r.num_video_frames / 25 * min(max(r.speech_rate, 1), 2) + 1e-6), 3) for r in rows)
    assert rates["qformer_with_rate"] == pytest.approx(expected / seconds)


@pytest.mark.parametrize("compression", ["qformer", "baseline", "fusion_only"])
def test_flop_counter_tiny_components_sum_to_total(compression):
    model = flops.FlopModel("tiny", compression=compression)
    row = model.utterance(50, speech_rate=1.4, generated_tokens=4)
    parts = {k: row[k] for k in flops.COMPONENTS}
    assert sum(parts.values()) == row["total"]
    for key in ("audio_encoder", "vision_encoder", "projector", "llm_prefill", "llm_decode"):
        assert parts[key] > 0, key
    assert (parts["qformer"] > 0) == (compression == "qformer")
    assert row["speech_tokens"] == int(model.model.num_speech_tokens([50], [1.4])[0])


def test_flop_polynomials_match_direct_counts():
    model = flops.FlopModel("tiny")
    for frames in (23, 50):
        direct = model._cached(("video", frames), lambda: model.model.vision_encoder(
            torch.zeros(1, frames, 1, 88, 88, device="meta"), torch.ones(1, frames, dtype=torch.bool, device="meta")))  # fmt: skip
        assert model.vision_encoder(frames) == direct
    assert model.llm_decode(10, 3) == model.llm_decode_step(10) + model.llm_decode_step(11)


def test_short_whisper_window_costs_less():
    model = flops.FlopModel("tiny")
    full = model.config.num_mel_frames
    mel = flops.bucket_mel_frames(57, 1.0, full)
    assert mel == 300
    assert flops.bucket_mel_frames(10_000, 1.0, full) == full
    assert 0 < model.audio_encoder(mel) < model.audio_encoder()


def test_cpu_comparison_runs_one_iteration():
    result = cpu.compare("tiny", {1: [Utterance(30, 1.2)]}, {1: 1}, log=lambda *_: None)
    batch = result["batches"][1]
    for key in ("mms_llama", "baseline"):
        assert batch[key]["latency_s"] > 0 and batch[key]["repeats"] == 1
    assert batch["baseline"]["speech_tokens"] > batch["mms_llama"]["speech_tokens"]
    # the baseline shares the encoders and the LLM with the MMS-LLaMA model
    assert result["shared_weights_bytes"] > 0


def test_training_benchmark_writes_headline_lines(synth_corpus, tmp_path):
    configs = ["plain", "grouped"] + (["zero2"] if importlib.util.find_spec("deepspeed") else [])
    results = tmp_path / "RESULTS_training.md"
    bench_training.main(["--preset", "tiny", "--data", str(synth_corpus), "--steps", "3", "--warmup_steps", "1",
                         "--batch_size", "2", "--configs", *configs, "--out", str(results)])  # fmt: skip
    lines = re.findall(r"^(training_\w+): (\S+) (\S+)$", results.read_text(), flags=re.MULTILINE)
    metrics = bench_training.METRICS
    expected = {f"{name}_avsr_tiny_{config}": unit for config in configs for _, name, unit, _ in metrics}
    expected |= {f"{name}_ratio_avsr_tiny_{config}_plain": "x" for config in configs[1:] for _, name, _, _ in metrics}
    assert {name: unit for name, _, unit in lines} == expected
    assert all(float(value) > 0 for _, value, _ in lines)
