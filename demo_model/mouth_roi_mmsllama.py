"""Mouth regions of interest from raw face video: face detection, landmarks, smoothing, similarity warp, 96x96 crop.

The visual encoder (AV-HuBERT) was trained on mouth crops made the Auto-AVSR way: a similarity warp of each frame that
puts the eyes and nose on a fixed template, then a 96x96 crop centred on the mouth. This file does the same with any
[`FaceLandmarker`]; [`DlibFaceLandmarker`] is the default and ships its weights inside PyPI wheels, so it runs offline.

Plug in another detector by subclassing [`FaceLandmarker`] (two methods) and passing it to [`MouthROIExtractor`].
"""

import functools
import importlib.util
import os
from dataclasses import dataclass, field

import numpy as np

from .configuration_mmsllama import ROI_SIZE
from .errors_mmsllama import MMSLlamaInputError


KEYPOINT_NAMES = ("eye_image_left", "eye_image_right", "nose_tip", "mouth_centre")
# Where the warp puts the eyes and the nose tip, in px of a 256x256 canonical face. The eye centres are 64 px apart,
# so a typical mouth (0.8-0.9 eye distances wide) fills a little over half of the 96 px crop, as in LRS3 crops.
TEMPLATE_KEYPOINTS = np.array([[96.0, 96.0], [160.0, 96.0], [128.0, 142.0]])
FACE_SELECTIONS = ("largest", "central")
TRACK_WINDOW = 1.8  # side of the window a tracked face is re-detected in, in face-box sides
DETECT_FACE_PX = 100  # a tracked face is re-detected at about this size (dlib's HOG window is 80 px)
PATCH_PX = 32  # side of the face patch that checks a tracked face is still there
PATCH_MATCH = 0.5  # normalised correlation from which two face patches show the same face (same face 0.2 s apart
# on a head moving 110 px/s and rolling 19 degrees/s: 0.74-0.86; a cut to another place: -0.1)


@dataclass(frozen=True)
class FaceBox:
    """A detected face, in pixels of the frame it was found in."""

    left: float
    top: float
    right: float
    bottom: float
    score: float = 1.0

    @property
    def area(self) -> float:
        return max(self.right - self.left, 0.0) * max(self.bottom - self.top, 0.0)

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.left + self.right) / 2, (self.top + self.bottom) / 2])

    def as_array(self) -> np.ndarray:
        return np.array([self.left, self.top, self.right, self.bottom], dtype=np.float64)


class FaceLandmarker:
    """The interface a face detector + landmark model implements to drive [`MouthROIExtractor`].

    Both methods take one grayscale frame, `(H, W)` uint8.
    """

    def detect(self, gray: np.ndarray) -> list[FaceBox]:
        """Returns every face found in the frame (any order; empty when there is none)."""
        raise NotImplementedError

    def keypoints(self, gray: np.ndarray, box: FaceBox) -> np.ndarray:
        """Returns the `(4, 2)` float (x, y) pixel positions of [`KEYPOINT_NAMES`] for the face in `box`."""
        raise NotImplementedError


def _face_recognition_models_file(name: str) -> str:
    # Found by location rather than imported: the package's __init__ needs pkg_resources, gone from new setuptools.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The dlib face landmarker needs the 68-point model from `pip install face-recognition-models` "
            "(and `pip install dlib-bin`)."
        )
    return os.path.join(spec.submodule_search_locations[0], "models", name)


@functools.lru_cache(maxsize=2)
def _load_dlib(predictor_path: str):
    try:
        import dlib
    except ImportError as error:
        raise ImportError(
            "The dlib face landmarker needs dlib: `pip install dlib-bin face-recognition-models`."
        ) from error
    return dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(predictor_path)


