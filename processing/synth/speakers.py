"""Synthetic speakers: an espeak voice with its pitch and tempo, and a visual style for mouth and face.

Every speaker has its own espeak voice (accent + variant; no two speakers share one), so speakers assigned
to the test split are unseen in training both to the ear and to the eye.
"""

from dataclasses import asdict, dataclass

import numpy as np


ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "Andy", "Annie", "Alicia", "adam", "anika", "belinda",
    "benjamin", "david", "ed", "edward", "john", "linda", "max", "michel", "paul", "rob", "robert",
    "steph", "travis", "quincy", "norbert", "boris", "aunty", "grandma", "grandpa",
)  # fmt: skip
SPLITS = ("train", "valid", "test")

RATE_CENTRE_WPM = (120.0, 200.0)  # a speaker's habitual rate, log-uniform in this range
RATE_SPREAD = 0.45  # an utterance's rate is the habitual rate times exp(U(-spread, spread))
PITCH_RANGE = (25, 75)


@dataclass(frozen=True)
class Speaker:
    """One synthetic talker.

    Colours are RGB in [0, 1]. Lengths of the mouth are in units of the ROI side (mouth) or of the head's
    half-width (face).
    """

    speaker_id: str
    split: str
    voice: str
    pitch: int
    pitch_range: int
    rate_centre_wpm: float
    skin: tuple[float, float, float]
    lip: tuple[float, float, float]
    inner: tuple[float, float, float]
    teeth: tuple[float, float, float]
    hair: tuple[float, float, float]
    background: tuple[float, float, float]
    mouth_half_width: float  # in ROI sides
    upper_lip: float  # thickness in mouth half-widths
    lower_lip: float
    rotation_deg: float
    shading: float  # strength of the skin's light gradient
    noise_std: float  # per-pixel noise, gray levels
    head_motion_px: float  # amplitude of the talking face's head motion

    def to_dict(self) -> dict:
        return asdict(self)


def _colour(rng, low, high):
    return tuple(float(round(c, 4)) for c in rng.uniform(low, high))


def make_speakers(seed: int, counts: dict[str, int]) -> list[Speaker]:
    """Draw `sum(counts.values())` speakers with distinct voices, `counts[split]` of them per split.

    Deterministic for a given `seed` and `counts`.
    """
    if set(counts) != set(SPLITS) or any(n < 1 for n in counts.values()):
        raise ValueError(f"counts must give at least one speaker for each of {SPLITS}, got {counts}")
    voices = [f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS]
    total = sum(counts.values())
    if total > len(voices):
        raise ValueError(f"at most {len(voices)} speakers (distinct voices) are available, asked for {total}")
    rng = np.random.default_rng([seed, 0x5EA4])
    chosen = rng.permutation(len(voices))[:total]
    speakers = []
    for index, voice_index in enumerate(chosen):
        split = SPLITS[int(np.searchsorted(np.cumsum([counts[s] for s in SPLITS]), index, side="right"))]
        skin_tone = rng.uniform(0.25, 0.9)
        skin = tuple(float(round(c, 4)) for c in np.clip(skin_tone * np.array([1.0, 0.8, 0.68]) + rng.uniform(-0.04, 0.04, 3), 0, 1))
        speakers.append(
            Speaker(
                speaker_id=f"s{index:03d}",
                split=split,
                voice=voices[voice_index],
                pitch=int(rng.integers(*PITCH_RANGE)),
                pitch_range=int(rng.integers(30, 80)),
                rate_centre_wpm=float(round(np.exp(rng.uniform(*np.log(RATE_CENTRE_WPM))), 2)),
                skin=skin,
                lip=tuple(float(round(c * rng.uniform(0.55, 0.8), 4)) for c in (skin[0], skin[1] * 0.75, skin[2] * 0.8)),
                inner=_colour(rng, (0.05, 0.02, 0.02), (0.18, 0.08, 0.08)),
                teeth=_colour(rng, (0.8, 0.78, 0.7), (0.98, 0.96, 0.9)),
                hair=tuple(float(round(c, 4)) for c in rng.uniform(0.03, 0.5) * np.array([1.0, 0.8, 0.6])),
                background=_colour(rng, (0.2, 0.2, 0.2), (0.8, 0.8, 0.8)),
                mouth_half_width=float(round(rng.uniform(0.26, 0.34), 4)),
                upper_lip=float(round(rng.uniform(0.2, 0.3), 4)),
                lower_lip=float(round(rng.uniform(0.26, 0.38), 4)),
                rotation_deg=float(round(rng.uniform(-8.0, 8.0), 3)),
                shading=float(round(rng.uniform(0.05, 0.25), 4)),
                noise_std=float(round(rng.uniform(1.0, 3.0), 3)),
                head_motion_px=float(round(rng.uniform(4.0, 14.0), 3)),
            )
        )
    return speakers
