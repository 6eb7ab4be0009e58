"""Media the tests make themselves: PyAV-written clips with known frames and tones, and an animated real face."""

import numpy as np


def tone(seconds: float, sample_rate: int, frequency: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine wave."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def frame_number_video(num_frames: int, height: int = 64, width: int = 64) -> np.ndarray:
    """(T, H, W, 3) uint8 frames whose brightness encodes the frame index (10 levels apart, survives lossy codecs)."""
    levels = (np.arange(num_frames) * 10 % 250 + 2).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3)).copy()


def write_clip(
    path,
    frames: np.ndarray | None = None,
    fps: float = 25,
    audio: np.ndarray | None = None,
    sample_rate: int = 16_000,
    video_codec: str = "libx264",
    audio_codec: str = "aac",
) -> None:
    """Writes frames (T, H, W, 3) uint8 and/or audio (N,) or (C, N) float in [-1, 1] into a container."""
    import av
    from fractions import Fraction

    with av.open(str(path), mode="w") as container:
        video_stream = audio_stream = None
        if frames is not None:
            video_stream = container.add_stream(video_codec, rate=Fraction(fps).limit_denominator(1001))
            video_stream.height, video_stream.width = frames.shape[1:3]
            video_stream.pix_fmt = "yuv420p"
            if video_codec == "libx264":
                video_stream.options = {"crf": "10", "preset": "ultrafast"}
        if audio is not None:
            audio = np.atleast_2d(audio)
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            audio_stream = container.add_stream(audio_codec, rate=sample_rate, layout=layout)
        if video_stream is not None:
            for frame in frames:
                for packet in video_stream.encode(
                    av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                ):
                    container.mux(packet)
            container.mux(video_stream.encode())
        if audio_stream is not None:
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
            chunk = 1024
            for start in range(0, pcm.shape[1], chunk):
                piece = np.ascontiguousarray(pcm[:, start : start + chunk])
                packed = piece.T.reshape(1, -1) if layout == "stereo" else piece
                frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=layout)
                frame.sample_rate = sample_rate
                frame.pts = start
                for packet in audio_stream.encode(frame):
                    container.mux(packet)
            container.mux(audio_stream.encode())


ASTRONAUT_MOUTH = (223.0, 146.0)  # (x, y) pixels, mouth centre in skimage.data.astronaut() (512x512)


def astronaut_talking_video(num_frames: int = 50, height: int = 480, width: int = 640, scale: float = 1.6):
    """The astronaut's face pasted into a 640x480 canvas, panning and zooming with known motion.

    Returns:
        frames (T, H, W, 3) uint8 and the true mouth centre per frame, (T, 2) float (x, y).
    """
    from scipy.ndimage import map_coordinates
    from skimage.data import astronaut

    image = astronaut().astype(np.float32)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    frames, mouths = [], []
    for t in range(num_frames):
        phase = 2 * np.pi * t / num_frames
        zoom = scale * (1.0 + 0.1 * np.sin(phase))
        # The mouth moves along a known path: 40 px left/right and 20 px up/down around the canvas centre.
        mouth_x = width / 2 + 40 * np.sin(phase)
        mouth_y = height / 2 + 20 * np.cos(phase)
        source_x = ASTRONAUT_MOUTH[0] + (cols - mouth_x) / zoom
        source_y = ASTRONAUT_MOUTH[1] + (rows - mouth_y) / zoom
        frame = np.stack(
            [map_coordinates(image[..., c], [source_y, source_x], order=1, mode="nearest") for c in range(3)], axis=-1
        )
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
        mouths.append((mouth_x, mouth_y))
    return np.stack(frames), np.asarray(mouths)
