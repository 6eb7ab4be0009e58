"""Video processor for MMS-LLaMA: mouth-ROI frames -> normalised 88x88 grayscale clips with a frame mask."""

import os

import numpy as np
import torch
from torchvision.transforms.v2 import functional as tvF
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_utils import PILImageResampling
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor

from .configuration_mmsllama import ROI_SIZE
from .errors_mmsllama import MMSLlamaInputError
from .media_mmsllama import read_media


ROI_MEAN = 0.421  # grayscale mean of LRS3 mouth crops after /255 (paper-spec 2.1)
ROI_STD = 0.165  # grayscale std of LRS3 mouth crops after /255
CROP_SIDE = 88  # px, side the visual encoder sees


class MMSLlamaVideoProcessorKwargs(VideosKwargs, total=False):
    r"""
    do_augment (`bool`):
        Training augmentation: a random 88x88 crop (instead of the centre one) and a horizontal flip with
        probability 0.5, each drawn once per clip from torch's random generator.
    """

    do_augment: bool


class MMSLlamaVideoProcessor(BaseVideoProcessor):
    r"""
    Turns mouth-ROI clips into `pixel_values_videos` `(B, T, 1, 88, 88)` float32, zero-padded to the longest clip, and
    `video_mask` `(B, T)` bool, True on real frames.

    Each clip is converted to grayscale, resized to 96x96 if it is another size, cropped to 88x88 (centre, or random
    with a horizontal flip when `do_augment=True`), scaled to [0, 1] and normalised with mean 0.421 and std 0.165.

    Clips are `(T, H, W)`, `(T, H, W, C)` or `(T, C, H, W)` arrays/tensors (uint8, C = 1 or 3) at 25 fps, or paths to
    mouth-ROI videos (read with PyAV and resampled to 25 fps). Raw face videos go through
    [`MMSLlamaProcessor`], which finds the mouth first.
    """

    model_input_names = ["pixel_values_videos", "video_mask"]
    valid_kwargs = MMSLlamaVideoProcessorKwargs
    resample = PILImageResampling.BILINEAR
    size = {"height": ROI_SIZE, "width": ROI_SIZE}
    crop_size = {"height": CROP_SIDE, "width": CROP_SIDE}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = [ROI_MEAN]
    image_std = [ROI_STD]
    do_convert_rgb = False
    do_sample_frames = False
    do_augment = False

    def _decode_and_sample_videos(self, videos, video_metadata=None, do_sample_frames=None, sample_indices_fn=None):
        if isinstance(videos, (str, os.PathLike, np.ndarray, torch.Tensor)):
            videos = [videos]
        clips = []
        for video in videos:
            if isinstance(video, (str, os.PathLike)):
                path = os.fspath(video)
                video = read_media(path, audio=False).frames
                if video is None:
                    raise MMSLlamaInputError(f"{path}: has no video stream.", source=path)
            clips.append(video)
        return clips, video_metadata

    def _prepare_input_videos(self, videos, do_convert_rgb=None, input_data_format=None, device=None):
        """Brings every clip to a `(T, 1, H, W)` uint8/float tensor."""
        prepared = []
        for index, video in enumerate(videos):
            video = torch.as_tensor(np.asarray(video) if not isinstance(video, torch.Tensor) else video)
            if video.ndim == 3:
                video = video[:, None]
            elif video.ndim == 4 and video.shape[-1] in (1, 3, 4) and video.shape[1] not in (1, 3, 4):
                video = video.permute(0, 3, 1, 2)
            if video.ndim != 4 or video.shape[1] not in (1, 3, 4) or video.shape[0] == 0:
                raise MMSLlamaInputError(
                    f"videos[{index}]: expected (T, H, W), (T, H, W, C) or (T, C, H, W) frames with C in (1, 3) and "
                    f"T > 0, got shape {tuple(video.shape)}.",
                    source=f"videos[{index}]",
                )
            if video.shape[1] > 1:
                video = tvF.rgb_to_grayscale(video[:, :3])
            prepared.append(video.to(device) if device is not None else video)
        return prepared

    def _preprocess(
        self,
        videos: list[torch.Tensor],
        do_resize: bool,
        size,
        resample,
        do_center_crop: bool,
        crop_size,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean,
        image_std,
        do_augment: bool = False,
        return_tensors=None,
        **kwargs,
    ) -> BatchFeature:
        clips = []
        for video in videos:
            if do_resize and tuple(video.shape[-2:]) != (size.height, size.width):
                video = self.resize(video, size=size, resample=resample)
            if do_augment:
                video = self._random_crop_and_flip(video, crop_size.height, crop_size.width)
            elif do_center_crop:
                video = self.center_crop(video, crop_size)
            clips.append(
                self._rescale_and_normalize(video, do_rescale, rescale_factor, do_normalize, image_mean, image_std)
            )

        longest = max(len(clip) for clip in clips)
        pixel_values = clips[0].new_zeros((len(clips), longest, *clips[0].shape[1:]), dtype=torch.float32)
        video_mask = torch.zeros((len(clips), longest), dtype=torch.bool)
        for index, clip in enumerate(clips):
            pixel_values[index, : len(clip)] = clip
            video_mask[index, : len(clip)] = True
        return BatchFeature({"pixel_values_videos": pixel_values, "video_mask": video_mask}, tensor_type=return_tensors)

    @staticmethod
    def _rescale_and_normalize(video, do_rescale, rescale_factor, do_normalize, image_mean, image_std) -> torch.Tensor:
        """`(x * rescale_factor - mean) / std` on one-channel clips in two tensor operations (the generic image path
        normalises frame by frame and costs more than a training step's model time on a CPU)."""
        video = video.to(torch.float32)
        if do_rescale:
            video = video * rescale_factor
        if do_normalize:
            video = (video - float(image_mean[0])) / float(image_std[0])
        return video

    @staticmethod
    def _random_crop_and_flip(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
        top = int(torch.randint(0, video.shape[-2] - height + 1, ()))
        left = int(torch.randint(0, video.shape[-1] - width + 1, ()))
        video = video[..., top : top + height, left : left + width]
        return video.flip(-1) if bool(torch.rand(()) < 0.5) else video


MMSLlamaVideoProcessor.register_for_auto_class()

__all__ = ["MMSLlamaVideoProcessor"]
