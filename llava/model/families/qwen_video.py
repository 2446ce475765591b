"""Videos for the Qwen-VL families without torchvision: sampled frames -> `pixel_values_videos`, `video_grid_thw`
(and Qwen2.5-VL's `second_per_grid_ts`), and the prompt text each video's placeholder expands to.

transformers' Qwen video processors (`Qwen2VLVideoProcessor`, `Qwen3VLVideoProcessor`) need torchvision, which
does not import beside the CPU torch build. This module follows their rule for already-sampled frames with the
library's own PIL / NumPy transforms (the ones its PIL image processor uses):

- every frame is resized to one size: Qwen2-VL / Qwen2.5-VL `smart_resize` the frame (h, w) within the video
  processor's min / max pixels (`size.shortest_edge` / `size.longest_edge`); Qwen3-VL bounds the whole video,
  frames x h x w, by them;
- RGB conversion, bicubic resize, rescale by 1/255 and normalisation as the image processor does;
- the frame count is padded to a multiple of `temporal_patch_size` by repeating the last frame, each
  `temporal_patch_size` consecutive frames make one temporal patch, and the patches are flattened in the image
  processor's order (temporal group, merged rows, merged cols, row in merge, col in merge; then channel,
  frame in group, patch row, patch col);
- Qwen2.5-VL places a video's temporal patches `second_per_grid_ts = temporal_patch_size / fps` seconds apart
  (its `get_rope_index` spaces them `tokens_per_second * second_per_grid_ts` positions apart);
- Qwen3-VL writes each temporal patch's time, `<t seconds>` (the mean of its first and last frame's time, one
  decimal), before that patch's own `<|vision_start|>...<|vision_end|>` run of video tokens; these runs replace
  the chat template's `<|vision_start|><|video_pad|><|vision_end|>` (see `expand_video_tokens`).

The one difference from the torchvision processors: they resize with torchvision's bicubic filter, this with
PIL's (as their PIL image processor does), so pixel values can differ in the last bits of a resized frame; the
grid, the token counts and the layout are the same.

Settings are the checkpoint's video processor's, read as the library reads them: `processor_config.json`'s
nested `video_processor`, else `video_preprocessor_config.json`, else `preprocessor_config.json`, over the
processor class's defaults. The released Qwen2-VL / Qwen2.5-VL checkpoints ship `preprocessor_config.json` with
min_pixels 3136, max_pixels 12845056 [that they ship no video or nested processor config: UNVERIFIED], so their
videos take the image bounds per frame (qwen-vl-utils' own video bounds, 128 .. 768 tokens a frame, are not the
library processor's).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from llava.model.families.base import PromptError, Video

# model_type -> the video processor rule it follows (the library's class for it).
QWEN2_RULE, QWEN3_RULE = "qwen2_vl", "qwen3_vl"
RULES = {"qwen2_vl": QWEN2_RULE, "qwen2_5_vl": QWEN2_RULE, "qwen3_vl": QWEN3_RULE, "qwen3_vl_moe": QWEN3_RULE}
# The model types whose `get_rope_index` reads `second_per_grid_ts` (Qwen2-VL's spaces temporal patches by 1).
TEMPORAL_SPACING = ("qwen2_5_vl",)

_CLIP_MEAN, _CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
# The library classes' defaults (transformers 5.23: Qwen2VLVideoProcessor, Qwen3VLVideoProcessor), for what a
# checkpoint's file leaves out.
_DEFAULTS = {
    QWEN2_RULE: {"min_pixels": 128 * 28 * 28, "max_pixels": 28 * 28 * 768, "patch_size": 14,
                 "image_mean": _CLIP_MEAN, "image_std": _CLIP_STD, "max_video_tokens": 128000},
    QWEN3_RULE: {"min_pixels": 128 * 32 * 32, "max_pixels": 32 * 32 * 768, "patch_size": 16,
                 "image_mean": (0.5, 0.5, 0.5), "image_std": (0.5, 0.5, 0.5), "max_video_tokens": 768},
}


@dataclasses.dataclass(frozen=True)
class VideoPreprocessing:
    """A checkpoint's video processor settings. `rule`: QWEN2_RULE or QWEN3_RULE (how frames are sized and how
    the placeholder is written); `temporal_spacing`: the model reads `second_per_grid_ts` (Qwen2.5-VL)."""

    rule: str
    min_pixels: int
    max_pixels: int
    patch_size: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    max_video_tokens: int
    temporal_patch_size: int = 2
    merge_size: int = 2
    resample: int = 3  # PIL bicubic, the processors' default
    rescale_factor: float = 1 / 255
    do_resize: bool = True
    do_rescale: bool = True
    do_normalize: bool = True
    do_convert_rgb: bool = True
    # The library's optional per-frame cap (off unless the checkpoint's file turns it on, as the library does).
    cap_pixels_per_frame: bool = False
    temporal_spacing: bool = False

    @classmethod
    def for_model_type(cls, model_type: str, settings: Mapping[str, Any] | None = None) -> VideoPreprocessing:
        """The settings of `model_type`'s video processor under a checkpoint's `settings` (a video / image
        processor config dict: `size` with shortest_edge / longest_edge, or min_pixels / max_pixels, ...)."""
        if model_type not in RULES:
            raise ValueError(f"no Qwen video rule for model_type {model_type!r}; known: {', '.join(RULES)}")
        rule = RULES[model_type]
        values = dict(_DEFAULTS[rule])
        settings = dict(settings or {})
        size = settings.get("size") or {}
        # As the processors' __init__: top-level min_pixels / max_pixels win over `size`.
        min_pixels = settings.get("min_pixels", size.get("shortest_edge", size.get("min_pixels")))
        max_pixels = settings.get("max_pixels", size.get("longest_edge", size.get("max_pixels")))
        if min_pixels is not None:
            values["min_pixels"] = int(min_pixels)
        if max_pixels is not None:
            values["max_pixels"] = int(max_pixels)
        for key in ("patch_size", "temporal_patch_size", "merge_size", "resample", "rescale_factor", "do_resize",
                    "do_rescale", "do_normalize", "do_convert_rgb", "max_video_tokens"):
            if settings.get(key) is not None:
                values[key] = settings[key]
        for key in ("image_mean", "image_std"):
            if settings.get(key) is not None:
                values[key] = tuple(float(v) for v in settings[key])
        values["cap_pixels_per_frame"] = bool(settings.get("cap_pixels_per_frame") or False)
        return cls(rule=rule, temporal_spacing=model_type in TEMPORAL_SPACING, **values)

    @classmethod
    def from_checkpoint(cls, model_path: str, model_type: str) -> VideoPreprocessing:
        """The settings `model_path` (a folder or a hub id) gives its video processor, found as the library
        finds them."""
        return cls.for_model_type(model_type, read_video_processor_config(model_path))


def read_video_processor_config(model_path: str) -> dict:
    """The video processor's dict: processor_config.json's `video_processor`, else video_preprocessor_config.json,
    else preprocessor_config.json (the library's order); {} when there is none."""
    from transformers.utils import cached_file

    def read(name: str) -> dict | None:
        path = cached_file(model_path, name, _raise_exceptions_for_missing_entries=False)
        if path is None:
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    nested = read("processor_config.json")
    if nested and "video_processor" in nested:
        return nested["video_processor"]
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        found = read(name)
        if found is not None:
            return found
    return {}


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's rule: (h, w) multiples of `factor`, near the aspect ratio, h * w within [min, max] pixels."""
    if max(height, width) / min(height, width) > 200:
        raise PromptError(f"a video's aspect ratio must be under 200, got {max(height, width) / min(height, width)}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def smart_resize_video(num_frames: int, height: int, width: int, temporal_factor: int, factor: int,
                       min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen3-VL's rule: as `smart_resize`, the bounds on frames x h x w (frames rounded to the temporal factor),
    a frame smaller than `factor` first scaled up to it."""
    if num_frames < temporal_factor:
        raise PromptError(f"a Qwen3-VL video needs at least {temporal_factor} frames, got {num_frames}")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise PromptError(f"a video's aspect ratio must be under 200, got {max(height, width) / min(height, width)}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt(num_frames * height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def frame_size(settings: VideoPreprocessing, num_frames: int, height: int, width: int) -> tuple[int, int]:
    """The (height, width) every frame of a `num_frames`-frame video of (height, width) is resized to."""
    factor = settings.patch_size * settings.merge_size
    if settings.rule == QWEN3_RULE:
        max_pixels = settings.max_pixels
        if settings.cap_pixels_per_frame:  # the library's cap: `max_video_tokens` patches a frame at most
            per_frame = max(min(settings.max_video_tokens * factor * factor, settings.max_pixels // num_frames),
                            int(settings.min_pixels * 1.05))
            max_pixels = per_frame * num_frames
        return smart_resize_video(num_frames, height, width, settings.temporal_patch_size, factor,
                                  settings.min_pixels, max_pixels)
    max_pixels = settings.max_pixels
    if settings.cap_pixels_per_frame:  # the library's cap: an even share of 90% of `max_video_tokens` tokens
        total = int(settings.max_video_tokens * factor * factor * 0.9)
        max_pixels = max(min(max_pixels, total * settings.temporal_patch_size // num_frames),
                         int(settings.min_pixels * 1.05))
    return smart_resize(height, width, factor, settings.min_pixels, max_pixels)


@dataclasses.dataclass
class VideoFeatures:
    """One video as the model takes it: `pixel_values` (t * h * w, C * temporal_patch_size * patch * patch),
    `grid_thw` (t, h, w) in patches, `group_times` each temporal patch's time in seconds, `fps` as given."""

    pixel_values: torch.Tensor
    grid_thw: tuple[int, int, int]
    group_times: list[float]
    fps: float

    def tokens(self, merge_size: int) -> int:
        """The language-model tokens the video becomes."""
        t, h, w = self.grid_thw
        return t * h * w // (merge_size * merge_size)


def _frame_array(frame, settings: VideoPreprocessing, size: tuple[int, int] | None) -> np.ndarray:
    """One frame -> (C, H, W) float32, through the transforms the library's PIL image processor applies."""
    from transformers.image_transforms import convert_to_rgb, normalize, rescale, resize
    from transformers.image_utils import ChannelDimension

    first = ChannelDimension.FIRST
    image = convert_to_rgb(frame, return_numpy=True) if settings.do_convert_rgb else np.array(frame)
    image = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    if size is not None:
        image = resize(image, size=size, resample=settings.resample, data_format=first, input_data_format=first)
    if settings.do_rescale:
        image = rescale(image, scale=settings.rescale_factor, data_format=first, input_data_format=first)
    if settings.do_normalize:
        image = normalize(image, mean=settings.image_mean, std=settings.image_std, data_format=first,
                          input_data_format=first)
    return np.asarray(image, dtype=np.float32)


def patchify(frames: np.ndarray, patch_size: int, merge_size: int, temporal_patch_size: int
             ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(T, C, H, W) -> (t * h * w, C * temporal_patch_size * patch * patch) and (t, h, w): T padded to a multiple
    of `temporal_patch_size` with copies of the last frame, then flattened in the processors' order."""
    if pad := -frames.shape[0] % temporal_patch_size:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
    num_frames, channels, height, width = frames.shape
    grid_t, grid_h, grid_w = num_frames // temporal_patch_size, height // patch_size, width // patch_size
    patches = frames.reshape(grid_t, temporal_patch_size, channels, grid_h // merge_size, merge_size, patch_size,
                             grid_w // merge_size, merge_size, patch_size)
    # -> (t, merged row, merged col, row in merge, col in merge, channel, frame in group, patch row, patch col)
    patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    flat = patches.reshape(grid_t * grid_h * grid_w, channels * temporal_patch_size * patch_size * patch_size)
    return flat, (grid_t, grid_h, grid_w)


def group_times(timestamps: Sequence[float], temporal_patch_size: int) -> list[float]:
    """Each temporal patch's time: the mean of its first and last frame's (the last frame repeated to fill the
    last patch), as Qwen3-VL's processor dates them."""
    times = list(timestamps)
    if pad := -len(times) % temporal_patch_size:
        times += [times[-1]] * pad
    return [(times[i] + times[i + temporal_patch_size - 1]) / 2 for i in range(0, len(times), temporal_patch_size)]


def check_video(video: Video) -> None:
    if not video.frames:
        raise PromptError(f"the video {video.source} has no frames")
    if len(video.timestamps) != len(video.frames):
        raise PromptError(f"the video {video.source} has {len(video.frames)} frames but {len(video.timestamps)} "
                          "timestamps")
    if not video.fps or video.fps <= 0:
        raise PromptError(f"the video {video.source} has no sampling rate (fps={video.fps})")
    sizes = {frame.size for frame in video.frames}
    if len(sizes) > 1:
        raise PromptError(f"the frames of the video {video.source} differ in size ({sorted(sizes)}): a video's frames "
                          "share one size")


def preprocess_video(video: Video, settings: VideoPreprocessing) -> VideoFeatures:
    """`video`'s frames as the model's video input."""
    check_video(video)
    width, height = video.frames[0].size
    size = frame_size(settings, len(video.frames), height, width) if settings.do_resize else None
    frames = np.stack([_frame_array(frame, settings, size) for frame in video.frames])
    flat, grid = patchify(frames, settings.patch_size, settings.merge_size, settings.temporal_patch_size)
    return VideoFeatures(torch.from_numpy(np.ascontiguousarray(flat)), grid,
                         group_times(video.timestamps, settings.temporal_patch_size), float(video.fps))


def video_placeholder(features: VideoFeatures, settings: VideoPreprocessing, video_token: str,
                      start_token: str = "<|vision_start|>", end_token: str = "<|vision_end|>") -> str:
    """What one `video_token` of the templated prompt becomes: the video's tokens (Qwen2-VL / 2.5-VL), or per
    temporal patch its time and its own start ... end run of tokens (Qwen3-VL)."""
    if settings.rule == QWEN3_RULE:
        t, h, w = features.grid_thw
        per_frame = h * w // (settings.merge_size * settings.merge_size)
        return "".join(f"<{time:.1f} seconds>{start_token}{video_token * per_frame}{end_token}"
                       for time in features.group_times[:t])
    return video_token * features.tokens(settings.merge_size)


def expand_video_tokens(text: str, features: Sequence[VideoFeatures], settings: VideoPreprocessing,
                        video_token: str, start_token: str = "<|vision_start|>", end_token: str = "<|vision_end|>"
                        ) -> str:
    """`text` with its video tokens, one per video in order, replaced by the videos' placeholders. On Qwen3-VL a
    placeholder brings its own start / end tokens per temporal patch, so it takes the place of the template's
    whole `<|vision_start|><|video_pad|><|vision_end|>`, as Qwen's own processing writes it (transformers 5.23's
    processor replaces the video token alone and leaves the template's start / end around the dated runs)."""
    pieces = text.split(video_token)
    if len(pieces) - 1 != len(features):
        raise PromptError(f"the prompt has {len(pieces) - 1} {video_token} token(s) but {len(features)} video(s) "
                          "were sent")
    wrapped = settings.rule == QWEN3_RULE
    for i in range(len(features)):
        if wrapped and pieces[i].endswith(start_token) and pieces[i + 1].startswith(end_token):
            pieces[i] = pieces[i][: -len(start_token)]
            pieces[i + 1] = pieces[i + 1][len(end_token):]
    out = [pieces[0]]
    for video, piece in zip(features, pieces[1:]):
        out += [video_placeholder(video, settings, video_token, start_token, end_token), piece]
    return "".join(out)


def video_model_inputs(features: Sequence[VideoFeatures], settings: VideoPreprocessing) -> dict[str, torch.Tensor]:
    """The model's video arguments for `features` (in prompt order): pixel_values_videos, video_grid_thw and,
    where the model spaces temporal patches by time (Qwen2.5-VL), second_per_grid_ts (float32, as the
    library's processor returns it)."""
    inputs = {"pixel_values_videos": torch.cat([f.pixel_values for f in features]),
              "video_grid_thw": torch.tensor([list(f.grid_thw) for f in features], dtype=torch.long)}
    if settings.temporal_spacing:
        inputs["second_per_grid_ts"] = torch.tensor([settings.temporal_patch_size / f.fps for f in features],
                                                    dtype=torch.float32)
    return inputs


@dataclasses.dataclass
class EncodedPrompt:
    """A templated prompt with its videos and images, as the model takes it: input_ids and mm_token_type_ids
    (L,), the model's image and video arguments, and the language-model tokens of each video, then each image
    (the prompt's order: videos first)."""

    input_ids: torch.Tensor
    token_types: torch.Tensor
    image_inputs: dict[str, torch.Tensor]
    visual_tokens: list[int]


def encode_with_videos(text: str, images: Sequence, videos: Sequence[Video], processor,
                       settings: VideoPreprocessing) -> EncodedPrompt:
    """`text` (the chat template's output, one video token per video and one image token per image) through
    the processor's own parts: its image processor and image-token expansion, the video rule of this module, its
    tokenizer and its token types. The processor's `__call__` is not used: without its video part it refuses a
    prompt with video tokens."""
    features = [preprocess_video(video, settings) for video in videos]
    text = expand_video_tokens(text, features, settings, processor.video_token)
    image_inputs: dict[str, torch.Tensor] = {}
    image_tokens: list[int] = []
    if images:
        processed = processor.image_processor(images=list(images), return_tensors="pt")
        image_inputs = {"pixel_values": processed["pixel_values"], "image_grid_thw": processed["image_grid_thw"]}
        pieces = text.split(processor.image_token)
        if len(pieces) - 1 != len(images):
            raise PromptError(f"the prompt has {len(pieces) - 1} {processor.image_token} token(s) but {len(images)} "
                              "image(s) were sent")
        expanded = [pieces[0]]
        for i, piece in enumerate(pieces[1:]):
            expanded += [processor.replace_image_token(processed, i), piece]
        text = "".join(expanded)
        merge = processor.image_processor.merge_size ** 2
        image_tokens = [int(grid.prod()) // merge for grid in processed["image_grid_thw"]]
    ids = processor.tokenizer(text)["input_ids"]
    token_types = torch.tensor(processor.create_mm_token_type_ids([ids])[0])
    input_ids = torch.tensor(ids)
    # Each video's tokens must have become exactly the expansion's, or the model's split would misalign.
    video_tokens = [f.tokens(settings.merge_size) for f in features]
    if int((token_types == 2).sum()) != sum(video_tokens):
        raise PromptError("the prompt's text holds video tokens of its own; remove them")
    if features:
        image_inputs.update(video_model_inputs(features, settings))
    return EncodedPrompt(input_ids, token_types, image_inputs, video_tokens + image_tokens)


def video_preprocessing(loaded) -> VideoPreprocessing:
    """The loaded model's video settings: those its family's `load` attached to the processor, else read from the
    checkpoint the model was loaded from (and kept there)."""
    settings = getattr(loaded.processor, "video_preprocessing", None)
    if settings is None:
        config = loaded.model.config
        path = getattr(loaded.model, "name_or_path", None) or getattr(config, "_name_or_path", "")
        settings = VideoPreprocessing.from_checkpoint(path, config.model_type) if path else \
            VideoPreprocessing.for_model_type(config.model_type)
        loaded.processor.video_preprocessing = settings
    return settings
