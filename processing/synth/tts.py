"""Speech synthesis with exact word and phoneme timings, from libespeak-ng through ctypes.

The library comes from the ``espeakng-loader`` wheel (libespeak-ng 1.52 and its voice data; no system
package needed). Synthesis runs in espeak's synchronous mode: a callback receives the 22,050 Hz int16
samples together with WORD and PHONEME events that carry their sample positions, which are exact because
they come from the synthesiser itself. The result is resampled to 16 kHz.

libespeak-ng keeps global state (one voice, one callback), so this module holds a single engine; it is not
thread-safe, and one process synthesises one utterance at a time. Part of that state carries over from
one utterance to the next (the pitch-flutter phase of the default synthesiser), so the same call could
give a slightly different waveform, a few samples longer or shorter, depending on what was spoken before.
To make every utterance depend on its own arguments only, the library is unloaded and loaded again
before each one (about 8 ms).
"""

import _ctypes
import ctypes
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly


ESPEAK_SAMPLE_RATE_HZ = 22050
# Some voice variants (+f5, +Alicia) mix random breath noise into the speech; libespeak-ng's generator is re-seeded
# with this before every utterance, so the same text and voice give the same audio in any process and call order.
ESPEAK_RANDOM_SEED = 0
OUTPUT_SAMPLE_RATE_HZ = 16000
MIN_RATE_WPM = 80  # espeak's accepted speaking-rate range, words per minute
MAX_RATE_WPM = 450
MAX_PITCH = 100  # espeak pitch and pitch range are 0..100

# espeak_AUDIO_OUTPUT / options / parameters / event types / flags, from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x1
_INITIALIZE_PHONEME_IPA = 0x2
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 3, 4, 7
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_END, _EVENT_MSG_TERMINATED, _EVENT_PHONEME = 0, 1, 5, 6, 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class SynthesisError(RuntimeError):
    """libespeak-ng could not be loaded, rejected a voice, or produced events that do not match the text."""


