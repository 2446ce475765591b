"""LLaVA-OneVision checkpoints in the llava-hf layout (`model_type: llava_onevision`,
llava-hf/llava-onevision-qwen2-7b-ov-hf): a SigLIP tower (384 px, 14 px patches: 27 x 27 = 729 tokens a view, no
[CLS]), a Qwen2 language model, images as anyres_max_9 crops with `image_newline`, videos pooled to 196 tokens a
frame.

Prompts go through the checkpoint's own chat template (no system prompt) and processor, as lmms-eval's llava_onevision
model prompts it: within a turn the template writes every `<image>` line, then every `<video>` line, then the text.
A prompt with one image gets the anyres view (the base view first, then the crops, as the library splices them);
a prompt with several gets one view (and a newline) per image, as the processor and the model agree
(`batch_num_images`).

The processor is built from the checkpoint's files without torchvision (which does not import beside the CPU torch
build, and which the library's video processor needs): the PIL image processor (`LlavaOnevisionImageProcessorPil`)
for images and, for videos, each frame resized to the tower's square input (the image processor's `size` and
`resample`), rescaled and normalised with the image processor's values, as `LlavaOnevisionVideoProcessor` does; the
resize is PIL's, not torchvision's, so pixels may differ from the library's video processor by its interpolation's
rounding. The model pools each frame's 27 x 27 features to 14 x 14 (the library's `apply_pooling`).

The pruning budget is the reduction ratio (see `llava.model.language_model.llava_onevision`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import LlavaOnevisionProcessor

from llava.model.families.base import (
    BenchmarkShape,
    Family,
    LoadedModel,
    ModelInputs,
    PromptError,
    Video,
    chat_template_content,
    to_model,
    user_turn,
    videos_first,
)

# processor_config.json keys LlavaOnevisionProcessor takes as arguments.
PROCESSOR_ARGUMENTS = ("num_image_tokens", "vision_feature_select_strategy", "image_token", "video_token",
                       "vision_aspect_ratio")


class LlavaOnevisionFamily(Family):
    name = "llava_onevision"
    model_types = ("llava_onevision",)
    prompt_format = "messages"
    ratio_budget = True
    takes_video = True
    image_view = "anyres"
    vision_cls_attention = False  # SigLIP: no [CLS] token; the methods declaring VISION_CLS_ATTENTION do not run
    refused_methods = {"pooling": "an image is a base view then anyres crops with newlines, no single grid",
                       "cdpruner": "the checkpoint holds the SigLIP vision model alone: no text half"}
    hub_name_pattern = r"llava-onevision"
    # LLaVA-OneVision-7B's Qwen2-7B text model (28 layers, GQA 28 / 4) at width 896 (its MLP ratio), and one
    # 768 x 768 image: the 27 x 27 base view, then a 2 x 2 crop grid of 54 x 54 features with a newline per row.
    benchmark_shape = BenchmarkShape("llava_onevision", "LLaVA-OneVision-7B's text model (Qwen2-7B, GQA)", layers=28,
                                     heads=28, kv_heads=4, hidden_size=896, intermediate_size=4736, prefix_tokens=5,
                                     image_tokens=729 + 54 * 55, suffix_tokens=25)

    def lmms_model(self, config) -> str:
        return "llava_onevision_dart"

    def load(self, model_path: str, config, load_kwargs: dict, options: Mapping[str, Any]):
        from llava.model.language_model.llava_onevision import load_llava_onevision

        return load_llava_onevision(model_path, config, load_kwargs)

    def question_inputs(self, loaded: LoadedModel, question: str, images: Sequence[Image.Image],
                        conv_mode: str | None) -> ModelInputs:
        return processor_inputs(loaded, user_turn(question, len(images)), images)

    def video_question_inputs(self, loaded: LoadedModel, question: str, videos: Sequence[Video],
                              images: Sequence[Image.Image], conv_mode: str | None) -> ModelInputs:
        """The videos first in the turn's content; the checkpoint's template still writes the images' lines before
        the videos' (it renders by type), which is the order the model was trained on."""
        content = [{"type": "video"}] * len(videos) + [{"type": "image"}] * len(images)
        messages = [{"role": "user", "content": content + [{"type": "text", "text": question}]}]
        return processor_inputs(loaded, messages, images, videos)

    def chat_inputs(self, loaded: LoadedModel, messages: Sequence[Mapping[str, str]], images: Sequence[Image.Image],
                    conv_mode: str | None) -> tuple[ModelInputs, str | None]:
        # The answer ends at the template's end-of-turn token, not at a stop string.
        return processor_inputs(loaded, chat_template_content(messages), images), None

    def video_chat_inputs(self, loaded: LoadedModel, messages: Sequence[Mapping[str, str]], videos: Sequence[Video],
                          images: Sequence[Image.Image], conv_mode: str | None) -> tuple[ModelInputs, str | None]:
        messages = videos_first(chat_template_content(messages), len(videos))
        return processor_inputs(loaded, messages, images, videos), None

    def merge_image_inputs(self, loaded: LoadedModel, batch: Sequence[ModelInputs]) -> dict[str, Any]:
        """Images: each prompt's crops padded with zero crops to the batch's most (the model reads each image's
        own count from its size), sizes and per-prompt image counts concatenated. Videos: stacked, which needs the
        same frame count in every video of the batch."""
        merged: dict[str, Any] = {}
        with_images = [item.image_inputs for item in batch if "pixel_values" in item.image_inputs]
        if with_images:
            most = max(inputs["pixel_values"].shape[1] for inputs in with_images)
            pixels = [torch.nn.functional.pad(inputs["pixel_values"],
                                              (0, 0, 0, 0, 0, 0, 0, most - inputs["pixel_values"].shape[1]))
                      for inputs in with_images]
            merged["pixel_values"] = torch.cat(pixels)
            merged["image_sizes"] = torch.cat([inputs["image_sizes"] for inputs in with_images])
            merged["batch_num_images"] = torch.cat([inputs["batch_num_images"] for inputs in with_images])
        with_videos = [item.image_inputs["pixel_values_videos"] for item in batch
                       if "pixel_values_videos" in item.image_inputs]
        if with_videos:
            frames = {video.shape[1] for video in with_videos}
            if len(frames) > 1:
                raise PromptError(f"the videos of one batch must have the same number of frames, got {sorted(frames)}; "
                                  "sample them alike or run them in separate batches")
            merged["pixel_values_videos"] = torch.cat(with_videos)
        return {key: to_model(value, loaded.model) for key, value in merged.items()}

    def describe_images(self, loaded: LoadedModel) -> dict[str, Any]:
        return {"image_tokens": max_image_tokens(loaded.model.config), "patch_grid": None,
                "image_aspect_ratio": self.image_view}

    def benchmark_model(self, args):
        """The Qwen2 text model alone with the pruning engine attached (the prompt comes as spliced embeddings)."""
        from transformers import Qwen2Config, Qwen2Model

        from llava.model.language_model.llava_onevision import LlavaOnevisionBackend
        from llava.model.pruning.attach import attach_engine

        config = Qwen2Config(vocab_size=32000, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
                             num_hidden_layers=args.layers, num_attention_heads=args.heads,
                             num_key_value_heads=args.kv_heads, max_position_embeddings=32768, rms_norm_eps=1e-6,
                             rope_theta=1000000.0, use_sliding_window=False)
        config._attn_implementation = args.attn_implementation
        model = Qwen2Model(config)
        attach_engine(model, lambda: LlavaOnevisionBackend(model, model.config))
        return model


