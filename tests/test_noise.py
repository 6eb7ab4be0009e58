"""Noise mixing: the SNR asked for is the SNR measured; babble, white and pink noise; the training augmenter."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processing.noise import (
    PAPER_SNRS_DB,
    NoiseAugmenter,
    babble_noise,
    fit_length,
    measured_snr_db,
    mix_at_snr,
    pink_noise,
    power,
    white_noise,
)


def _speech(num_samples, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / 16_000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)  # syllable-like loudness changes
    return (envelope * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(num_samples)).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(
    snr_db=st.floats(-10, 30),
    speech_length=st.integers(400, 20_000),
    noise_length=st.integers(50, 40_000),
    kind=st.sampled_from(["white", "pink", "babble"]),
    seed=st.integers(0, 2**16),
)
def test_mixed_snr_is_the_requested_snr(snr_db, speech_length, noise_length, kind, seed):
    rng = np.random.default_rng(seed)
    speech = _speech(speech_length, seed)
    if kind == "white":
        noise = white_noise(noise_length, rng)
    elif kind == "pink":
        noise = pink_noise(max(noise_length, 64), rng)
    else:
        noise = babble_noise([_speech(3000, s) for s in range(3)], noise_length, rng=rng)
    mixed = mix_at_snr(speech, noise, snr_db, rng)
    assert mixed.shape == speech.shape and mixed.dtype == np.float32
    assert measured_snr_db(speech, mixed.astype(np.float64) - speech) == pytest.approx(snr_db, abs=0.1)


def test_noise_longer_than_speech_is_cut_shorter_is_repeated():
    rng = np.random.default_rng(0)
    assert len(fit_length(np.arange(100.0), 30, rng)) == 30
    np.testing.assert_array_equal(fit_length(np.arange(3.0), 7, rng), [0, 1, 2, 0, 1, 2, 0])


def test_white_and_pink_spectra():
    rng = np.random.default_rng(0)
    white, pink = white_noise(2**16, rng), pink_noise(2**16, rng)
    assert power(white) == pytest.approx(1.0, rel=0.02) and power(pink) == pytest.approx(1.0, rel=1e-4)
    frequencies = np.fft.rfftfreq(2**16, 1 / 16_000)
    spectrum = np.abs(np.fft.rfft(pink)) ** 2
    band = (frequencies > 50) & (frequencies < 5000)
    slope = np.polyfit(np.log10(frequencies[band]), np.log10(spectrum[band]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)  # power falls 10 dB per decade
    white_slope = np.polyfit(np.log10(frequencies[band]), np.log10(np.abs(np.fft.rfft(white))[band] ** 2), 1)[0]
    assert abs(white_slope) < 0.1


def test_babble_mixes_several_talkers_at_unit_power():
    talkers = [np.sin(2 * np.pi * f * np.arange(8000) / 16_000) for f in (200, 300, 450, 700)]
    babble = babble_noise(talkers, 16_000, num_talkers=4, rng=np.random.default_rng(1))
    assert babble.shape == (16_000,) and power(babble) == pytest.approx(1.0, rel=1e-4)
    spectrum = np.abs(np.fft.rfft(babble))
    assert (spectrum[[200, 300, 450, 700]] > 0.1 * spectrum.max()).sum() >= 2  # more than one voice present
    with pytest.raises(ValueError, match="non-silent utterance"):
        babble_noise([np.zeros(100)], 100)


def test_silence_cannot_be_mixed():
    with pytest.raises(ValueError, match="speech is silent"):
        mix_at_snr(np.zeros(100), np.ones(100), 0.0)
    with pytest.raises(ValueError, match="noise is silent"):
        mix_at_snr(np.ones(100), np.zeros(100), 0.0)


def test_augmenter_draws_snrs_from_the_list_with_the_given_probability():
    augmenter = NoiseAugmenter([white_noise(16_000, np.random.default_rng(0))], seed=0)
    speech = _speech(8000)
    results = [augmenter(speech) for _ in range(400)]
    snrs = [snr for _, snr in results if snr is not None]
    assert 0.65 < len(snrs) / len(results) < 0.85  # probability 0.75
    assert set(snrs) == set(PAPER_SNRS_DB)
    for noisy, snr in results[:50]:
        if snr is None:
            np.testing.assert_array_equal(noisy, speech)
        else:
            assert measured_snr_db(speech, noisy.astype(np.float64) - speech) == pytest.approx(snr, abs=0.1)
