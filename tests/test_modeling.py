"""The MMS-LLaMA model on tiny random configs: shapes, allocation, modes, training, generation, errors."""

import pytest
import torch

from modeling_inputs import BOS, EOS, PROMPT, SPEECH, media, prompts, tiny_model
from modeling_mmsllama import MMSLlamaConfig, MMSLlamaConfigError, MMSLlamaInputError
from modeling_mmsllama.modeling_mmsllama import time_stretch, window_attention_mask


# -- configuration -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny", "demo", "paper-1b", "paper-3b", "paper-8b"])
def test_presets_build_consistent_configs(name):
    config = MMSLlamaConfig.from_preset(name)
    assert config.qformer_config.encoder_hidden_size == config.fused_hidden_size
    assert config.max_queries >= config.queries_per_second * config.max_video_frames / 25 * config.rate_clamp[1]
    assert config.max_video_frames * 4 <= config.num_mel_frames


def test_paper_3b_has_reference_sizes():
    config = MMSLlamaConfig.from_preset("paper-3b")
    assert (config.audio_config.d_model, config.audio_config.encoder_layers) == (1024, 24)
    assert (config.vision_config.hidden_size, config.vision_config.num_hidden_layers) == (1024, 24)
    assert (config.qformer_config.hidden_size, config.qformer_config.num_hidden_layers) == (1024, 2)
    assert config.qformer_config.encoder_hidden_size == 2048
    assert (config.text_config.hidden_size, config.text_config.num_hidden_layers) == (3072, 28)
    assert config.max_queries == 120 and config.min_queries == 3 and config.queries_per_second == 3


def test_preset_overrides_and_unknown_keys():
    config = MMSLlamaConfig.from_preset("tiny", compression="baseline", text_config={"num_hidden_layers": 3})
    assert config.compression == "baseline" and config.text_config.num_hidden_layers == 3
    assert config.text_config.hidden_size == 32  # the rest of the sub-config is kept
    with pytest.raises(MMSLlamaConfigError, match="Unknown config keys"):
        MMSLlamaConfig.from_preset("tiny", queries_per_secnd=4)
    with pytest.raises(MMSLlamaConfigError, match="Unknown preset"):
        MMSLlamaConfig.from_preset("huge")
    with pytest.raises(MMSLlamaConfigError, match="compression"):
        MMSLlamaConfig.from_preset("tiny", compression="pooling")
    with pytest.raises(MMSLlamaConfigError, match="equal audio and video widths"):
        MMSLlamaConfig.from_preset("tiny", fusion="add", vision_config={"hidden_size": 16})


def test_config_round_trip(tmp_path):
    config = MMSLlamaConfig.from_preset("tiny", qformer_window=1.5, rate_clamp=[0.5, 2.5])
    config.save_pretrained(tmp_path)
    loaded = MMSLlamaConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert "torch_dtype" not in (tmp_path / "config.json").read_text()


# -- query allocation ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frames, rate, expected",
    [
        (25, None, 3),  # one second, f_Q = 3
        (75, None, 9),  # 3 * 75 / 25 = 9 exactly, not 8
        (37, None, 4),  # 4.44 -> 4 (T not a multiple of 25)
        (60, 0.4, 7),  # rate below 1 is clamped to 1: 7.2 -> 7
        (60, 1.5, 10),  # 10.8 -> 10
        (60, 3.0, 14),  # rate above 2 is clamped to 2: 14.4 -> 14
        (10, 1.0, 3),  # 1.2 -> minimum of 3 queries
        (1, 2.0, 3),
    ],
)
def test_allocation_formula(frames, rate, expected):
    model = tiny_model()
    assert model.num_speech_tokens([frames], None if rate is None else [rate]).tolist() == [expected]


def test_allocation_without_rate_predictor_ignores_rate():
    model = tiny_model(use_rate_predictor=False)
    assert not hasattr(model, "rate_predictor")
    assert model.num_speech_tokens([60, 60], [1.0, 2.0]).tolist() == [7, 7]


