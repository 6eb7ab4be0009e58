"""Rendering a mouth from its shape track: soft-edged lips, dark aperture, teeth; and the 96x96 ROI video.

Shapes are drawn as implicit curves evaluated on the pixel grid, with a one-pixel linear edge
(anti-aliasing without supersampling). The ROI video is rendered a few frames at a time, and its mouth only
in the window where some part of it can cover a pixel. Coordinates `(u, v)` are in the mouth's own frame:
origin at the mouth centre, `u` to the right, `v` down, one unit = the mouth's half-width at rest.
"""

import numpy as np

from .speakers import Speaker


ROI_SIZE_PX = 96  # stored ROI; the model's 88x88 input is its centre crop
CROP_SIZE_PX = 88
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 RGB -> gray
CENTRE_JITTER_PX = 0.6
ROTATION_JITTER_DEG = 1.0
SCALE_JITTER = 0.01
MOUTH_CENTRE_Y = 0.55  # mouth centre, in ROI sides from the top (the nose shadow sits above)
FRAMES_PER_BLOCK = 4  # frames rendered together: their float64 temporaries (0.3 MB each) stay in the CPU cache
MIN_HALF_HEIGHT = 1e-3  # mouth units; a flatter ellipse is drawn this high
LIP_OVERHANG = 0.04  # mouth units the lips' outline reaches beyond the mouth's half-width
SEAM_HALF_WIDTH_PX = 1.2  # the dark line between the lips, each side of the mouth line


def _soft_ellipse(u: np.ndarray, v: np.ndarray | float, half_width, half_height, pixel) -> np.ndarray:
    """Coverage in [0, 1] of the ellipse `(u/half_width)^2 + (v/half_height)^2 <= 1`, edges one `pixel` wide."""
    a, b = half_width, np.maximum(half_height, MIN_HALF_HEIGHT)
    level = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    gradient = np.sqrt((u / a**2) ** 2 + (v / b**2) ** 2) / np.maximum(level, 1e-6)
    distance = (level - 1.0) / np.maximum(gradient, 1e-6)
    return np.clip(0.5 - distance / pixel, 0.0, 1.0)


def _soft_ellipse_extent(half_width, half_height, pixel):
    """Half-extents along `u` and `v` beyond which the coverage of `_soft_ellipse` is exactly 0.

    Its distance estimate `(level - 1) / |gradient|` is at least `(level - 1) * min(a, b)`, so the coverage
    `0.5 - distance / pixel` is 0 once `level >= 1 + pixel / (2 min(a, b))`.
    """
    a, b = half_width, np.maximum(half_height, MIN_HALF_HEIGHT)
    max_level = 1.0 + 0.5 * pixel / np.minimum(a, b)
    return a * max_level, b * max_level


def _mouth_outline(shapes: np.ndarray):
    """`(T, 1, 1)` each, in mouth units: lip half-width, aperture half-height, aperture half-width, lip protrusion."""
    opening, spread, rounding = (shapes[:, k, None, None] for k in range(3))
    half_width = 1.0 + 0.15 * spread - 0.3 * rounding
    gap = 0.5 * opening  # aperture half-height
    inner_width = half_width * (0.88 - 0.38 * rounding)
    protrusion = 1.0 + 0.4 * rounding
    return half_width, gap, inner_width, protrusion


