"""A long talking-mouth video made cheaply: synthetic-corpus clips tiled with pauses, written as a stream."""

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_long_video(path, clips: list[str], seconds: float, pause_s=(0.4, 1.0), seed: int = 0) -> dict:
    """Writes an 88x88 gray, 25 fps H.264 + AAC mp4 of `seconds` seconds: the given mouth-crop clips (e.g. the
    synthetic corpus's roi88 files) one after another, separated by pauses of silence and a still mouth.

    Never holds more than one clip in memory. Returns {"frames": ..., "segments": [(start_s, end_s), ...]}.
    """
    import av

    from modeling_mmsllama.media_mmsllama import read_media

    rng = np.random.default_rng(seed)
    decoded = [read_media(c) for c in clips]
    total = int(round(seconds * 25))
    segments, frame = [], 0
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width = video.height = 88
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "28", "preset": "ultrafast"}
        sound = container.add_stream("aac", rate=16000, layout="mono")
        sample = 0

        def put(frames: np.ndarray, audio: np.ndarray):
            nonlocal sample
            for image in frames:
                container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="gray")))
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
            for start in range(0, len(pcm), 1024):
                piece = av.AudioFrame.from_ndarray(pcm[None, start : start + 1024].copy(), format="s16", layout="mono")
                piece.sample_rate, piece.pts, piece.time_base = 16000, sample, Fraction(1, 16000)
                sample += piece.samples
                container.mux(sound.encode(piece))

        index = 0
        while frame < total:
            media = decoded[index % len(decoded)]
            index += 1
            n = min(len(media.frames), total - frame)
            audio = np.zeros(n * 640, np.float32)
            audio[: min(len(media.audio), n * 640)] = media.audio[: n * 640]
            put(media.frames[:n], audio)
            segments.append((frame / 25, (frame + n) / 25))
            frame += n
            pause = min(int(rng.uniform(*pause_s) * 25), total - frame)
            if pause > 0:
                still = np.repeat(media.frames[n - 1 : n], pause, axis=0)
                put(still, np.zeros(pause * 640, np.float32))
                frame += pause
        container.mux(video.encode())
        container.mux(sound.encode())
    return {"frames": total, "segments": segments, "path": Path(path)}