def max_image_tokens(config) -> int:
    """The most tokens one image can become: its base view, at most N views' worth of crop features under
    `anyres_max_N` (the model shrinks a larger grid to that area), and a newline per row of that square."""
    side = config.vision_config.image_size // config.vision_config.patch_size
    ratio = str(getattr(config, "vision_aspect_ratio", "anyres_max_9"))
    views = int(ratio.rsplit("_", 1)[1]) if ratio.startswith("anyres_max_") else 9
    crops = views * side * side
    return side * side + crops + math.isqrt(crops)


def processor_inputs(loaded: LoadedModel, messages: list[dict], images: Sequence[Image.Image],
                     videos: Sequence[Video] = ()) -> ModelInputs:
    """A chat-template conversation (its image and video entries take `images` and `videos` in order) through the
    checkpoint's chat template and processor: input_ids (L,), the pixel arguments, and each span's token count (in
    prompt order)."""
    from llava.model.language_model.pruned_generation import vision_spans

    processor = loaded.processor
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    # One prompt: its images nested in one list, so that several images count as one prompt's (one view each).
    encoded = processor(text=[text], images=[list(images)] if images else None,
                        videos=[list(video.frames) for video in videos] or None, return_tensors="pt")
    input_ids = encoded["input_ids"][0]
    keys = ("pixel_values", "image_sizes", "batch_num_images", "pixel_values_videos")
    image_inputs = {key: encoded[key] for key in keys if encoded.get(key) is not None}
    if "batch_num_images" in image_inputs:
        image_inputs["batch_num_images"] = torch.as_tensor(image_inputs["batch_num_images"])
    config = loaded.model.config
    spans = vision_spans(input_ids[None], (config.image_token_id,))[0] + \
        vision_spans(input_ids[None], (config.video_token_id,))[0]
    return ModelInputs(input_ids, image_inputs=image_inputs, image_sizes=[image.size for image in images],
                       sequence_length=int(input_ids.numel()),
                       image_tokens=[length for _, length in sorted(spans)], text=text)