class DlibFaceLandmarker(FaceLandmarker):
    """dlib's HOG face detector and 68-point shape predictor (iBUG 300-W landmarks; the weights' licence excludes
    commercial use, see docs/processing.md).

    Args:
        upsample (`int`): times the detector upsamples the frame; 1 finds faces down to ~40 px, at 4x the cost.
        min_score (`float`): detections scoring below this are dropped (dlib's raw HOG scores; real frontal faces
            score ~0.5-2, textured backgrounds ~0-0.2).
        max_side (`int`): frames larger than this (px, longer side) are downscaled for detection only.
        predictor_path (`str`, *optional*): a 68-point `.dat` file; defaults to the one in `face-recognition-models`.
    """

    def __init__(
        self, upsample: int = 0, min_score: float = 0.3, max_side: int = 640, predictor_path: str | None = None
    ):
        self.upsample = upsample
        self.min_score = min_score
        self.max_side = max_side
        self.predictor_path = predictor_path or _face_recognition_models_file("shape_predictor_68_face_landmarks.dat")
        _load_dlib(self.predictor_path)  # fail now, not on the first frame, when dlib is missing

    def detect(self, gray: np.ndarray) -> list[FaceBox]:
        _, detector, _ = _load_dlib(self.predictor_path)  # cached; the instance holds no dlib object, so it deep-copies
        step = max(1, int(np.ceil(max(gray.shape) / self.max_side)))
        small = np.ascontiguousarray(gray[::step, ::step])
        rectangles, scores, _ = detector.run(small, self.upsample, 0.0)
        return [
            FaceBox(r.left() * step, r.top() * step, r.right() * step, r.bottom() * step, score)
            for r, score in zip(rectangles, scores, strict=True)
            if score >= self.min_score
        ]

    def keypoints(self, gray: np.ndarray, box: FaceBox) -> np.ndarray:
        dlib, _, predictor = _load_dlib(self.predictor_path)
        rectangle = dlib.rectangle(int(box.left), int(box.top), int(box.right), int(box.bottom))
        shape = predictor(np.ascontiguousarray(gray), rectangle)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        # iBUG 68-point layout: 36-41 and 42-47 the eyes, 30 the nose tip, 48-67 the lips.
        return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48:68].mean(0)])


@dataclass
class MouthROIs:
    """The result of [`MouthROIExtractor`] on one clip.

    Attributes:
        rois (`np.ndarray`): `(T, 96, 96)` uint8 grayscale mouth crops, one per input frame.
        mouth_centres (`np.ndarray`): `(T, 2)` float (x, y) of each crop's centre in the input frame, in px.
        missing_frames (`list[int]`): frames where no face was found; their crops use landmarks interpolated from
            the nearest frames that had one.
        max_faces (`int`): the most faces seen in one detection frame (more than 1: the selection rule was used).
        notes (`list[str]`): what was done, in words.
        keypoints (`np.ndarray`): `(T, 4, 2)` smoothed [`KEYPOINT_NAMES`] positions each crop was warped with.
    """

    rois: np.ndarray
    mouth_centres: np.ndarray
    missing_frames: list[int] = field(default_factory=list)
    max_faces: int = 1
    notes: list[str] = field(default_factory=list)
    keypoints: np.ndarray | None = None


def to_gray(frames: np.ndarray) -> np.ndarray:
    """`(..., 3)` RGB uint8 -> `(...)` uint8 luma (ITU-R BT.601 weights in 8-bit fixed point)."""
    rgb = frames[..., :3].astype(np.uint16)
    return ((77 * rgb[..., 0] + 150 * rgb[..., 1] + 29 * rgb[..., 2] + 128) >> 8).astype(np.uint8)


