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


def astronaut_head_motion(t: np.ndarray, height: int = 480, width: int = 640, scale: float = 1.6):
    """The head pose of `astronaut_talking_head` at times `t` (s): mouth position (x, y), zoom, roll (rad), opening."""
    t = np.asarray(t, np.float64)
    mouth_x = width / 2 + 50 * np.sin(2 * np.pi * 0.35 * t)
    mouth_y = height / 2 + 25 * np.sin(2 * np.pi * 0.5 * t + 1.0)
    zoom = scale * (1.0 + 0.12 * np.sin(2 * np.pi * 0.25 * t))
    roll = np.deg2rad(10.0) * np.sin(2 * np.pi * 0.3 * t + 0.5)
    opening = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t)  # syllable-rate jaw motion, 0 (closed) .. 1 (open)
    return np.stack([mouth_x, mouth_y], -1), zoom, roll, opening


def astronaut_talking_head(
    seconds: float, fps: float, height: int = 480, width: int = 640, scale: float = 1.6, gray: bool = False
):
    """A real face (scikit-image's astronaut) that moves, zooms, rolls up to 10 degrees and opens its mouth.

    The pose is a function of time (`astronaut_head_motion`), so clips at different frame rates show the same motion.
    The lips part symmetrically about the mouth centre (a local vertical stretch), so the centre stays where the pose
    puts it.

    Returns:
        frames (T, H, W, 3) uint8 ((T, H, W) luma with `gray=True`, a third of the work), T = round(seconds * fps),
        and the true mouth centre per frame, (T, 2) float (x, y).
    """
    from scipy.ndimage import map_coordinates
    from skimage.data import astronaut

    image = astronaut().astype(np.float32)
    image = image @ np.array([[0.299], [0.587], [0.114]], np.float32) if gray else image
    times = np.arange(round(seconds * fps)) / fps
    mouths, zooms, rolls, openings = astronaut_head_motion(times, height, width, scale)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for (mouth_x, mouth_y), zoom, roll, opening in zip(mouths, zooms, rolls, openings):
        # frame pixel -> face coordinates (image px, relative to the astronaut's mouth), undoing roll and zoom
        dx, dy = (cols - mouth_x) / zoom, (rows - mouth_y) / zoom
        u = np.cos(roll) * dx + np.sin(roll) * dy
        v = -np.sin(roll) * dx + np.cos(roll) * dy
        # lips part: near the mouth line, sample closer to it (up to 3 image px), symmetric above and below
        stretch = 3.0 * opening * np.exp(-(u / 14.0) ** 2 - (v / 7.0) ** 2)
        v = v - np.sign(v) * np.minimum(np.abs(v), stretch)
        source = [ASTRONAUT_MOUTH[1] + v, ASTRONAUT_MOUTH[0] + u]
        channels = [map_coordinates(channel, source, order=1, mode="nearest") for channel in image.transpose(2, 0, 1)]
        frame = np.stack(channels, -1)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    frames = np.stack(frames)
    return (frames[..., 0] if gray else frames), mouths
