"""From timed phonemes to a mouth-shape track at 25 fps: the viseme table and coarticulation.

A mouth shape is four numbers in [0, 1]: `open` (jaw and lip aperture), `spread` (lip corners drawn
back), `round` (lips pushed forward into a small round opening) and `teeth` (how much of the teeth shows
when the mouth is open). Each phoneme holds its viseme's shape over its span (a diphthong moves from its
first to its second shape); the track is smoothed with a Gaussian to stand in for coarticulation. Lips
that close for a bilabial (p, b, m) are then forced shut for at least `MIN_CLOSURE_S`, because that
closure is the one cue a viewer cannot miss, and a short stop would otherwise be smoothed away.

So some words differ only to the eye and some only to the ear: "b", "p" and "m" look alike; "f" and
"v" look alike; "d", "t" and "n" look alike but sound different.
"""

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .tts import TimedUnit


VIDEO_FPS = 25
TRACK_STEP_S = 0.001  # resolution of the target track before sampling at frame centres
COARTICULATION_SIGMA_S = 0.02
MIN_CLOSURE_S = 0.06  # bilabial closure at least 1.5 video frames long
SHAPE_NAMES = ("open", "spread", "round", "teeth")

REST = (0.0, 0.3, 0.1, 0.0)
_CLOSED = (0.0, 0.35, 0.1, 0.0)
_LABIODENTAL = (0.12, 0.45, 0.0, 1.0)
_DENTAL = (0.22, 0.4, 0.0, 0.9)
_ALVEOLAR = (0.25, 0.45, 0.0, 0.7)
_SIBILANT = (0.14, 0.65, 0.0, 1.0)
_VELAR = (0.35, 0.35, 0.0, 0.3)
_POSTALVEOLAR = (0.22, 0.1, 0.7, 0.8)
_ROUNDED_GLIDE = (0.12, 0.0, 1.0, 0.0)
_RHOTIC = (0.25, 0.15, 0.55, 0.3)
_PALATAL = (0.25, 0.65, 0.0, 0.6)
_CLOSE_FRONT = (0.3, 0.95, 0.0, 0.7)
_MID_FRONT = (0.5, 0.75, 0.0, 0.5)
_OPEN_FRONT = (0.8, 0.7, 0.0, 0.4)
_OPEN = (0.95, 0.4, 0.0, 0.3)
_OPEN_ROUNDED = (0.7, 0.1, 0.6, 0.2)
_MID_ROUNDED = (0.5, 0.1, 0.75, 0.1)
_CLOSE_ROUNDED = (0.28, 0.0, 0.95, 0.0)
_CENTRAL = (0.45, 0.4, 0.1, 0.3)

# IPA (as libespeak-ng 1.52 writes it, stress marks removed) -> one shape, or two for a diphthong.
VISEMES: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    **{p: (_CLOSED,) for p in ("p", "b", "m")},
    **{p: (_LABIODENTAL,) for p in ("f", "v")},
    **{p: (_DENTAL,) for p in ("θ", "ð", "t̪")},
    **{p: (_ALVEOLAR,) for p in ("t", "d", "n", "l", "ɾ")},
    **{p: (_SIBILANT,) for p in ("s", "z")},
    **{p: (_VELAR,) for p in ("k", "ɡ", "g", "ŋ", "h")},
    **{p: (_POSTALVEOLAR,) for p in ("ʃ", "ʒ", "tʃ", "dʒ")},
    **{p: (_ROUNDED_GLIDE,) for p in ("w", "ʍ")},
    **{p: (_RHOTIC,) for p in ("ɹ", "r")},
    "j": (_PALATAL,),
    **{p: (_CLOSE_FRONT,) for p in ("iː", "i", "ɪ")},
    **{p: (_MID_FRONT,) for p in ("ɛ", "e", "eː")},
    "æ": (_OPEN_FRONT,),
    **{p: (_OPEN,) for p in ("ɑː", "ɑ", "a", "aː", "ʌ", "ɐ", "ɒ")},
    **{p: (_OPEN_ROUNDED,) for p in ("ɔː", "ɔ")},
    **{p: (_MID_ROUNDED,) for p in ("oː", "o")},
    **{p: (_CLOSE_ROUNDED,) for p in ("uː", "u", "ʊ", "ʉː")},
    **{p: (_CENTRAL,) for p in ("ə", "ɜː", "ɚ")},
    **{p: (_MID_FRONT, _CLOSE_FRONT) for p in ("eɪ", "ei")},
    "aɪ": (_OPEN, _CLOSE_FRONT),
    **{p: (_OPEN, _CLOSE_ROUNDED) for p in ("aʊ", "æʊ")},
    "ɔɪ": (_OPEN_ROUNDED, _CLOSE_FRONT),
    **{p: (_MID_ROUNDED, _CLOSE_ROUNDED) for p in ("oʊ", "əʊ", "əu", "ʌʊ", "ʌʉ")},
    **{p: (_CLOSE_FRONT, _CENTRAL) for p in ("iə",)},
    **{p: (_MID_ROUNDED, _CENTRAL) for p in ("oə", "ɔːɹ")},
    "ɑə": (_OPEN, _CENTRAL),
}
BILABIALS = frozenset({"p", "b", "m"})


def viseme_shapes(phoneme: str) -> tuple[tuple[float, float, float, float], ...]:
    """The shape(s) of one phoneme; an unknown phoneme is looked up without its length mark, else neutral."""
    if phoneme in VISEMES:
        return VISEMES[phoneme]
    return VISEMES.get(phoneme.replace("ː", ""), (_CENTRAL,))


def mouth_track(phonemes: list[TimedUnit], num_frames: int) -> np.ndarray:
    """Mouth shapes sampled at the centres of `num_frames` video frames.

    Args:
        phonemes: timed phonemes (seconds from the start of the audio).
        num_frames: number of 25 fps video frames.

    Returns:
        `(num_frames, 4)` float32 in [0, 1], columns as in `SHAPE_NAMES`.
    """
    num_steps = int(round(num_frames / VIDEO_FPS / TRACK_STEP_S))
    track = np.tile(np.asarray(REST, np.float32), (num_steps, 1))
    for phoneme in phonemes:
        start, end = int(phoneme.start / TRACK_STEP_S), int(phoneme.end / TRACK_STEP_S)
        shapes = viseme_shapes(phoneme.label)
        edges = np.linspace(start, end, len(shapes) + 1).round().astype(int)
        for shape, a, b in zip(shapes, edges[:-1], edges[1:]):
            track[max(a, 0) : min(b, num_steps)] = shape
    track = gaussian_filter1d(track, COARTICULATION_SIGMA_S / TRACK_STEP_S, axis=0, mode="nearest")

    closure = np.zeros(num_steps, bool)
    min_steps = int(MIN_CLOSURE_S / TRACK_STEP_S)
    for phoneme in phonemes:
        if phoneme.label in BILABIALS:
            end = int(phoneme.end / TRACK_STEP_S)
            start = min(int(phoneme.start / TRACK_STEP_S), end - min_steps)  # a closure precedes its release
            closure[max(start, 0) : min(end, num_steps)] = True
    track[closure, 0] = 0.0
    track[closure, 3] = 0.0

    centres = ((np.arange(num_frames) + 0.5) / VIDEO_FPS / TRACK_STEP_S).astype(int).clip(0, num_steps - 1)
    return np.clip(track[centres], 0.0, 1.0).astype(np.float32)