def frame_ranges(frames: list[int]) -> str:
    """`[3, 4, 5, 9]` -> `"3-5, 9"`."""
    parts, start = [], None
    for i, frame in enumerate(frames):
        if start is None:
            start = frame
        if i + 1 == len(frames) or frames[i + 1] != frame + 1:
            parts.append(str(start) if start == frame else f"{start}-{frame}")
            start = None
    return ", ".join(parts)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping `source` (n, 2) points onto `target` (n, 2).

    Returns:
        `(2, 3)` matrix `M` with `target ~= source @ M[:, :2].T + M[:, 2]`.
    """
    # u = a x - b y + tx ; v = b x + a y + ty. Centred on the means, the least-squares (a, b) is closed-form.
    source_mean, target_mean = source.mean(0), target.mean(0)
    (x, y), (u, v) = (source - source_mean).T, (target - target_mean).T
    spread = float((x * x + y * y).sum())
    a, b = float((x * u + y * v).sum()) / spread, float((x * v - y * u).sum()) / spread
    linear = np.array([[a, -b], [b, a]])
    return np.concatenate([linear, (target_mean - linear @ source_mean)[:, None]], 1)


def _sample_bilinear(gray: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    height, width = gray.shape
    x0, y0 = np.floor(xs), np.floor(ys)
    fx, fy = xs - x0, ys - y0
    x0 = np.clip(x0.astype(np.int64), 0, width - 1)
    y0 = np.clip(y0.astype(np.int64), 0, height - 1)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = fx.astype(np.float32), fy.astype(np.float32)  # only the sampled pixels become floats, not the frame
    top = gray[y0, x0] * (1 - fx) + gray[y0, x1] * fx
    bottom = gray[y1, x0] * (1 - fx) + gray[y1, x1] * fx
    return np.clip(top * (1 - fy) + bottom * fy + 0.5, 0, 255).astype(np.uint8)


def warp_mouth_crop(gray: np.ndarray, keypoints: np.ndarray, size: int = ROI_SIZE) -> np.ndarray:
    """Crops `size` x `size` px around the mouth after warping eyes and nose onto [`TEMPLATE_KEYPOINTS`].

    Args:
        gray (`np.ndarray`): `(H, W)` uint8 frame.
        keypoints (`np.ndarray`): `(4, 2)` [`KEYPOINT_NAMES`] positions in that frame.
    """
    linear, shift, mouth = _to_template(keypoints)
    inverse = np.linalg.inv(linear)
    centre = inverse @ (mouth - shift)  # the crop centre in the frame
    offsets = np.arange(size) - (size - 1) / 2  # template px from the crop centre, along x (columns) and y (rows)
    xs = centre[0] + inverse[0, 0] * offsets[None, :] + inverse[0, 1] * offsets[:, None]  # (size, size) frame x
    ys = centre[1] + inverse[1, 0] * offsets[None, :] + inverse[1, 1] * offsets[:, None]
    return _sample_bilinear(gray, xs, ys)


def _to_template(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The warp onto the template (`(2, 2)` linear part, `(2,)` shift) and the mouth's template position."""
    to_template = similarity_transform(keypoints[:3], TEMPLATE_KEYPOINTS)
    linear, shift = to_template[:, :2], to_template[:, 2]
    return linear, shift, linear @ keypoints[3] + shift


def crop_corners(keypoints: np.ndarray, size: int = ROI_SIZE) -> np.ndarray:
    """Where the four corners of the crop that [`warp_mouth_crop`] cuts lie in the frame: `(4, 2)` (x, y) px.

    Two crops of a frame differ by at most the largest distance between their corners (rotation, scale and shift).
    """
    linear, shift, mouth = _to_template(keypoints)
    half = (size - 1) / 2
    corners = mouth + np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    return (corners - shift) @ np.linalg.inv(linear).T