def test_time_stretch_lengths_and_identity():
    features = torch.randn(2, 10, 4)
    stretched = time_stretch(features, torch.tensor([10, 6]), torch.tensor([10, 12]))
    assert stretched.shape == (2, 12, 4)
    assert torch.equal(stretched[0, :10], features[0])  # factor 1 leaves features unchanged
    assert torch.all(stretched[0, 10:] == 0)
    assert torch.allclose(stretched[1, 0], features[1, 0]) and torch.allclose(stretched[1, -1], features[1, 5])


def test_window_mask_limits_each_query_to_its_slot():
    num_queries, num_frames = torch.tensor([4, 2]), torch.tensor([40, 10])
    mask = window_attention_mask(num_queries, num_frames, 4, 40, window=0.5)
    assert mask.shape == (2, 4, 40)
    assert mask[0, 0, :10].all() and not mask[0, 0, 11:].any()  # slot 0 covers frames 0..9 (+/- half a slot)
    assert mask[0, 3, 30:].all() and not mask[0, 3, :29].any()
    assert not mask[1, :, 10:].any()  # padded frames are never attended
    assert mask[1, 2:, :10].all()  # padded queries see every real frame (no empty attention rows)
    assert window_attention_mask(num_queries, num_frames, 4, 40, window=None)[0].all()


# -- forward: shapes, masks, modes ---------------------------------------------------------------------------------------


def test_speech_embeddings_shapes_and_masks():
    model = tiny_model()
    speech = model.get_speech_embeddings(**media(model.config, [60, 37]))
    assert speech.embeddings.shape == (2, 7, model.config.text_config.hidden_size)
    assert speech.num_speech_tokens.tolist() == [7, 4]
    assert speech.mask.sum(-1).tolist() == [7, 4]
    assert speech.predicted_rate.shape == (2,) and speech.modality == "av"


def test_projector_output_norm_starts_speech_tokens_at_the_text_embedding_scale():
    model = tiny_model(projector_output_norm=True)
    with torch.no_grad():
        speech = model.get_speech_embeddings(**media(model.config, [60, 37]))
    rms = speech.embeddings[speech.mask].pow(2).mean(-1).sqrt()  # (N,), one per speech token
    scale = model.config.text_config.initializer_range  # the text embeddings' RMS at initialisation
    assert rms.tolist() == pytest.approx([scale] * len(rms), rel=0.1)
    assert tiny_model().projector.norm is None  # the paper's projector: two Linear layers and nothing else


def test_pooled_queries_start_from_their_windows_average():
    model = tiny_model(qformer_window=0.5, qformer_pooled_queries=True).eval()
    qformer = model.qformer
    features = torch.randn(2, 40, model.config.fused_hidden_size)
    num_frames, num_queries = torch.tensor([40, 20]), torch.tensor([4, 2])
    seen = {}
    handle = qformer.bert.register_forward_pre_hook(lambda module, args, kwargs: seen.update(kwargs), with_kwargs=True)
    with torch.no_grad():
        qformer(features, num_frames, num_queries)
    handle.remove()
    # query 1 of sample 0 sees its slot, frames 10..19: its query token plus their average
    expected = qformer.query_tokens[0, 1] + qformer.pool_projection(features[0, 10:20].mean(0))
    assert torch.allclose(seen["query_embeds"][0, 1], expected, atol=1e-6)
    # a padded query of sample 1 averages every real frame, never the padding
    expected = qformer.query_tokens[0, 3] + qformer.pool_projection(features[1, :20].mean(0))
    assert torch.allclose(seen["query_embeds"][1, 3], expected, atol=1e-6)
    assert tiny_model().qformer.pool_projection is None  # the paper's Q-Former: learned query tokens only


@pytest.mark.parametrize("overrides", [{}, {"qformer_window": 1.5, "qformer_pooled_queries": True,
                                            "qformer_position_encoding": True}])  # fmt: skip