def video_pixels(frames: Sequence[Image.Image], image_processor) -> torch.Tensor:
    """(frames, 3, H, W) float32: each frame resized to the image processor's `size` with its `resample`, rescaled by
    `rescale_factor` and normalised by `image_mean` / `image_std`, as LlavaOnevisionVideoProcessor processes frames."""
    size = image_processor.size
    height, width = size["height"], size["width"]
    mean = np.asarray(image_processor.image_mean, dtype=np.float32)
    std = np.asarray(image_processor.image_std, dtype=np.float32)
    resample = Image.Resampling(int(image_processor.resample))
    out = []
    for frame in frames:
        resized = frame.convert("RGB").resize((width, height), resample=resample)
        pixels = np.asarray(resized, dtype=np.float32) * np.float32(image_processor.rescale_factor)
        out.append(torch.from_numpy(((pixels - mean) / std).transpose(2, 0, 1).copy()))
    return torch.stack(out)


class LlavaOnevisionProcessorPil(LlavaOnevisionProcessor):
    """`LlavaOnevisionProcessor` with no video processor: videos through `video_pixels` instead (see the module
    docstring); everything else, the `<image>` / `<video>` expansion included, is the library's."""

    def check_argument_for_proper_class(self, argument_name, argument):
        if argument is None and argument_name == "video_processor":
            return type(None)
        return super().check_argument_for_proper_class(argument_name, argument)

    def _process_videos(self, videos, **kwargs):
        pixels = [video_pixels(frames, self.image_processor) for frames in videos]
        stacked = torch.stack(pixels) if len({p.shape for p in pixels}) == 1 else pixels
        processed = {"pixel_values_videos": stacked}
        return processed, [self.replace_video_token(processed, video_idx=i) for i in range(len(videos))]


def load_onevision_processor(model_path: str) -> LlavaOnevisionProcessorPil:
    """The checkpoint's processor from its files: tokenizer, PIL image processor, processor_config.json's arguments
    and chat_template.json's template."""
    from transformers import AutoTokenizer
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    from llava.model.builder import checkpoint_file

    def read(name: str) -> dict:
        path = checkpoint_file(model_path, name)
        return json.loads(Path(path).read_text()) if path else {}

    arguments = {key: value for key, value in read("processor_config.json").items() if key in PROCESSOR_ARGUMENTS}
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    template = read("chat_template.json").get("chat_template", tokenizer.chat_template)
    return LlavaOnevisionProcessorPil(image_processor=LlavaOnevisionImageProcessorPil.from_pretrained(model_path),
                                      tokenizer=tokenizer, video_processor=None, chat_template=template, **arguments)


def pooled_frame_tokens(config) -> int:
    """Tokens a video frame becomes: the tower's patch grid halved, rounded up (27 x 27 -> 14 x 14)."""
    side = math.ceil(config.vision_config.image_size // config.vision_config.patch_size / 2)
    return side * side
