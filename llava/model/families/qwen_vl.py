"""Qwen2-VL and Qwen2.5-VL checkpoints in the hub layout (`model_type: qwen2_vl` / `qwen2_5_vl`).

Prompts go through the model's own chat template and processor (no LLaVA conversation template): images first,
then the question, as Qwen's own examples and lmms-eval put them. The processor expands each image into its
merged-token grid; `generate` returns the prompt before the new tokens. The DART budget is the reduction ratio
alone, as the DART release's Qwen code reads it. Of the methods that reduce the image before the language model,
DivPrune and pooling run on each image's merged tokens (`llava.model.language_model.qwen_before_llm`); those that read
the vision tower's [CLS] token (VisionZip) do not: the Qwen ViT has none.

The library's `AutoProcessor` builds the video processor too, which needs torchvision; where torchvision is
missing (it does not import beside the CPU torch build) the processor is built without its video part: images
work as usual (the PIL image processor gives the same pixel values), videos raise a clear error.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from llava.model.families.base import (
    BenchmarkShape,
    Family,
    LoadedModel,
    ModelInputs,
    Video,
    chat_template_content,
    to_model,
    user_turn,
    videos_first,
)
from llava.model.families.qwen_video import VideoPreprocessing, encode_with_videos, video_preprocessing

logger = logging.getLogger(__name__)


class QwenVLFamily(Family):
    name = "qwen_vl"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    prompt_format = "messages"
    ratio_budget = True
    before_llm_methods = True
    vision_cls_attention = False  # no [CLS] token in its ViT: the methods declaring VISION_CLS_ATTENTION do not run
    refused_methods = {"cdpruner": "the Qwen ViT is no CLIP: no text half to embed the instruction with"}
    takes_video = True  # frames through llava.model.families.qwen_video (no torchvision needed)
    image_view = "resize"  # the processor resizes the image to its grid's shape (llava.serve.overlay)
    hub_name_pattern = r"qwen2(\.5)?-vl"
    # Qwen2-VL-7B's text model (GQA 28 / 4, M-RoPE) at width 896 (the 7B MLP ratio), 1024 image tokens.
    benchmark_shape = BenchmarkShape("qwen2_vl", "Qwen2-VL-7B's text model (GQA, M-RoPE)", layers=28, heads=28,
                                     kv_heads=4, hidden_size=896, intermediate_size=4736, prefix_tokens=15,
                                     image_tokens=1024, suffix_tokens=25)

    def lmms_model(self, config) -> str:
        return f"{config.model_type}_dart"  # `--model qwen2_vl_dart` / `qwen2_5_vl_dart`

    def load(self, model_path: str, config, load_kwargs: dict, options: Mapping[str, Any]):
        from llava.model.builder import checkpoint_file
        from llava.model.language_model.qwen_vl import QWEN_CLASSES
        from llava.model.strict_loading import load_strictly, require_tokenizer_files

        require_tokenizer_files(model_path, checkpoint_file)  # before the weights: no minutes spent on a failing load
        model = load_strictly(QWEN_CLASSES[config.model_type], model_path, config=config, **load_kwargs)
        processor = load_qwen_processor(model_path, config.model_type, options.get("min_pixels"),
                                        options.get("max_pixels"))
        context_len = getattr(config.get_text_config(), "max_position_embeddings", 32768)
        # The video processor's settings, read once here (videos never go through the processor's video part).
        processor.video_preprocessing = VideoPreprocessing.from_checkpoint(model_path, config.model_type)
        return processor.tokenizer, model, processor, context_len

    def question_inputs(self, loaded: LoadedModel, question: str, images: Sequence[Image.Image],
                        conv_mode: str | None) -> ModelInputs:
        return chat_template_inputs(user_turn(question, len(images)), images, loaded.processor)

    def video_question_inputs(self, loaded: LoadedModel, question: str, videos: Sequence[Video],
                              images: Sequence[Image.Image], conv_mode: str | None) -> ModelInputs:
        content = [{"type": "video"}] * len(videos) + [{"type": "image"}] * len(images)
        messages = [{"role": "user", "content": content + [{"type": "text", "text": question}]}]
        return chat_template_inputs(messages, images, loaded.processor, videos, video_preprocessing(loaded))

    def chat_inputs(self, loaded: LoadedModel, messages: Sequence[Mapping[str, str]], images: Sequence[Image.Image],
                    conv_mode: str | None) -> tuple[ModelInputs, str | None]:
        # The answer ends at the chat template's end-of-turn token, not at a stop string.
        return chat_template_inputs(chat_template_content(messages), images, loaded.processor), None

    def video_chat_inputs(self, loaded: LoadedModel, messages: Sequence[Mapping[str, str]], videos: Sequence[Video],
                          images: Sequence[Image.Image], conv_mode: str | None) -> tuple[ModelInputs, str | None]:
        content = videos_first(chat_template_content(messages), len(videos))
        return chat_template_inputs(content, images, loaded.processor, videos, video_preprocessing(loaded)), None

    def merge_image_inputs(self, loaded: LoadedModel, batch: Sequence[ModelInputs]) -> dict[str, Any]:
        # A batch may mix prompts with images, videos, both or neither: each key over the prompts that have it,
        # in batch order (the model takes the grids in that order).
        merged = {}
        for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts"):
            values = [item.image_inputs[key] for item in batch if key in item.image_inputs]
            if values:
                merged[key] = torch.cat(values)
        spacing = merged.pop("second_per_grid_ts", None)
        merged = {key: to_model(value, loaded.model) for key, value in merged.items()}
        if spacing is not None:  # seconds, kept float32 as the library's processor gives them (bf16 would round)
            merged["second_per_grid_ts"] = spacing.to(loaded.model.device)
        return merged

    def image_grids(self, loaded: LoadedModel, inputs: ModelInputs) -> list[list[int]]:
        """(h, w) of `image_grid_thw` over the 2x2 merge (`spatial_merge_size`): it follows the image's size."""
        grid_thw = inputs.image_inputs.get("image_grid_thw")
        if grid_thw is None:
            return []
        merge = loaded.model.config.vision_config.spatial_merge_size
        return [[int(h) // merge, int(w) // merge] for _, h, w in grid_thw.tolist()]

    def benchmark_model(self, args):
        """The text model alone: the prompt is given as spliced embeddings, so the vision tower is not timed."""
        from transformers import Qwen2VLTextConfig

        from llava.model.language_model.qwen_vl import Qwen2VLTextModelWithPruning

        head_dim = args.hidden_size // args.heads
        sections = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]  # 7B: 16, 24, 24 of 64 frequencies
        config = Qwen2VLTextConfig(
            vocab_size=32000, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
            num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
            max_position_embeddings=32768, rms_norm_eps=1e-6, use_sliding_window=False, bos_token_id=None,
            eos_token_id=None,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": sections},
        )
        config._attn_implementation = args.attn_implementation
        return Qwen2VLTextModelWithPruning(config)

    def describe_images(self, loaded: LoadedModel) -> dict[str, Any]:
        return {"image_tokens": max_image_tokens(loaded.processor), "patch_grid": None,
                "image_aspect_ratio": self.image_view}


def chat_template_inputs(messages: list[dict], images: Sequence[Image.Image], processor, videos: Sequence[Video] = (),
                         video_settings: VideoPreprocessing | None = None) -> ModelInputs:
    """A conversation in chat-template form (its `{"type": "image"}` / `{"type": "video"}` entries take `images` /
    `videos` in order) through the processor: input_ids and mm_token_type_ids (L,), pixel_values and
    image_grid_thw, and for videos pixel_values_videos, video_grid_thw (and second_per_grid_ts where the model reads
    it); `image_tokens` counts each video's tokens, then each image's."""
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    if videos:
        encoded = encode_with_videos(text, images, videos, processor, video_settings)
        return ModelInputs(encoded.input_ids, token_inputs={"mm_token_type_ids": encoded.token_types},
                           image_inputs=encoded.image_inputs, image_sizes=[image.size for image in images],
                           sequence_length=int(encoded.input_ids.numel()), image_tokens=encoded.visual_tokens,
                           text=text)
    encoded = processor(text=[text], images=list(images) or None, return_tensors="pt")
    input_ids = encoded["input_ids"][0]
    token_types = encoded.get("mm_token_type_ids")
    token_types = token_types[0] if token_types is not None else torch.zeros_like(input_ids)
    image_inputs = {}
    if encoded.get("pixel_values") is not None:
        image_inputs = {"pixel_values": encoded["pixel_values"], "image_grid_thw": encoded["image_grid_thw"]}
    merge = processor.image_processor.merge_size ** 2
    image_tokens = [int(grid.prod()) // merge for grid in image_inputs.get("image_grid_thw", [])]
    return ModelInputs(input_ids, token_inputs={"mm_token_type_ids": token_types}, image_inputs=image_inputs,
                       image_sizes=[image.size for image in images], sequence_length=int(input_ids.numel()),
                       image_tokens=image_tokens, text=text)


PROCESSOR_CLASS_NAMES = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor",
                         "qwen3_vl": "Qwen3VLProcessor", "qwen3_vl_moe": "Qwen3VLProcessor"}


def _image_only(processor_class):
    """`processor_class` without a video processor."""

    class ImageOnlyProcessor(processor_class):
        def check_argument_for_proper_class(self, argument_name, argument):
            if argument is None and argument_name == "video_processor":
                return type(None)
            return super().check_argument_for_proper_class(argument_name, argument)

        def __call__(self, *args, videos=None, **kwargs):
            if videos is not None:
                raise RuntimeError("this processor was built without its video part (torchvision is not installed): "
                                   "install torchvision to process videos")
            return super().__call__(*args, **kwargs)

    ImageOnlyProcessor.__name__ = ImageOnlyProcessor.__qualname__ = f"{processor_class.__name__}WithoutVideo"
    return ImageOnlyProcessor


def load_qwen_processor(model_path: str, model_type: str, min_pixels: int | None = None, max_pixels: int | None = None):
    """The checkpoint's processor; `min_pixels` / `max_pixels` bound the image size (lmms-eval's DART runs use
    1280*28*28 .. 16384*28*28)."""
    import transformers
    from transformers import AutoProcessor, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    pixels = {key: value for key, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if value is not None}
    if importlib.util.find_spec("torchvision") is not None:
        return AutoProcessor.from_pretrained(model_path, **pixels)
    logger.info("torchvision is not installed: building the %s processor without its video part", model_type)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(model_path, **pixels)
    processor_class = getattr(transformers, PROCESSOR_CLASS_NAMES[model_type])
    return _image_only(processor_class)(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=None, chat_template=tokenizer.chat_template
    )


def max_image_tokens(processor) -> int:
    """The most language-model tokens one image can become: the processor's pixel bound over the area one merged
    token covers (patch_size * merge_size pixels square)."""
    image_processor = processor.image_processor
    side = image_processor.patch_size * image_processor.merge_size
    return int(image_processor.size["longest_edge"]) // (side * side)