def test_lean_qformer_matches_blip2_qformer_model(overrides):
    # the eval-mode shortcut through the Q-Former's modules computes what Blip2QFormerModel computes, padded queries
    # (two lengths in one batch) and batch 1 (no self-attention mask) alike
    model = tiny_model(**overrides)
    batch = {**media(model.config, [60, 37]), **prompts(batch=2)}
    outputs = {}
    with torch.no_grad():
        for lean in (False, True):
            model.qformer.lean_inference = lean
            outputs[lean] = (model.get_speech_embeddings(**media(model.config, [60, 37])),
                             model.get_speech_embeddings(**media(model.config, [45])), model(**batch).logits)  # fmt: skip
    (hf_pair, hf_single, hf_logits), (pair, single, logits) = outputs[False], outputs[True]
    assert pair.num_speech_tokens.tolist() == hf_pair.num_speech_tokens.tolist()
    assert torch.allclose(pair.embeddings, hf_pair.embeddings, atol=1e-6)
    assert torch.allclose(single.embeddings, hf_single.embeddings, atol=1e-6)
    assert torch.allclose(logits, hf_logits, atol=1e-5)
    model.qformer.lean_inference = True
    assert model.qformer._can_run_lean() and not model.train().qformer._can_run_lean()  # training: the model itself


def test_rate_predictor_starts_at_the_mean_rate():
    # a head that starts negative for every input would leave the ReLU dead and the predictor untrainable
    model = tiny_model()
    assert model.rate_predictor.head.bias.item() == 1.0


def test_forward_expands_placeholder_and_masks_labels():
    model = tiny_model()
    batch = {**media(model.config, [50, 30]), **prompts([[10, 11, 12], [13]])}
    out = model(**batch)
    tokens = out.num_speech_tokens.tolist()
    assert tokens == [6, 3]
    length = batch["input_ids"].shape[1] - 1 + max(tokens)
    assert out.logits.shape == (2, length, model.config.text_config.vocab_size)
    assert out.attention_mask.sum(-1).tolist() == [len(PROMPT) - 1 + 6 + 4, len(PROMPT) - 1 + 3 + 2]
    assert torch.isfinite(out.loss) and out.loss == out.lm_loss
    _, _, _, labels = model.merge_speech_embeddings(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                          model.get_speech_embeddings(**media(model.config, [50, 30])))  # fmt: skip
    assert labels[0, -4:].tolist() == [10, 11, 12, EOS] and labels[1, -2:].tolist() == [13, EOS]
    assert (labels[:, :-4] == -100).all() and (labels[1, :-2] == -100).all()


@pytest.mark.parametrize("compression, per_second", [("baseline", 25.0), ("fusion_only", 12.5), ("qformer", 3.0)])
def test_compression_modes_token_rates(compression, per_second):
    model = tiny_model(compression=compression, use_rate_predictor=False)
    out = model(**media(model.config, [100, 50]), **prompts(batch=2))  # 4 s and 2 s
    assert out.num_speech_tokens.tolist() == [int(4 * per_second), int(2 * per_second)]
    assert model.num_speech_tokens([100, 50]).tolist() == out.num_speech_tokens.tolist()


def test_odd_lengths_in_convolutional_modes():
    for compression in ("baseline", "fusion_only"):
        model = tiny_model(compression=compression)
        out = model(**media(model.config, [1, 7]), **prompts(batch=2))
        assert out.num_speech_tokens.tolist() == model.num_speech_tokens([1, 7]).tolist()


@pytest.mark.parametrize("fusion", ["concat", "add", "cross_attention"])
def test_fusions_are_per_sample(fusion):
    """A sample's output does not depend on the other samples of its batch (the reference's cross-attention
    fusion attended across the batch)."""
    model = tiny_model(fusion=fusion)
    batch = {**media(model.config, [40, 25]), **prompts(batch=2)}
    together = model(**batch).logits[0, -1]
    alone = {k: v[:1] for k, v in batch.items()}
    alone["pixel_values_videos"], alone["video_mask"] = alone["pixel_values_videos"][:, :40], alone["video_mask"][:, :40]
    assert torch.allclose(model(**alone).logits[0, -1], together, atol=1e-5)


