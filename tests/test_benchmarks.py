"""Fast checks that the benchmark code (benchmarks/) computes what it claims and does not rot. No timing asserts."""

import importlib.util
import json
import math
import re

import pytest
import torch

from benchmarks import bench_training, cpu, end_to_end, flops, token_rate
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


def test_end_to_end_compares_both_models_and_places_parts_against_the_limits(tmp_path, monkeypatch):
    monkeypatch.setattr(end_to_end, "BANDWIDTH_BYTES", 2**22)  # small probes: this is about the bookkeeping
    monkeypatch.setattr(end_to_end, "GEMV_SHAPE", (256, 512))
    monkeypatch.setattr(end_to_end, "MATMUL_SIZES", {torch.float32: 64, torch.bfloat16: 64})
    out = tmp_path / "end_to_end.json"
    results = end_to_end.main(["--presets", "tiny", "--batches", "1", "--repeats", "1", "--out", str(out)])
    assert json.loads(out.read_text())["presets"][0]["preset"] == "tiny"
    limits = results["limits"]
    assert limits["bandwidth"] == max(limits["bandwidth_sum"], limits["bandwidth_gemv_bf16"]) > 0
    rows = results["presets"][0]["rows"]
    assert [(row["window"], row["batch"]) for row in rows] == [("utterance", 1), ("full", 1)]
    for row in rows:
        assert row["throughput_ratio"] == pytest.approx(row["latency_s"]["baseline"] / row["latency_s"]["mms_llama"])
        assert row["clips_per_s"]["mms_llama"] == pytest.approx(1 / row["latency_s"]["mms_llama"])
        assert row["flops_ratio"] > 1  # the baseline's LLM reads 7x the speech tokens
    assert rows[0]["flops"]["mms_llama"] < rows[1]["flops"]["mms_llama"]  # the clip's own window, not the full one
    parts = results["presets"][0]["parts_batch1"]
    assert set(parts) == {"audio_encoder", "vision_encoder", "llm_prefill", "llm_decode_step"}
    for part in parts.values():
        assert part["seconds"] > 0 and part["flops"] > 0 and part["bytes"] > 0
        assert part["fraction_of_limit"] == pytest.approx(part["limit_s"] / part["seconds"])
    step = parts["llm_decode_step"]
    assert step["seconds_over_bandwidth_time"] == pytest.approx(step["seconds"] * limits["bandwidth"] / step["bytes"])
    assert step["flops"] < parts["llm_prefill"]["flops"]
    text = "\n".join(end_to_end.markdown_section(results, "## 5. End to end"))
    assert "| tiny (float32) | utterance | 1 |" in text and "| tiny | llm_decode_step |" in text


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
