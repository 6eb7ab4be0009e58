"""The mouth crop on a real face in motion, read from a file at 25 and 30 fps; the tracking extractor against the
whole-frame one it replaced."""

import numpy as np
import pytest

from media_factory import astronaut_head_motion, astronaut_talking_head, write_clip
from modeling_mmsllama.media_mmsllama import frame_indices_at_25fps, read_media
from modeling_mmsllama.mouth_roi_mmsllama import MouthROIExtractor, crop_corners


pytest.importorskip("dlib", reason="the face landmarker needs the `roi` extra")
SECONDS = 2.0
MOUTH_TOLERANCE_PX = 4.0  # crop centre against the true mouth, on a face about 150 px wide
ROLL_TOLERANCE_DEG = 5.0  # the crop's rotation (from the eye line) against the head's roll of up to 10 degrees
SAME_CROP_PX = 2.0  # the tracking extractor's crop corners against the whole-frame extractor's


@pytest.fixture(scope="module", params=[25, 30], ids=["25fps", "30fps"])
def talking_head(request, tmp_path_factory):
    """A clip file of the moving, zooming, rolling, talking astronaut; the truth at the 25 fps frames read back."""
    fps = request.param
    frames, _ = astronaut_talking_head(SECONDS, fps, gray=True)
    path = tmp_path_factory.mktemp("head") / f"head_{fps}fps.mp4"
    write_clip(path, np.repeat(frames[..., None], 3, -1), fps)
    media = read_media(path, audio=False)
    source_frames = frame_indices_at_25fps(np.arange(len(frames)) / fps, fps) if fps != 25 else np.arange(len(frames))
    mouths, _, rolls, _ = astronaut_head_motion(source_frames / fps)
    return media.frames, mouths, rolls


def test_crop_follows_the_mouth_of_a_moving_rolling_face(talking_head):
    frames, mouths, rolls = talking_head
    assert len(frames) == SECONDS * 25
    result = MouthROIExtractor()(frames, source="head.mp4")
    error = np.linalg.norm(result.mouth_centres - mouths, axis=1)
    assert error.max() < MOUTH_TOLERANCE_PX, error
    eyes = result.keypoints[:, 1] - result.keypoints[:, 0]
    roll_error = np.rad2deg(np.abs(np.arctan2(eyes[:, 1], eyes[:, 0]) - rolls))
    assert roll_error.max() < ROLL_TOLERANCE_DEG, roll_error
    assert result.missing_frames == [] and result.rois.shape == (len(frames), 96, 96)


def test_tracking_crops_match_the_whole_frame_method(talking_head):
    frames, _, _ = talking_head
    old = MouthROIExtractor(tracking=False, landmark_every=1)(frames)
    new = MouthROIExtractor()(frames)
    pairs = zip(old.keypoints, new.keypoints)
    shift = [np.linalg.norm(crop_corners(a) - crop_corners(b), axis=1).max() for a, b in pairs]
    assert max(shift) < SAME_CROP_PX, shift


class _CountingLandmarker:
    """Wraps the dlib landmarker and counts its calls."""

    def __init__(self):
        from modeling_mmsllama.mouth_roi_mmsllama import DlibFaceLandmarker

        self.inner, self.detections, self.passes = DlibFaceLandmarker(), 0, 0

    def detect(self, gray):
        self.detections += 1
        return self.inner.detect(gray)

    def keypoints(self, gray, box):
        self.passes += 1
        return self.inner.keypoints(gray, box)


def test_tracking_detects_once_and_locates_every_other_frame():
    frames, _ = astronaut_talking_head(1.0, 25, gray=True)
    landmarker = _CountingLandmarker()
    MouthROIExtractor(landmarker=landmarker)(frames)
    assert landmarker.detections == 1 and landmarker.passes == 13  # frames 0, 2, ..., 24 (the last one)
    blanked = frames.copy()
    blanked[10:13] = 128  # the face patch no longer matches at frame 10: detections find exactly which frames
    tracked = MouthROIExtractor()(blanked).missing_frames
    whole_frame = MouthROIExtractor(tracking=False, landmark_every=1)(blanked).missing_frames
    # dlib's HOG also misses the rolled face on frames 7 and 14 of the whole frame; near the track it finds frame 7
    assert {10, 11, 12} <= set(tracked) <= set(whole_frame), (tracked, whole_frame)


def test_a_cut_to_another_place_is_found_again():
    """At frame 15 the face jumps 150 px right: the patch check fails, the detector finds it and the track moves."""
    frames, mouths = astronaut_talking_head(1.2, 25, gray=True)
    cut = frames.copy()
    cut[15:] = np.roll(frames[15:], 150, axis=2)
    result = MouthROIExtractor()(cut)
    truth = mouths.copy()
    truth[15:, 0] += 150
    error = np.linalg.norm(result.mouth_centres - truth, axis=1)
    assert np.delete(error, range(13, 18)).max() < MOUTH_TOLERANCE_PX, error  # the smoothing window spans the cut