def test_audio_only_and_video_only():
    model = tiny_model()
    inputs = media(model.config, [50, 30])
    audio_only = model(input_features=inputs["input_features"], input_features_mask=inputs["input_features_mask"],
                       **prompts(batch=2))  # fmt: skip
    video_only = model(pixel_values_videos=inputs["pixel_values_videos"], video_mask=inputs["video_mask"],
                       **prompts(batch=2))  # fmt: skip
    both = model(**inputs, **prompts(batch=2))
    assert (audio_only.modality, video_only.modality, both.modality) == ("audio", "video", "av")
    assert audio_only.num_speech_tokens.tolist() == both.num_speech_tokens.tolist() == [6, 3]
    assert video_only.num_speech_tokens.tolist() == [6, 3] and video_only.speech_rate is None
    assert not torch.allclose(audio_only.logits, both.logits)


def test_given_speech_rate_overrides_predictor():
    model = tiny_model()
    out = model(**media(model.config, [50]), **prompts(batch=1), speech_rate=torch.tensor([2.0]))
    assert out.num_speech_tokens.tolist() == [12]


# -- training ------------------------------------------------------------------------------------------------------------


def test_optimizer_steps_drive_loss_down():
    model = tiny_model(frozen_modules=[]).train()
    batch = {**media(model.config, [40, 30]), **prompts([[10, 11, 12, 13], [14, 15]])}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(12):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_frozen_modules_get_no_gradients_and_stay_in_eval():
    model = tiny_model().train()
    assert not model.audio_encoder.training and not model.vision_encoder.training and model.qformer.training
    model(**media(model.config, [30]), **prompts([[10, 11]])).loss.backward()
    assert all(p.grad is None for p in model.audio_encoder.parameters())
    assert all(p.grad is None for p in model.vision_encoder.parameters())
    assert model.qformer.query_tokens.grad is not None and model.projector.linear_1.weight.grad is not None


def test_rate_loss_added_when_predictor_trainable():
    model = tiny_model(frozen_modules=["audio_encoder", "vision_encoder"])
    out = model(**media(model.config, [30]), **prompts([[10]]), speech_rate_labels=torch.tensor([1.3]))
    assert out.rate_loss is not None and torch.allclose(out.loss, out.lm_loss + out.rate_loss)
    frozen = tiny_model()
    out = frozen(**media(frozen.config, [30]), **prompts([[10]]), speech_rate_labels=torch.tensor([1.3]))
    assert out.rate_loss is None


def test_activation_checkpointing_trains():
    model = tiny_model(frozen_modules=[]).train()
    model.activation_checkpointing_enable()
    loss = model(**media(model.config, [30]), **prompts([[10, 11]])).loss
    loss.backward()
    assert model.language_model.model.layers[0].self_attn.q_proj.weight.grad is not None


# -- generation ----------------------------------------------------------------------------------------------------------


def test_token_budget_per_call_and_precomputed_speech_embeddings():
    model = tiny_model(seed=1)
    assert model.num_speech_tokens([60], [1.5], queries_per_second=1.5).tolist() == [5]  # 1.5 * 2.4 * 1.5 = 5.4
    assert model.num_speech_tokens([60], [1.5], max_rate=1.2).tolist() == [8]  # 3 * 2.4 * 1.2 = 8.64
    batch = {**media(model.config, [60, 35]), **prompts(batch=2)}
    prompt = {k: batch.pop(k) for k in ("input_ids", "attention_mask")}
    speech = model.get_speech_embeddings(**batch, queries_per_second=5.0, max_rate=1.0)
    assert speech.num_speech_tokens.tolist() == [12, 7]
    ids = model.generate(**prompt, speech_embeddings=speech, max_new_tokens=6)
    assert torch.equal(ids, model.generate(**prompt, **batch, queries_per_second=5.0, max_rate=1.0, max_new_tokens=6))
    assert model.config.queries_per_second == 3.0 and model.config.rate_clamp == [1.0, 2.0]  # untouched
    with pytest.raises(MMSLlamaInputError, match="queries_per_second must be positive"):
        model.get_speech_embeddings(**batch, queries_per_second=0)
    with pytest.raises(MMSLlamaInputError, match="max_rate must be at least"):
        model.get_speech_embeddings(**batch, max_rate=0.5)
    with pytest.raises(MMSLlamaInputError, match="2 clips for 1 prompts"):
        model.generate(**prompts(batch=1), speech_embeddings=speech)


