"""Mouth-ROI extraction on a real face (scikit-image's astronaut) with known motion, and its failure modes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_factory import ASTRONAUT_MOUTH, astronaut_talking_video
from modeling_mmsllama.errors_mmsllama import MMSLlamaInputError
from modeling_mmsllama.mouth_roi_mmsllama import (
    FaceBox,
    FaceLandmarker,
    MouthROIExtractor,
    frame_ranges,
    similarity_transform,
    smooth_keypoints,
    to_gray,
    warp_mouth_crop,
)


pytest.importorskip("dlib", reason="the face landmarker needs the `roi` extra")
MOUTH_TOLERANCE_PX = 4.0


@pytest.fixture(scope="module")
def talking_face():
    frames, mouths = astronaut_talking_video(num_frames=40)
    return to_gray(frames), mouths


@pytest.fixture(scope="module")
def extractor():
    return MouthROIExtractor()


def test_mouth_crop_follows_the_true_mouth(talking_face, extractor):
    frames, mouths = talking_face
    result = extractor(frames, source="astronaut")
    assert result.rois.shape == (40, 96, 96) and result.rois.dtype == np.uint8
    error = np.linalg.norm(result.mouth_centres - mouths, axis=1)
    assert error.max() < MOUTH_TOLERANCE_PX, error
    assert result.missing_frames == [] and result.max_faces == 1


def test_crops_are_normalised_for_position_and_scale(talking_face, extractor):
    """The warp undoes the pan and zoom: every crop looks like the first one."""
    frames, _ = talking_face
    rois = extractor(frames).rois.astype(np.float64)
    centred = rois - rois.mean(axis=(1, 2), keepdims=True)
    correlation = (centred * centred[0]).sum(axis=(1, 2)) / np.sqrt(
        (centred**2).sum(axis=(1, 2)) * (centred[0] ** 2).sum()
    )
    assert correlation.min() > 0.95, correlation  # a fixed, unwarped crop drops below 0 on this motion


def test_frames_without_a_face_are_named_and_interpolated(talking_face, extractor):
    frames, mouths = talking_face
    frames = frames.copy()
    frames[12:16] = 128  # four blank frames
    result = extractor(frames)
    assert result.missing_frames == [12, 13, 14, 15]
    assert "12-15" in result.notes[0]
    error = np.linalg.norm(result.mouth_centres - mouths, axis=1)
    assert error[12:16].max() < 3 * MOUTH_TOLERANCE_PX  # interpolated between frames 11 and 16


def test_no_face_at_all_is_an_error(extractor):
    frames = np.random.default_rng(0).integers(0, 255, (10, 240, 320), dtype=np.uint8)
    with pytest.raises(MMSLlamaInputError, match=r"clip.mp4: no face found in any of the 10 frames") as caught:
        extractor(frames, source="clip.mp4")
    assert caught.value.frames == list(range(10))


def test_mostly_faceless_clip_is_an_error(talking_face, extractor):
    frames, _ = talking_face
    frames = frames.copy()
    frames[5:] = 0
    with pytest.raises(MMSLlamaInputError, match=r"no face found in 35 of 40 frames \(5-39\)"):
        extractor(frames, source="clip.mp4")


def _two_faces(talking_face):
    """The astronaut big on the left, a half-size copy near the centre."""
    frames, _ = talking_face
    canvas = np.zeros((8, 480, 800), np.uint8)
    canvas[:, :, :640] = frames[:8]
    small = frames[:8, ::2, ::2][:, 60:200, 100:220]
    canvas[:, 200:340, 420:540] = small
    return canvas


def test_several_faces_largest_or_central(talking_face):
    canvas = _two_faces(talking_face)
    largest = MouthROIExtractor(face_selection="largest", landmarker=_upsampling_landmarker())(canvas)
    central = MouthROIExtractor(face_selection="central", landmarker=_upsampling_landmarker())(canvas)
    assert largest.max_faces == 2 and "followed the largest" in largest.notes[0]
    assert largest.mouth_centres[0, 0] < 400 < central.mouth_centres[0, 0]


def _upsampling_landmarker():
    from modeling_mmsllama.mouth_roi_mmsllama import DlibFaceLandmarker

    return DlibFaceLandmarker(upsample=1, max_side=800)


class _FixedLandmarker(FaceLandmarker):
    """A plug-in detector: one face, keypoints at fixed offsets from the box."""

    def __init__(self):
        self.calls = 0

    def detect(self, gray):
        self.calls += 1
        return [FaceBox(100, 100, 200, 200, 1.0)]

    def keypoints(self, gray, box):
        return np.array([[130.0, 130.0], [170.0, 130.0], [150.0, 160.0], [150.0, 180.0]])


def test_custom_landmarker_plugs_in():
    landmarker = _FixedLandmarker()
    result = MouthROIExtractor(landmarker=landmarker, detect_every=5)(np.zeros((11, 300, 300), np.uint8))
    assert landmarker.calls == 3  # frames 0, 5, 10
    np.testing.assert_allclose(result.mouth_centres, [[150.0, 180.0]] * 11)


@settings(max_examples=50, deadline=None)
@given(
    angle=st.floats(-0.5, 0.5),
    scale=st.floats(0.3, 3.0),
    shift=st.tuples(st.floats(-200, 200), st.floats(-200, 200)),
)
def test_similarity_transform_recovers_a_known_one(angle, scale, shift):
    points = np.array([[10.0, 20.0], [60.0, 25.0], [35.0, 70.0], [30.0, 90.0]])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = points @ rotation.T + np.array(shift)
    matrix = similarity_transform(points, moved)
    np.testing.assert_allclose(matrix[:, :2], rotation, atol=1e-6)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-4)


def test_warp_centres_the_mouth():
    """A bright dot at the mouth keypoint lands in the middle of the crop."""
    image = np.zeros((300, 300), np.uint8)
    image[179:182, 149:152] = 255
    keypoints = np.array([[130.0, 130.0], [170.0, 130.0], [150.0, 160.0], [150.0, 180.0]])
    crop = warp_mouth_crop(image, keypoints)
    row, col = np.unravel_index(np.argmax(crop), crop.shape)
    assert abs(row - 47.5) <= 2 and abs(col - 47.5) <= 2


def test_smoothing_keeps_constants_and_damps_jitter():
    steady = np.ones((20, 4, 2))
    np.testing.assert_allclose(smooth_keypoints(steady, 5), steady)
    jitter = np.ones((20, 4, 2)) + np.random.default_rng(0).normal(0, 1, (20, 4, 2))
    assert smooth_keypoints(jitter, 5).std() < jitter.std()


def test_frame_ranges():
    assert frame_ranges([3, 4, 5, 9, 11, 12]) == "3-5, 9, 11-12"
    assert frame_ranges([]) == ""


def test_astronaut_mouth_constant_matches_the_detector():
    from skimage.data import astronaut

    result = MouthROIExtractor()(to_gray(astronaut())[None])
    assert np.linalg.norm(result.mouth_centres[0] - ASTRONAUT_MOUTH) < 2.0