def smooth_keypoints(keypoints: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over time of `(T, K, 2)` keypoints.

    Near the ends the window shrinks so that it stays centred (frame 0 is its own average), which avoids dragging the
    first and last frames towards their neighbours.
    """
    num_frames = len(keypoints)
    if window <= 1 or num_frames < 3:
        return keypoints
    frames = np.arange(num_frames)
    half = np.minimum(np.minimum(frames, num_frames - 1 - frames), window // 2)
    cumulative = np.concatenate([np.zeros_like(keypoints[:1]), np.cumsum(keypoints, axis=0)])
    totals = cumulative[frames + half + 1] - cumulative[frames - half]
    return totals / (2 * half + 1)[:, None, None]


def track_box(box: FaceBox, anchor_keypoints: np.ndarray, keypoints: np.ndarray) -> FaceBox:
    """Moves `box`, in which `anchor_keypoints` were located, along with the face to where `keypoints` put it.

    The similarity (shift, scale, rotation) that carries the anchor's eyes and nose onto the new ones moves the box
    centre and scales its sides; the box stays upright, as a detector's does.
    """
    motion = similarity_transform(anchor_keypoints[:3], keypoints[:3])
    scale = float(np.hypot(*motion[:, 0]))
    centre = motion[:, :2] @ box.centre + motion[:, 2]
    half_width, half_height = scale * (box.right - box.left) / 2, scale * (box.bottom - box.top) / 2
    return FaceBox(centre[0] - half_width, centre[1] - half_height, centre[0] + half_width, centre[1] + half_height,
                   box.score)  # fmt: skip


def face_patch(gray: np.ndarray, box: FaceBox) -> np.ndarray | None:
    """The face in `box` as a `PATCH_PX` x `PATCH_PX` patch (means of 4x4 samples, so that a shift of a pixel does not
    alias), zero-mean and unit-norm; None when it is flat."""
    height, width = gray.shape
    side = 4 * PATCH_PX
    xs = np.clip(np.linspace(box.left, box.right, side).round().astype(np.int64), 0, width - 1)
    ys = np.clip(np.linspace(box.top, box.bottom, side).round().astype(np.int64), 0, height - 1)
    patch = gray[ys[:, None], xs[None, :]].reshape(PATCH_PX, 4, PATCH_PX, 4).mean((1, 3), dtype=np.float32)
    patch -= patch.mean()
    norm = float(np.linalg.norm(patch))
    return patch / norm if norm > 1e-3 * PATCH_PX else None


def patches_match(reference: np.ndarray | None, current: np.ndarray | None) -> bool:
    """Whether two face patches show the same face (normalised correlation at least `PATCH_MATCH`)."""
    return reference is not None and current is not None and float((reference * current).sum()) >= PATCH_MATCH


def _window_around(box: FaceBox, frame_shape) -> tuple[int, int, int, int, int]:
    """(top, bottom, left, right, step) of the frame window a tracked face is re-detected in."""
    side = max(box.right - box.left, box.bottom - box.top)
    half = TRACK_WINDOW * side / 2
    (x, y), (height, width) = box.centre, frame_shape
    top, bottom = int(max(0, y - half)), int(min(height, y + half))
    left, right = int(max(0, x - half)), int(min(width, x + half))
    return top, bottom, left, right, max(1, int(side // DETECT_FACE_PX))


class MouthROIExtractor:
    """Turns raw face video into mouth crops.

    The face is checked every `detect_every` frames (and on every frame around a check that found none, to say exactly
    which frames have no face); landmarks are located on every `landmark_every`-th frame and on every frame with a
    detection (interpolated in between), smoothed over `smoothing_window` frames, and each frame is warped and cropped.

    With `tracking=True` (the default) the face is detected once and its box follows the landmarks from frame to
    frame; a check compares a patch of the tracked face with the previous check's ([`patches_match`]) and only when
    they differ runs the detector, in a window around the track scaled so the face is about 100 px wide, then in the
    whole frame. With `tracking=False` every check is a whole-frame detection and the boxes in between are
    interpolated from the detections on either side: with `landmark_every=1` this is the method before issue 23, kept
    for comparison (`benchmarks/bench_roi.py`: 3.5x fewer CPU seconds for the default).

    Args:
        landmarker ([`FaceLandmarker`], *optional*): defaults to [`DlibFaceLandmarker`] (built on first use).
        detect_every (`int`): frames between face detections.
        smoothing_window (`int`): frames in the landmark moving average (odd).
        face_selection (`str`): with several faces, follow the `"largest"` one or the one nearest the frame centre
            (`"central"`); it is chosen on the first frame with a face and tracked from there.
        max_missing_ratio (`float`): largest fraction of frames allowed without a face; above it the clip is refused.
        roi_size (`int`): crop side in px.
        tracking (`bool`): follow the face box with the landmarks and re-detect in a window around it.
        landmark_every (`int`): frames between landmark passes.
    """

    def __init__(
        self,
        landmarker: FaceLandmarker | None = None,
        detect_every: int = 5,
        smoothing_window: int = 5,
        face_selection: str = "largest",
        max_missing_ratio: float = 0.5,
        roi_size: int = ROI_SIZE,
        tracking: bool = True,
        landmark_every: int = 2,
    ):
        if face_selection not in FACE_SELECTIONS:
            raise ValueError(f"face_selection must be one of {FACE_SELECTIONS}, got {face_selection!r}.")
        self._landmarker = landmarker
        self.detect_every = max(1, detect_every)
        self.smoothing_window = smoothing_window
        self.face_selection = face_selection
        self.max_missing_ratio = max_missing_ratio
        self.roi_size = roi_size
        self.tracking = tracking
        self.landmark_every = max(1, landmark_every)

    @property
    def landmarker(self) -> FaceLandmarker:
        if self._landmarker is None:
            self._landmarker = DlibFaceLandmarker()
        return self._landmarker

    def _choose(self, faces: list[FaceBox], previous: FaceBox | None, frame_shape) -> FaceBox:
        if previous is not None:
            return min(faces, key=lambda face: np.linalg.norm(face.centre - previous.centre))
        if self.face_selection == "largest":
            return max(faces, key=lambda face: face.area)
        frame_centre = np.array([frame_shape[1] / 2, frame_shape[0] / 2])
        return min(faces, key=lambda face: np.linalg.norm(face.centre - frame_centre))

    def _detect_faces(self, gray: np.ndarray, source: str) -> tuple[dict[int, FaceBox], list[int], int]:
        """Boxes of the followed face on the frames where detection ran and found one; frames confirmed faceless."""
        num_frames = len(gray)
        key_frames = sorted(set(range(0, num_frames, self.detect_every)) | {num_frames - 1})
        found = {frame: self.landmarker.detect(gray[frame]) for frame in key_frames}
        if not any(found.values()):
            raise MMSLlamaInputError(
                f"{source}: no face found in any of the {num_frames} frames (checked frames "
                f"{frame_ranges(key_frames) if len(key_frames) < 12 else f'every {self.detect_every}th'}).",
                source=source,
                frames=list(range(num_frames)),
            )
        # Around a key frame without a face, look at every frame to find exactly where the face is missing.
        for index, frame in enumerate(key_frames):
            if not found[frame]:
                low = key_frames[index - 1] + 1 if index > 0 else 0
                high = key_frames[index + 1] if index + 1 < len(key_frames) else num_frames
                for other in range(low, high):
                    if other not in found:
                        found[other] = self.landmarker.detect(gray[other])

        boxes, previous = {}, None
        for frame in sorted(found):
            if found[frame]:
                previous = boxes[frame] = self._choose(found[frame], previous, gray.shape[1:])
        missing = sorted(frame for frame, faces in found.items() if not faces)
        return boxes, missing, max(len(faces) for faces in found.values())

    def __call__(self, frames: np.ndarray, source: str = "video") -> MouthROIs:
        """Extracts mouth crops.

        Args:
            frames (`np.ndarray`): `(T, H, W)` grayscale or `(T, H, W, 3)` RGB uint8 frames.
            source (`str`): name used in messages (the file path).

        Raises:
            [`MMSLlamaInputError`]: no frames, no face anywhere, or more than `max_missing_ratio` of frames without one
                (the message lists them).
        """
        frames = np.asarray(frames)
        if frames.ndim == 4:
            frames = to_gray(frames)
        if frames.ndim != 3 or len(frames) == 0:
            raise MMSLlamaInputError(
                f"{source}: expected (T, H, W) or (T, H, W, 3) frames, got shape {frames.shape}.", source=source
            )
        num_frames = len(frames)
        follow = self._track if self.tracking else self._interpolate
        keypoints, located, missing, max_faces = follow(frames, source)
        if len(located) < num_frames:  # frames without a face, and frames between landmark passes
            for k in range(len(KEYPOINT_NAMES)):
                for axis in range(2):
                    keypoints[:, k, axis] = np.interp(np.arange(num_frames), located, keypoints[located, k, axis])
        keypoints = smooth_keypoints(keypoints, self.smoothing_window)
        rois = np.stack([warp_mouth_crop(frames[t], keypoints[t], self.roi_size) for t in range(num_frames)])

        notes = []
        if missing:
            notes.append(f"no face in frames {frame_ranges(missing)}; their mouth position was interpolated")
        if max_faces > 1:
            notes.append(f"up to {max_faces} faces per frame; followed the {self.face_selection} one")
        return MouthROIs(rois, keypoints[:, 3].copy(), missing, max_faces, notes, keypoints)

    def _check_missing(self, missing: list[int], num_frames: int, source: str) -> None:
        if len(missing) > self.max_missing_ratio * num_frames:
            raise MMSLlamaInputError(
                f"{source}: no face found in {len(missing)} of {num_frames} frames ({frame_ranges(missing)}); at most "
                f"{self.max_missing_ratio:.0%} may be missing. Use the audio alone (modality='audio') for this clip.",
                source=source,
                frames=missing,
            )

    def _interpolate(self, frames: np.ndarray, source: str):
        """Whole-frame detections every `detect_every` frames, boxes interpolated in between.

        Returns `(T, 4, 2)` keypoints (set on the located frames), the located frames, the faceless frames and the
        most faces seen in one frame.
        """
        num_frames = len(frames)
        boxes, missing, max_faces = self._detect_faces(frames, source)
        self._check_missing(missing, num_frames, source)
        detected = np.array(sorted(boxes))
        box_table = np.stack([boxes[frame].as_array() for frame in detected])
        faced = [frame for frame in range(num_frames) if frame not in set(missing)]
        located = sorted({f for f in faced if f % self.landmark_every == 0} | set(boxes) | {faced[-1]})
        keypoints = np.zeros((num_frames, len(KEYPOINT_NAMES), 2))
        for frame in located:
            corners = [np.interp(frame, detected, box_table[:, k]) for k in range(4)]
            keypoints[frame] = self.landmarker.keypoints(frames[frame], FaceBox(*corners))
        return keypoints, located, missing, max_faces

    def _detect_near(self, gray: np.ndarray, box: FaceBox) -> list[FaceBox]:
        """Faces in the window around a tracked `box`, downscaled so the face is about `DETECT_FACE_PX` wide."""
        top, bottom, left, right, step = _window_around(box, gray.shape)
        faces = self.landmarker.detect(np.ascontiguousarray(gray[top:bottom:step, left:right:step]))
        return [FaceBox(f.left * step + left, f.top * step + top, f.right * step + left, f.bottom * step + top,
                        f.score) for f in faces]  # fmt: skip

    def _track(self, frames: np.ndarray, source: str):
        """Follows the face from the first detection on; the box moves with the landmarks.

        Every `detect_every` frames the face is checked: its patch must still match the one at the previous check
        (normalised correlation >= `PATCH_MATCH`), else the detector looks for it, first near the tracked box, then
        in the whole frame. A check that finds no face is followed by a detection on every frame back to the previous
        check and on to the next one, as in `_detect_faces`, so the faceless frames are known exactly. Returns what
        `_interpolate` does.
        """
        num_frames = len(frames)
        key_frames = sorted(set(range(0, num_frames, self.detect_every)) | {num_frames - 1})
        keypoints = np.zeros((num_frames, len(KEYPOINT_NAMES), 2))
        located, missing, dense, max_faces = [], set(), set(), 0
        box = anchor = latest = patch = None  # last detected box, keypoints located in it, newest keypoints, face patch

        def detect(frame: int, near: FaceBox | None) -> list[FaceBox]:
            nonlocal max_faces
            faces = self._detect_near(frames[frame], near) if near is not None else []
            if not faces:
                faces = self.landmarker.detect(frames[frame])
                max_faces = max(max_faces, len(faces))
            return faces

        for frame in range(num_frames):
            predicted = track_box(box, anchor, latest) if anchor is not None else box
            if frame in key_frames or frame in dense:
                current = face_patch(frames[frame], predicted) if predicted is not None else None
                if frame not in dense and patches_match(patch, current):
                    patch = current  # the same face, where the track says: no detection needed
                else:
                    faces = detect(frame, predicted)
                    if not faces:
                        missing.add(frame)
                        if frame in key_frames:  # the face went somewhere since the previous check: find where
                            index = key_frames.index(frame)
                            low = key_frames[index - 1] + 1 if index > 0 else 0
                            high = key_frames[index + 1] if index + 1 < len(key_frames) else num_frames
                            missing |= {f for f in range(low, frame) if f not in dense and not detect(f, predicted)}
                            dense |= set(range(low, high))
                        patch = None
                        continue
                    box, anchor = self._choose(faces, predicted, frames.shape[1:]), None
                    patch = face_patch(frames[frame], box)
            elif box is None:
                continue
            if anchor is None or frame % self.landmark_every == 0 or frame == num_frames - 1:
                latest = self.landmarker.keypoints(frames[frame], box if anchor is None else predicted)
                anchor = latest if anchor is None else anchor
                keypoints[frame] = latest
                located.append(frame)
        if not located:
            raise MMSLlamaInputError(
                f"{source}: no face found in any of the {num_frames} frames (checked frames "
                f"{frame_ranges(key_frames) if len(key_frames) < 12 else f'every {self.detect_every}th'}).",
                source=source,
                frames=list(range(num_frames)),
            )
        missing = sorted(missing)
        self._check_missing(missing, num_frames, source)
        located = [frame for frame in located if frame not in set(missing)]
        return keypoints, located, missing, max(max_faces, 1)


__all__ = [
    "ROI_SIZE",
    "KEYPOINT_NAMES",
    "TEMPLATE_KEYPOINTS",
    "FaceBox",
    "FaceLandmarker",
    "DlibFaceLandmarker",
    "MouthROIs",
    "MouthROIExtractor",
    "similarity_transform",
    "warp_mouth_crop",
    "crop_corners",
    "smooth_keypoints",
    "track_box",
    "face_patch",
    "patches_match",
    "frame_ranges",
    "to_gray",
]