@dataclass(frozen=True)
class TimedUnit:
    """A word or phoneme with its span in seconds of the 16 kHz output."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Synthesis:
    """One synthesised utterance.

    Attributes:
        audio: `(num_samples,)` int16 at 16 kHz mono.
        words: one entry per word of the input, in order; `start` is the WORD event (it includes a stop's
            closure) or the previous word's end if that is later, `end` the end of the word's last phoneme.
        phonemes: IPA phonemes without stress marks, pauses left out, each with its span.
    """

    audio: np.ndarray
    words: list[TimedUnit]
    phonemes: list[TimedUnit]


class _Engine:
    """The process-wide libespeak-ng handle and its callback buffers."""

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as error:
            raise SynthesisError("speech synthesis needs the espeakng-loader package: pip install espeakng-loader") from error
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_path = espeakng_loader.get_data_path().encode()
        sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA
        )
        if sample_rate != ESPEAK_SAMPLE_RATE_HZ:
            raise SynthesisError(f"libespeak-ng initialisation failed (returned {sample_rate}, expected {ESPEAK_SAMPLE_RATE_HZ} Hz)")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, str]] = []
        self._callback = _SynthCallback(self._on_audio)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, num_samples, events):
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_WORD:
                self._events.append((event.type, event.sample, event.text_position, str(event.length)))
            elif event.type == _EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0")[0].decode("utf-8", errors="replace")
                self._events.append((event.type, event.sample, 0, name))
            elif event.type in (_EVENT_END, _EVENT_MSG_TERMINATED):
                self._events.append((event.type, event.sample, 0, ""))
            i += 1
        return 0

    def close(self) -> None:
        """Unload the library, so the next engine starts from a clean state."""
        _ctypes.dlclose(self.lib._handle)

    def synthesize(self, text: str, voice: str, rate_wpm: int, pitch: int, pitch_range: int, word_gap_10ms: int):
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SynthesisError(f"libespeak-ng has no voice {voice!r}")
        for parameter, value in ((_PARAM_RATE, rate_wpm), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range), (_PARAM_WORDGAP, word_gap_10ms)):
            self.lib.espeak_SetParameter(parameter, int(value), 0)
        self._chunks, self._events = [], []
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(ESPEAK_RANDOM_SEED))
        encoded = text.encode("utf-8") + b"\0"
        self.lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, list(self._events)


_ENGINE: _Engine | None = None


def _fresh_engine() -> _Engine:
    global _ENGINE
    if _ENGINE is not None:
        _ENGINE.close()
    _ENGINE = _Engine()
    return _ENGINE


def synthesize(
    spoken_words: list[str],
    voice: str,
    rate_wpm: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    word_gap_10ms: int = 0,
) -> Synthesis:
    """Speak `spoken_words` (joined by spaces) and return 16 kHz audio with word and phoneme timings.

    Args:
        spoken_words: the words as espeak should read them (e.g. "eh" for the letter "a").
        voice: an espeak voice name, optionally with a variant (e.g. "en-us+m3").
        rate_wpm: speaking rate in words per minute, 80..450.
        pitch, pitch_range: 0..100.
        word_gap_10ms: extra pause between words, in units of 10 ms.

    Raises:
        SynthesisError: the voice is unknown, or the WORD events do not match the words one to one.
    """
    if not spoken_words or any(not word or " " in word for word in spoken_words):
        raise ValueError(f"spoken_words must be non-empty single words, got {spoken_words!r}")
    if not MIN_RATE_WPM <= rate_wpm <= MAX_RATE_WPM:
        raise ValueError(f"rate_wpm must be in [{MIN_RATE_WPM}, {MAX_RATE_WPM}], got {rate_wpm}")
    if not (0 <= pitch <= MAX_PITCH and 0 <= pitch_range <= MAX_PITCH):
        raise ValueError(f"pitch and pitch_range must be in [0, {MAX_PITCH}], got {pitch} and {pitch_range}")
    text = " ".join(spoken_words)
    raw_audio, events = _fresh_engine().synthesize(text, voice, rate_wpm, pitch, pitch_range, word_gap_10ms)

    # Character offset (1-based, as espeak reports it) of each word's first letter.
    offsets, position = [], 1
    for word in spoken_words:
        offsets.append(position)
        position += len(word) + 1
    word_starts: dict[int, int] = {}
    boundaries: list[tuple[int, str]] = []  # (sample, phoneme name or "" for an end marker) in event order
    word_of_boundary: list[int] = []
    current_word = -1
    for kind, sample, text_position, payload in events:
        if kind == _EVENT_WORD:
            if payload == "0":  # spurious zero-length WORD event
                continue
            if text_position not in offsets or text_position in word_starts:
                raise SynthesisError(f"unexpected WORD event at character {text_position} for {text!r} with voice {voice!r}")
            current_word = offsets.index(text_position)
            word_starts[text_position] = sample
        else:
            boundaries.append((sample, payload))
            word_of_boundary.append(current_word)
    if len(word_starts) != len(spoken_words):
        raise SynthesisError(f"espeak gave {len(word_starts)} word events for {len(spoken_words)} words in {text!r} ({voice!r})")
    boundaries.append((len(raw_audio), ""))
    word_of_boundary.append(current_word)

    ratio = Fraction(OUTPUT_SAMPLE_RATE_HZ, ESPEAK_SAMPLE_RATE_HZ)
    seconds = 1.0 / ESPEAK_SAMPLE_RATE_HZ
    phonemes, word_ends = [], {}
    for k in range(len(boundaries) - 1):
        (start, name), end = boundaries[k], boundaries[k + 1][0]
        name = name.replace("ˈ", "").replace("ˌ", "")
        if not name or name.startswith("_") or end <= start:
            continue  # pauses, end markers and zero-length phonemes
        phonemes.append(TimedUnit(name, start * seconds, end * seconds))
        if word_of_boundary[k] >= 0:
            word_ends[word_of_boundary[k]] = end * seconds
    words, previous_end = [], 0.0
    for index, (word, offset) in enumerate(zip(spoken_words, offsets)):
        # A WORD event can come before the previous word's last phoneme ends; spans do not overlap.
        start = max(word_starts[offset] * seconds, previous_end)
        previous_end = max(word_ends.get(index, start), start)
        words.append(TimedUnit(word, start, previous_end))

    audio = resample_poly(raw_audio.astype(np.float32), ratio.numerator, ratio.denominator)
    audio = np.clip(np.round(audio), -32768, 32767).astype(np.int16)
    return Synthesis(audio=audio, words=words, phonemes=phonemes)

