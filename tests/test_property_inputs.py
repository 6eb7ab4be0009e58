"""Any input, however doubtful, either becomes model inputs that `generate` takes or raises `MMSLlamaInputError`."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeling_mmsllama.configuration_mmsllama import MMSLlamaConfig
from modeling_mmsllama.errors_mmsllama import MMSLlamaInputError
from modeling_mmsllama.modeling_mmsllama import MMSLlamaForConditionalGeneration
from modeling_mmsllama.processing_mmsllama import MMSLlamaProcessor


AUDIO_DTYPES = ["float32", "float32", "float64", "float16", "int16", "int32", "uint8", "int8", "bool", "complex64"]
VIDEO_DTYPES = ["uint8", "uint8", "uint8", "float32", "int16", "bool"]
SAMPLING_RATES = [16_000, 16_000, 8000, 11_025, 22_050, 44_100, 48_000, 96_000, None, 0, -16_000, 4000, 22_050.5, 1e9]


@pytest.fixture(scope="module")
def model_and_processor():
    torch.manual_seed(0)
    model = MMSLlamaForConditionalGeneration(MMSLlamaConfig.from_preset("tiny")).eval()
    return model, MMSLlamaProcessor.from_preset("tiny")


def durations():
    """Clip lengths in seconds: mostly usable, some shorter or longer than the model takes."""
    return st.one_of(st.floats(0.2, 5.0), st.sampled_from([0.0, 0.01, 0.04, 0.16, 0.2, 5.0, 5.2, 7.0]))


@st.composite
def waveforms(draw, seconds: float, sampling_rate):
    """`seconds` of audio (give or take 0.3 s) of any dtype, 0-3 dimensions, 1-9 channels, some with NaN or
    integer-range floats."""
    dtype = np.dtype(draw(st.sampled_from(AUDIO_DTYPES)))
    rate = sampling_rate if isinstance(sampling_rate, int) and 0 < sampling_rate < 200_000 else 16_000
    samples = max(0, round((seconds + draw(st.sampled_from([0.0, 0.0, 0.1, -0.1, 0.3, -0.3]))) * rate))
    channels = draw(st.sampled_from([1, 2, 2, 6, 9]))
    shape = draw(st.sampled_from([(samples,), (samples,), (channels, samples), (samples, channels), (),
                                  (channels, 2, samples)]))  # fmt: skip
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = np.asarray(rng.uniform(-1, 1, shape) * draw(st.sampled_from([0.5, 0.5, 0.0, 1e-6, 40_000.0])))
    if values.size and draw(st.integers(0, 9)) == 0 and np.issubdtype(dtype, np.floating):
        values.flat[rng.integers(values.size)] = draw(st.sampled_from([np.nan, np.inf]))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(values * info.max, info.min, info.max)
    return values.astype(dtype)


@st.composite
def videos(draw, seconds: float):
    """`seconds` of frames (give or take 12) of any dtype, 2-5 dimensions, 1-128 px (mouth-crop sized), 1-4
    channels, channels first or last."""
    dtype = np.dtype(draw(st.sampled_from(VIDEO_DTYPES)))
    frames = max(0, round(seconds * 25) + draw(st.sampled_from([0, 0, 1, -1, 12, -12])))
    side = draw(st.sampled_from([1, 7, 88, 96, 96, 128]))
    shape = draw(st.sampled_from([(frames, side, side), (frames, side, side), (frames, side, side, 3),
                                  (frames, side, side, 1), (frames, side, side, 4), (frames, side, side, 2),
                                  (frames, side), (frames, 1, side, side, 3), (frames, 3, side, side)]))  # fmt: skip
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return rng.integers(0, 256, shape).astype(dtype)


@pytest.mark.filterwarnings("ignore::modeling_mmsllama.errors_mmsllama.MMSLlamaConversionWarning")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    data=st.data(),
    batch=st.integers(1, 2),
    with_video=st.booleans(),
    with_audio=st.booleans(),
    sampling_rate=st.sampled_from(SAMPLING_RATES),
    modality=st.sampled_from([None, None, "av", "audio", "video"]),
    align=st.sampled_from([None, None, "pad", "trim"]),
)
def test_processor_output_feeds_generate_or_the_error_is_an_input_error(
    model_and_processor, data, batch, with_video, with_audio, sampling_rate, modality, align
):
    model, processor = model_and_processor
    seconds = [data.draw(durations()) for _ in range(batch)]
    video = [data.draw(videos(s)) for s in seconds] if with_video else None
    audio = [data.draw(waveforms(s, sampling_rate)) for s in seconds] if with_audio else None
    try:
        inputs = processor(videos=video, audio=audio, sampling_rate=sampling_rate, modality=modality, align=align,
                           video_is_roi=True)  # fmt: skip
    except MMSLlamaInputError:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # generation-config remarks are not what is tested
        ids = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert ids.shape[0] == batch
    assert len(processor.batch_decode(ids)) == batch
    for info in inputs.media_info:
        assert 5 <= info.num_frames <= 125
        if info.modality == "av":
            assert info.num_samples == info.num_frames * 640
