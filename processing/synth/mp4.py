"""Write and read the corpus's mp4 files (H.264 video + AAC audio) with PyAV.

AAC decoders put encoder priming in front of the audio and pad its end to whole 1024-sample frames, so a
decoded track is longer than what was written. `read_mp4` drops samples before time 0 (the priming, which
the container marks with negative timestamps) and keeps exactly `num_frames * SAMPLES_PER_FRAME`.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


VIDEO_FPS = 25
AUDIO_SAMPLE_RATE_HZ = 16000
SAMPLES_PER_FRAME = AUDIO_SAMPLE_RATE_HZ // VIDEO_FPS  # 640 audio samples per 40 ms video frame
AUDIO_BITRATE_BPS = 32000
AUDIO_CODER = "fast"  # ffmpeg's AAC coder: "fast" is 3x quicker than the default "twoloop" at the same size
VIDEO_CRF = "23"  # x264 constant rate factor: lower is better quality and bigger files
VIDEO_PRESET = "veryfast"
# x264's macroblock-tree rate control gave different bytes (and decoded pixels) for the same frames from one run to
# the next, even on one thread; without it the same seed writes the same files.
X264_PARAMS = "mbtree=0"


def write_mp4(path: str | Path, frames: np.ndarray, audio: np.ndarray | None = None) -> None:
    """Write `frames` at 25 fps (and `audio` at 16 kHz) to `path`, atomically.

    Args:
        frames: `(T, H, W)` uint8 gray or `(T, H, W, 3)` uint8 RGB; H and W even.
        audio: `(T * 640,)` int16 mono, or None for a silent video.

    The file appears under its final name only once complete (written to a temporary name, then renamed).
    """
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"frames must be uint8 (T, H, W[, 3]) with even H and W, got {frames.dtype} {frames.shape}")
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pixel_format = "gray" if frames.ndim == 3 else "rgb24"
    with av.open(str(temporary), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=VIDEO_FPS)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": VIDEO_CRF, "preset": VIDEO_PRESET, "x264-params": X264_PARAMS}
        video.thread_count = 1
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=AUDIO_SAMPLE_RATE_HZ)
            sound.layout = "mono"
            sound.bit_rate = AUDIO_BITRATE_BPS
            sound.options = {"aac_coder": AUDIO_CODER}
        for image in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=pixel_format)))
        container.mux(video.encode())
        if sound is not None:
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, dtype=np.int16)[None], format="s16", layout="mono")
            chunk.sample_rate = AUDIO_SAMPLE_RATE_HZ
            chunk.pts = 0
            container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    os.replace(temporary, path)


@dataclass
class DecodedClip:
    """A decoded mp4: `video` `(T, H, W)` uint8 gray (or `(T, H, W, 3)` RGB), `audio` `(T * 640,)` float32 in [-1, 1] or None."""

    video: np.ndarray
    audio: np.ndarray | None


def read_mp4(path: str | Path, rgb: bool = False) -> DecodedClip:
    """Decode a corpus mp4, with the audio aligned to the video and trimmed to 640 samples per frame."""
    with av.open(str(path)) as container:
        images = [f.to_ndarray(format="rgb24" if rgb else "gray") for f in container.decode(video=0)]
    video = np.stack(images)
    audio = None
    with av.open(str(path)) as container:
        if container.streams.audio:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLE_RATE_HZ)
            pieces = []
            for frame in container.decode(stream):
                start = int(round(frame.pts * stream.time_base * AUDIO_SAMPLE_RATE_HZ)) if frame.pts is not None else 0
                for converted in resampler.resample(frame):
                    samples = converted.to_ndarray().reshape(-1)
                    if start < 0:  # encoder priming before time 0
                        samples = samples[-start:]
                    pieces.append(samples)
                    start = max(start, 0)
            audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
            wanted = len(video) * SAMPLES_PER_FRAME
            audio = np.pad(audio[:wanted], (0, max(0, wanted - len(audio))))
    return DecodedClip(video=video, audio=audio)
