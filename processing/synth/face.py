"""The talking-face variant: a drawn face with head motion and the speaking mouth, 320x240 RGB at 25 fps.

It exists to exercise the raw-video path (face detection, landmarks, mouth crop) end to end. The face
(skin, hair, ears, eyes, brows, nose) is drawn once per utterance on a texture larger than the frame;
each frame warps it with the head pose (translation, rotation, scale, smooth over time), and the mouth is
then painted with the same renderer as the ROI videos, in the head's pose. The true mouth centre of
every frame is returned, so a crop pipeline can be checked against it.
"""

import numpy as np
from PIL import Image

from .mouth import composite_mouth, mouth_layers
from .speakers import Speaker


FRAME_WIDTH_PX, FRAME_HEIGHT_PX = 320, 240
HEAD_HALF_WIDTH_PX = 62.0  # one head unit, at scale 1
HEAD_CENTRE_PX = (160.0, 112.0)
MOUTH_IN_HEAD = (0.0, 0.62)  # mouth centre in head units (x right, y down, origin between the cheeks)
MOUTH_HALF_WIDTH_IN_HEAD = 0.3
TEXTURE_MARGIN_PX = 48  # the texture extends beyond the frame so head motion never shows its edge
MOUTH_WINDOW_PX = 40  # half-size of the square around the mouth that is re-rendered every frame
MAX_ROTATION_DEG = 5.0
MAX_SCALE_CHANGE = 0.05


def _coverage(x, y, centre, half_axes, pixel):
    """Soft coverage of an axis-aligned ellipse in head units (edges one `pixel` wide)."""
    a, b = half_axes
    dx, dy = x - centre[0], y - centre[1]
    level = np.sqrt((dx / a) ** 2 + (dy / b) ** 2)
    gradient = np.sqrt((dx / a**2) ** 2 + (dy / b**2) ** 2) / np.maximum(level, 1e-6)
    return np.clip(0.5 - (level - 1.0) / np.maximum(gradient, 1e-6) / pixel, 0.0, 1.0)[..., None]


def _face_texture(speaker: Speaker) -> np.ndarray:
    """The still face without its mouth: `(H + 2 margin, W + 2 margin, 3)` float32 RGB in [0, 1]."""
    height, width = FRAME_HEIGHT_PX + 2 * TEXTURE_MARGIN_PX, FRAME_WIDTH_PX + 2 * TEXTURE_MARGIN_PX
    pixel = 1.0 / HEAD_HALF_WIDTH_PX
    y = ((np.arange(height, dtype=np.float32) + 0.5 - TEXTURE_MARGIN_PX - HEAD_CENTRE_PX[1]) * pixel)[:, None]
    x = ((np.arange(width, dtype=np.float32) + 0.5 - TEXTURE_MARGIN_PX - HEAD_CENTRE_PX[0]) * pixel)[None, :]
    skin, hair = np.array(speaker.skin, np.float32), np.array(speaker.hair, np.float32)

    def paint(image, coverage, colour):
        return image * (1.0 - coverage) + np.asarray(colour, np.float32) * coverage

    image = np.array(speaker.background, np.float32) * (1.0 - 0.15 * (y - x * 0.3))[..., None]
    image = paint(image, _coverage(x, y, (0.0, -0.25), (1.12, 1.2), pixel), hair)  # hair behind the head
    image = paint(image, np.clip(_coverage(x, y, (0.0, 1.75), (0.5, 0.9), pixel), 0, 1), skin * 0.85)  # neck
    for side in (-1.0, 1.0):
        image = paint(image, _coverage(x, y, (side * 0.98, 0.1), (0.14, 0.24), pixel), skin * 0.9)  # ears
    face = _coverage(x, y, (0.0, 0.12), (0.95, 1.22), pixel)
    rim = np.clip(np.sqrt((x / 0.95) ** 2 + ((y - 0.12) / 1.22) ** 2), 0, 1)[..., None] ** 6
    image = paint(image, face, skin * (1.0 - 0.25 * rim - 0.08 * x[..., None] * speaker.shading))
    fringe = _coverage(x, y, (0.0, -0.95), (1.0, 0.42), pixel) * face
    image = paint(image, fringe, hair)
    for side in (-1.0, 1.0):
        eye = (side * 0.38, -0.12)
        image = paint(image, _coverage(x, y, (eye[0], eye[1] - 0.02), (0.27, 0.16), pixel), skin * 0.78)  # socket
        image = paint(image, _coverage(x, y, eye, (0.2, 0.085), pixel), (0.93, 0.92, 0.9))
        image = paint(image, _coverage(x, y, eye, (0.075, 0.075), pixel) * _coverage(x, y, eye, (0.2, 0.085), pixel), hair * 0.6 + 0.15)
        image = paint(image, _coverage(x, y, eye, (0.035, 0.035), pixel), (0.02, 0.02, 0.02))
        image = paint(image, _coverage(x, y, (side * 0.38, -0.34), (0.25, 0.05), pixel), hair)  # brow
        image = paint(image, _coverage(x, y, (side * 0.085, 0.33), (0.055, 0.032), pixel), skin * 0.35)  # nostril
    ridge = np.exp(-((x / 0.08) ** 2)) * np.clip((y + 0.1) / 0.4, 0, 1) * (y < 0.35)
    image = paint(image, (0.1 * ridge)[..., None], (1.0, 1.0, 1.0))
    image = paint(image, _coverage(x, y, (0.0, 0.27), (0.17, 0.09), pixel) * 0.3, skin * 0.7)  # nose tip shadow
    return np.clip(image, 0.0, 1.0)


