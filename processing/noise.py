"""Noise for training and evaluation: mixing at an exact SNR, babble from other utterances, white and pink noise.

The reference code's mixing is broken (paper-spec 8.3): it scales noise per sample against a (T, 1) view of the speech,
which adds a signal-correlated distortion instead of noise at the asked SNR. Here the SNR is measured over the whole
utterance, so `10 * log10(P_speech / P_noise)` of the result is the SNR asked for.
"""

import numpy as np


PAPER_SNRS_DB = (-5, 0, 5, 10, 15, 20)  # dB, the reference training list (paper-spec 8.3)
PAPER_NOISE_PROBABILITY = 0.75  # share of training utterances that get noise
BABBLE_TALKERS = 6  # utterances summed into one babble signal


def power(signal: np.ndarray) -> float:
    """Mean square of a signal."""
    return float(np.mean(np.square(signal, dtype=np.float64)))


def measured_snr_db(speech: np.ndarray, noise: np.ndarray) -> float:
    """`10 * log10(P_speech / P_noise)` in dB."""
    return 10.0 * np.log10(power(speech) / power(noise))


def fit_length(noise: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A `num_samples` stretch of `noise`: a random window when it is longer, repeated end to end when shorter."""
    if len(noise) == 0:
        raise ValueError("the noise signal is empty")
    if len(noise) >= num_samples:
        start = int(rng.integers(0, len(noise) - num_samples + 1))
        return noise[start : start + num_samples]
    repeats = -(-num_samples // len(noise))
    return np.tile(noise, repeats)[:num_samples]


def mix_at_snr(
    speech: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Adds `noise` to `speech` so that the speech-to-noise power ratio is exactly `snr_db`.

    Args:
        speech (`np.ndarray`): `(N,)` mono waveform.
        noise (`np.ndarray`): `(M,)` mono noise of any length (cut at a random offset, or repeated, to `N`).
        snr_db (`float`): the signal-to-noise ratio in dB, over the whole utterance.
        rng (`np.random.Generator`, *optional*): for the offset into the noise.

    Returns:
        `(N,)` float32 `speech + gain * noise`. The result is not clipped or rescaled, so the SNR holds exactly.
    """
    rng = rng if rng is not None else np.random.default_rng()
    speech = np.asarray(speech, dtype=np.float64)
    if speech.ndim != 1 or np.asarray(noise).ndim != 1:
        raise ValueError(f"speech and noise must be 1-D (mono), got {speech.shape} and {np.asarray(noise).shape}")
    segment = fit_length(np.asarray(noise, dtype=np.float64), len(speech), rng)
    speech_power, noise_power = power(speech), power(segment)
    if speech_power == 0.0:
        raise ValueError("the speech is silent (zero power); an SNR is undefined")
    if noise_power == 0.0:
        raise ValueError("the noise is silent (zero power); it cannot be scaled to an SNR")
    gain = np.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (speech + gain * segment).astype(np.float32)


def white_noise(num_samples: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Gaussian white noise with unit power."""
    rng = rng if rng is not None else np.random.default_rng()
    return rng.standard_normal(num_samples).astype(np.float32)


def pink_noise(num_samples: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pink (1/f power) noise with unit power: white noise shaped by `1/sqrt(f)` in the frequency domain."""
    rng = rng if rng is not None else np.random.default_rng()
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    frequencies[0] = 1.0  # keep the DC bin finite; it is removed below
    spectrum /= np.sqrt(frequencies)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n=num_samples)
    return (noise / np.sqrt(power(noise))).astype(np.float32)


def babble_noise(
    utterances: list[np.ndarray],
    num_samples: int,
    num_talkers: int = BABBLE_TALKERS,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Babble: `num_talkers` utterances drawn from `utterances`, each at equal power, summed; unit power overall.

    Args:
        utterances (`list[np.ndarray]`): other speakers' mono waveforms (exclude the target utterance).
        num_samples (`int`): length of the babble.
        num_talkers (`int`): talkers summed (drawn with replacement when there are fewer utterances).
    """
    rng = rng if rng is not None else np.random.default_rng()
    voiced = [np.asarray(u, dtype=np.float64) for u in utterances if len(u) and power(np.asarray(u)) > 0]
    if not voiced:
        raise ValueError("babble needs at least one non-silent utterance")
    picks = rng.choice(len(voiced), size=num_talkers, replace=len(voiced) < num_talkers)
    babble = np.zeros(num_samples)
    for index in picks:
        talker = fit_length(voiced[index], num_samples, rng)
        babble += talker / np.sqrt(max(power(talker), 1e-12))
    return (babble / np.sqrt(power(babble))).astype(np.float32)


class NoiseAugmenter:
    """Training-time noise: with probability `probability`, mixes one of `noises` at an SNR drawn from `snrs_db`.

    Args:
        noises (`list[np.ndarray]`): mono 16 kHz noise signals (babble, white, pink, recordings).
        snrs_db (`tuple[float]`): SNRs to draw from, uniformly (defaults to the paper's list).
        probability (`float`): share of utterances that get noise.
        seed (`int`, *optional*): seed of the augmenter's own generator.
    """

    def __init__(
        self,
        noises: list[np.ndarray],
        snrs_db: tuple[float, ...] = PAPER_SNRS_DB,
        probability: float = PAPER_NOISE_PROBABILITY,
        seed: int | None = None,
    ):
        if not noises:
            raise ValueError("NoiseAugmenter needs at least one noise signal")
        if not snrs_db:
            raise ValueError("NoiseAugmenter needs at least one SNR")
        self.noises = [np.asarray(noise, dtype=np.float32) for noise in noises]
        self.snrs_db = tuple(snrs_db)
        self.probability = probability
        self.rng = np.random.default_rng(seed)

    def __call__(self, speech: np.ndarray) -> tuple[np.ndarray, float | None]:
        """Returns the (possibly) noisy speech and the SNR used (`None` when left clean)."""
        if self.rng.random() >= self.probability or power(np.asarray(speech)) == 0.0:
            return np.asarray(speech, dtype=np.float32), None
        snr = float(self.snrs_db[self.rng.integers(len(self.snrs_db))])
        noise = self.noises[self.rng.integers(len(self.noises))]
        return mix_at_snr(speech, noise, snr, self.rng), snr


__all__ = [
    "PAPER_SNRS_DB",
    "PAPER_NOISE_PROBABILITY",
    "power",
    "measured_snr_db",
    "fit_length",
    "mix_at_snr",
    "white_noise",
    "pink_noise",
    "babble_noise",
    "NoiseAugmenter",
]