def test_generate_greedy_beam_and_sampling():
    model = tiny_model()
    batch = {**media(model.config, [40, 30]), **prompts(batch=2)}
    greedy = model.generate(**batch, max_new_tokens=6)
    assert greedy.shape[0] == 2 and greedy.shape[1] <= 6
    beams = model.generate(**batch, max_new_tokens=6, num_beams=3)
    assert beams.shape[0] == 2
    torch.manual_seed(0)
    sampled = model.generate(**batch, max_new_tokens=6, do_sample=True, top_k=5)
    assert sampled.shape[0] == 2


def test_batched_generation_matches_one_at_a_time():
    model = tiny_model(seed=3)
    lengths = [55, 20, 38]
    batch = {**media(model.config, lengths), **prompts(batch=3)}
    batched = model.generate(**batch, max_new_tokens=8)
    for i, frames in enumerate(lengths):
        single = {k: v[i : i + 1] for k, v in batch.items()}
        single["pixel_values_videos"] = single["pixel_values_videos"][:, :frames]
        single["video_mask"] = single["video_mask"][:, :frames]
        alone = model.generate(**single, max_new_tokens=8)[0]
        row = batched[i][: len(alone)]
        assert row.tolist() == alone.tolist()


# -- bad input -----------------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    model = tiny_model()
    good = {**media(model.config, [30, 20]), **prompts(batch=2)}
    cases = [
        ({"input_features": good["input_features"][:, :, :100]}, "input_features must have shape"),
        ({"input_features": good["input_features"].long()}, "floating point"),
        ({"pixel_values_videos": good["pixel_values_videos"][..., :64]}, "pixel_values_videos must have shape"),
        ({"pixel_values_videos": good["pixel_values_videos"].to(torch.uint8)}, "normalised floats"),
        ({"video_mask": good["video_mask"][:1]}, "Mismatched batch sizes"),
        ({"input_ids": good["input_ids"][:1], "attention_mask": good["attention_mask"][:1]}, "Mismatched batch sizes"),
        ({"input_ids": good["input_ids"].masked_fill(good["input_ids"] == SPEECH, BOS)}, "exactly one speech placeholder"),
        ({"input_ids": good["input_ids"].float()}, "integer token ids"),
    ]
    for change, message in cases:
        with pytest.raises(MMSLlamaInputError, match=message):
            model(**{**good, **change})
    with pytest.raises(MMSLlamaInputError, match="at most 125"):
        model(**media(model.config, [126]), **prompts(batch=1))
    with pytest.raises(MMSLlamaInputError, match="needs input_features_mask"):
        model(input_features=good["input_features"], **prompts(batch=2))
    with pytest.raises(MMSLlamaInputError, match="got neither"):
        model(**prompts(batch=2))
    with pytest.raises(MMSLlamaInputError, match="needs input_ids"):
        model(**media(model.config, [30, 20]))


def test_utterance_audio_window_matches_full_window_on_full_length_clips():
    full = tiny_model()
    short = tiny_model(audio_window="utterance", audio_window_bucket=1.0)
    short.load_state_dict(full.state_dict())
    inputs = media(full.config, [125, 30])
    encoded_full = full.encode_audio(inputs["input_features"], torch.tensor([125, 30]))
    encoded_short = short.encode_audio(inputs["input_features"], torch.tensor([125, 30]))
    assert encoded_short.shape == (2, 250, 32)
    assert torch.allclose(encoded_short[0], encoded_full[0], atol=1e-5)  # 5 s clip: the bucket is the whole window
    bucket_only = short.encode_audio(inputs["input_features"][1:], torch.tensor([30]))
    assert bucket_only.shape == (1, 100, 32)  # 1.2 s rounds up to a 2 s bucket = 100 Whisper frames
    assert torch.allclose(encoded_short[1, :100], bucket_only[0], atol=1e-5)  # independent of the batch
    out = short(**inputs, **prompts(batch=2))
    assert out.num_speech_tokens.tolist() == [15, 3]