def mouth_extent(shapes: np.ndarray, speaker: Speaker, pixel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(T, 1, 1)` half-extents along `u` and `v` beyond which every layer of `mouth_layers` is exactly 0.

    Each bound has one `pixel` to spare, far more than floating-point rounding can move an edge.
    """
    half_width, gap, inner_width, protrusion = _mouth_outline(shapes)
    upper_u, upper_v = _soft_ellipse_extent(half_width + LIP_OVERHANG, gap + speaker.upper_lip * protrusion, pixel)
    lower_u, lower_v = _soft_ellipse_extent(half_width + LIP_OVERHANG, gap + speaker.lower_lip * protrusion, pixel)
    corners_u, _ = _soft_ellipse_extent(inner_width, 1.0, pixel)  # bounds the aperture, teeth and seam along u
    _, aperture_v = _soft_ellipse_extent(inner_width, gap, pixel)  # bounds the teeth too
    seam_v = SEAM_HALF_WIDTH_PX * pixel
    extent_u = np.maximum.reduce([upper_u, lower_u, corners_u])
    extent_v = np.maximum.reduce([upper_v, lower_v, aperture_v, seam_v])
    return extent_u + pixel, extent_v + pixel


def mouth_layers(shapes: np.ndarray, u: np.ndarray, v: np.ndarray, speaker: Speaker, pixel: np.ndarray) -> dict[str, np.ndarray]:
    """Coverage of each part of the mouth.

    Args:
        shapes: `(T, 4)` open, spread, round, teeth (see `visemes.SHAPE_NAMES`).
        u, v: `(T, H, W)` mouth coordinates of every pixel.
        speaker: lip thicknesses.
        pixel: `(T, 1, 1)` size of one pixel in mouth units.

    Returns:
        "lips", "aperture", "teeth", "seam": `(T, H, W)` float32 coverages in [0, 1]; "upper": 1 above the mouth line.
    """
    half_width, gap, inner_width, protrusion = _mouth_outline(shapes)
    teeth = shapes[:, 3, None, None]
    above = v < 0
    upper = above.astype(np.float32)
    outer_height = gap + np.where(above, speaker.upper_lip, speaker.lower_lip) * protrusion
    lips = _soft_ellipse(u, v, half_width + LIP_OVERHANG, outer_height, pixel)
    within_corners = _soft_ellipse(u, 0.0, inner_width, 1.0, pixel)  # |u| < inner_width, whatever v
    # A slit thinner than a pixel fades out instead of drawing a line (the distance estimate degenerates).
    aperture = _soft_ellipse(u, v, inner_width, gap, pixel) * within_corners * np.clip(2.0 * gap / pixel, 0.0, 1.0)
    upper_teeth = np.clip(0.5 - (v - (-gap + 0.22)) / pixel, 0.0, 1.0)
    lower_teeth = 0.5 * np.clip(0.5 + (v - (gap - 0.1)) / pixel, 0.0, 1.0)
    teeth_cover = aperture * teeth * np.maximum(upper_teeth, lower_teeth)
    seam = np.clip(1.0 - np.abs(v) / (SEAM_HALF_WIDTH_PX * pixel), 0.0, 1.0) * within_corners
    return {"lips": lips, "aperture": aperture, "teeth": teeth_cover, "seam": seam * (1.0 - aperture), "upper": upper}


def composite_mouth(image: np.ndarray, layers: dict[str, np.ndarray], colours: dict[str, np.ndarray]) -> np.ndarray:
    """Paint the mouth onto `image` `(T, H, W, C)` with `colours[name]` `(C,)`; returns the new image."""

    def paint(base, coverage, colour):
        coverage = coverage[..., None]
        return base * (1.0 - coverage) + colour * coverage

    lip_colour = colours["lip"] * (1.0 - 0.12 * layers["upper"][..., None])  # upper lip in shadow
    image = image * (1.0 - layers["lips"][..., None]) + lip_colour * layers["lips"][..., None]
    image = paint(image, layers["aperture"], colours["inner"])
    image = paint(image, layers["teeth"], colours["teeth"])
    return paint(image, 0.7 * layers["seam"], colours["inner"])


def _jitter(rng: np.random.Generator, num_frames: int, amplitude: float) -> np.ndarray:
    return rng.uniform(-amplitude, amplitude, num_frames).astype(np.float32)[:, None, None]


def _roi_frames(shapes, speaker: Speaker, centre_x, centre_y, angle, scale) -> np.ndarray:
    """`(t, 96, 96)` float64 gray frames in [0, 1] before noise, from `(t, 4)` shapes and `(t, 1, 1)` poses."""
    size = ROI_SIZE_PX
    grid = np.arange(size, dtype=np.float32) + 0.5
    y, x = grid[None, :, None], grid[None, None, :]
    cos, sin = np.cos(angle), np.sin(angle)
    u = (cos * (x - centre_x) + sin * (y - centre_y)) / scale
    v = (-sin * (x - centre_x) + cos * (y - centre_y)) / scale

    gray = {name: np.float32(np.dot(getattr(speaker, name), LUMA)) for name in ("skin", "lip", "inner", "teeth")}
    light = 1.0 + speaker.shading * (0.5 - y / size) - 0.35 * np.exp(-((u / 1.6) ** 2 + ((v + 2.0) / 0.45) ** 2))
    chin = 0.12 * np.exp(-((u / 1.2) ** 2 + ((v - 1.3) / 0.3) ** 2))  # shadow under the lower lip
    background = (gray["skin"] * (light - chin))[..., None]

    # Painting layers that are 0 leaves the background as it is: paint only the window the mouth reaches.
    pixel = 1.0 / scale
    extent_u, extent_v = mouth_extent(shapes, speaker, pixel)
    near_mouth = ((np.abs(u) < extent_u) & (np.abs(v) < extent_v)).any(axis=0)
    rows, columns = (np.flatnonzero(near_mouth.any(axis=axis)) for axis in (1, 0))
    window = (slice(None), slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
    layers = mouth_layers(shapes, u[window], v[window], speaker, pixel)
    image = background.astype(np.float64)
    image[window] = composite_mouth(background[window], layers, {k: np.array([c], np.float32) for k, c in gray.items()})
    return image[..., 0]


def render_roi(shapes: np.ndarray, speaker: Speaker, rng: np.random.Generator) -> np.ndarray:
    """The gray mouth-ROI video of one utterance.

    Args:
        shapes: `(T, 4)` mouth-shape track at 25 fps.
        speaker: appearance.
        rng: draws the per-frame jitter and pixel noise.

    Returns:
        `(T, 96, 96)` uint8; `[:, 4:92, 4:92]` is the 88x88 crop.
    """
    num_frames, size = len(shapes), ROI_SIZE_PX
    centre_x = size / 2 + _jitter(rng, num_frames, CENTRE_JITTER_PX)
    centre_y = size * MOUTH_CENTRE_Y + _jitter(rng, num_frames, CENTRE_JITTER_PX)
    angle = np.deg2rad(speaker.rotation_deg + _jitter(rng, num_frames, ROTATION_JITTER_DEG))
    scale = speaker.mouth_half_width * size * (1.0 + _jitter(rng, num_frames, SCALE_JITTER))
    noise = rng.standard_normal((num_frames, size, size), dtype=np.float32) * speaker.noise_std

    video = np.empty((num_frames, size, size), np.uint8)
    for start in range(0, num_frames, FRAMES_PER_BLOCK):
        block = slice(start, start + FRAMES_PER_BLOCK)
        image = _roi_frames(shapes[block], speaker, centre_x[block], centre_y[block], angle[block], scale[block])
        video[block] = np.clip(np.round(image * 255.0 + noise[block]), 0, 255).astype(np.uint8)
    return video


def centre_crop(video: np.ndarray, size: int = CROP_SIZE_PX) -> np.ndarray:
    """`(T, H, W)` -> `(T, size, size)` centre crop."""
    top, left = (video.shape[1] - size) // 2, (video.shape[2] - size) // 2
    return np.ascontiguousarray(video[:, top : top + size, left : left + size])