def _head_motion(rng: np.random.Generator, num_frames: int, amplitude_px: float) -> np.ndarray:
    """`(T, 4)` smooth head pose per frame: x shift, y shift (px), rotation (rad), scale."""
    time = np.arange(num_frames, dtype=np.float64) / 25.0
    pose = np.zeros((num_frames, 4))
    for column, amplitude in enumerate((amplitude_px, 0.5 * amplitude_px, np.deg2rad(MAX_ROTATION_DEG), MAX_SCALE_CHANGE)):
        for _ in range(2):  # two sinusoids per degree of freedom, 0.1..0.8 Hz
            frequency, phase = rng.uniform(0.1, 0.8), rng.uniform(0, 2 * np.pi)
            pose[:, column] += 0.5 * amplitude * np.sin(2 * np.pi * frequency * time + phase)
    pose[:, 3] += 1.0
    return pose


def render_face(shapes: np.ndarray, speaker: Speaker, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The talking-face video of one utterance.

    Args:
        shapes: `(T, 4)` mouth-shape track at 25 fps.
        speaker: appearance and head-motion amplitude.
        rng: draws the head motion and pixel noise.

    Returns:
        video `(T, 240, 320, 3)` uint8 RGB, and mouth centres `(T, 2)` float32 (x, y) in pixels.
    """
    texture = Image.fromarray((_face_texture(speaker) * 255).round().astype(np.uint8))
    pose = _head_motion(rng, len(shapes), speaker.head_motion_px)
    num_frames = len(shapes)
    video = np.empty((num_frames, FRAME_HEIGHT_PX, FRAME_WIDTH_PX, 3), np.uint8)
    centres = np.empty((num_frames, 2), np.float32)
    colours = {name: np.array(getattr(speaker, name), np.float32) for name in ("lip", "inner", "teeth")}
    offsets = np.arange(-MOUTH_WINDOW_PX, MOUTH_WINDOW_PX, dtype=np.float32) + 0.5
    texture_centre = np.array(HEAD_CENTRE_PX) + TEXTURE_MARGIN_PX
    for index, (shape, (shift_x, shift_y, angle, scale)) in enumerate(zip(shapes, pose)):
        centre = np.array([HEAD_CENTRE_PX[0] + shift_x, HEAD_CENTRE_PX[1] + shift_y])
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        inverse = rotation.T / scale  # frame pixel offset from the head centre -> texture pixel offset
        offset = texture_centre - inverse @ centre
        coefficients = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
        video[index] = np.asarray(texture.transform((FRAME_WIDTH_PX, FRAME_HEIGHT_PX), Image.AFFINE, coefficients, Image.BILINEAR))

        mouth = centre + scale * HEAD_HALF_WIDTH_PX * (rotation @ np.array(MOUTH_IN_HEAD))
        left, top = int(mouth[0]) - MOUTH_WINDOW_PX, int(mouth[1]) - MOUTH_WINDOW_PX
        dx = (left + MOUTH_WINDOW_PX + offsets[None, :]) - mouth[0]
        dy = (top + MOUTH_WINDOW_PX + offsets[:, None]) - mouth[1]
        unit = scale * HEAD_HALF_WIDTH_PX * MOUTH_HALF_WIDTH_IN_HEAD
        u = ((np.cos(angle) * dx + np.sin(angle) * dy) / unit).astype(np.float32)[None]
        v = ((-np.sin(angle) * dx + np.cos(angle) * dy) / unit).astype(np.float32)[None]
        layers = mouth_layers(shape[None], u, v, speaker, np.full((1, 1, 1), 1.0 / unit, np.float32))
        rows, columns = slice(top, top + 2 * MOUTH_WINDOW_PX), slice(left, left + 2 * MOUTH_WINDOW_PX)
        window = video[index, rows, columns].astype(np.float32)[None] / 255.0
        video[index, rows, columns] = (composite_mouth(window, layers, colours)[0] * 255.0).round().clip(0, 255).astype(np.uint8)
        centres[index] = mouth
    noise = rng.standard_normal((num_frames, FRAME_HEIGHT_PX, FRAME_WIDTH_PX, 1), dtype=np.float32) * speaker.noise_std
    return np.clip(video + noise, 0, 255).round().astype(np.uint8), centres