def test_per_sample_stream_presence_zeroes_one_stream():
    model = tiny_model()
    inputs = media(model.config, [40, 40])
    dropped = model(**inputs, **prompts(batch=2), has_audio=torch.tensor([True, False]))
    video_only = model(pixel_values_videos=inputs["pixel_values_videos"], video_mask=inputs["video_mask"],
                       **prompts(batch=2))  # fmt: skip
    assert torch.allclose(dropped.logits[1], video_only.logits[1], atol=1e-5)
    assert dropped.speech_rate[1] == 1.0
    full = model(**inputs, **prompts(batch=2))
    assert torch.allclose(dropped.logits[0], full.logits[0], atol=1e-5)


def test_speech_model_alone_gives_the_same_speech_embeddings():
    from modeling_mmsllama import MMSLlamaModel

    full = tiny_model()
    speech_only = MMSLlamaModel(full.config).eval()
    missing, unexpected = speech_only.load_state_dict(full.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("language_model.") for k in unexpected)
    assert not hasattr(speech_only, "language_model")
    inputs = media(full.config, [50, 30])
    with torch.no_grad():
        expected = full.get_speech_embeddings(**inputs)
        got = speech_only(**inputs)
    assert torch.equal(got.embeddings, expected.embeddings) and torch.equal(got.mask, expected.mask)
    assert got.num_speech_tokens.tolist() == expected.num_speech_tokens.tolist()


def test_public_seams_compose_to_the_speech_path():
    model = tiny_model()
    inputs = media(model.config, [50, 30])
    num_frames = model.count_frames(inputs["input_features_mask"], inputs["pixel_values_videos"], inputs["video_mask"])
    assert num_frames.tolist() == [50, 30]
    assert model.count_frames(inputs["input_features_mask"]).tolist() == [50, 30]  # from the audio alone
    with torch.no_grad():
        audio = model.encode_audio(inputs["input_features"], num_frames)[:, :100]  # (B, 2T, Da) at 50 Hz
        video = model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"])
        rate = model.predict_speech_rate(audio, num_frames)
        speech = model.get_speech_embeddings(**inputs)
    assert video.shape == (2, 50, model.config.vision_config.hidden_size)
    assert torch.allclose(rate, speech.predicted_rate)


def test_demo_model_loads_every_weight():
    from pathlib import Path

    from modeling_mmsllama import MMSLlamaForConditionalGeneration

    folder = Path(__file__).resolve().parent.parent / "demo_model"
    _, info = MMSLlamaForConditionalGeneration.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


def test_query_allocator_is_the_papers_rule():
    from modeling_mmsllama.modeling_mmsllama import MMSLlamaQueryAllocator

    config = MMSLlamaConfig.from_preset("tiny", queries_per_second=3.0, min_queries=2, rate_clamp=(1.0, 2.0))
    allocator = MMSLlamaQueryAllocator(config)
    frames, rates = torch.tensor([75, 75, 75, 10]), torch.tensor([0.5, 1.5, 3.0, 1.0])
    # N = max(floor(3 * T / 25 * clamp(r, 1, 2)), 2): 9, floor(13.5), 18, max(1, 2)
    assert allocator.num_queries(frames, rates).tolist() == [9, 13, 18, 2]
    assert allocator.num_queries(frames, rates, queries_per_second=1.0).tolist() == [3, 4, 6, 2]
    assert allocator.num_queries(frames, rates, max_rate=1.5).tolist() == [9, 13, 13, 2]
    assert allocator.stretched_frames(frames, rates).tolist() == [75, 112, 150, 10]
    assert allocator.num_queries(frames).tolist() == [9, 9, 9, 2]  # no rate: r = 1
    config.use_rate_predictor = False
    assert allocator.num_queries(frames, rates).tolist() == [9, 9, 9, 2]  # reads the config when called
    with pytest.raises(MMSLlamaInputError, match="queries_per_second must be positive"):
        allocator.num_queries(frames, queries_per_second=0)
    with pytest.raises(MMSLlamaInputError, match="max_rate must be at least"):
        config.use_rate_predictor = True
        allocator.num_queries(frames, rates, max_rate=0.5)
