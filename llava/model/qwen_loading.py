"""Loading HF-format Qwen2-VL / Qwen2.5-VL checkpoints with pruning support, and their processors.

`load_pretrained_model` (llava.model.builder) calls `load_qwen` for a checkpoint whose `config.model_type` is
`qwen2_vl` or `qwen2_5_vl`; it returns the usual `(tokenizer, model, processor, context_len)` with the model's
processor in the third place.

The library's `AutoProcessor` builds the video processor too, which needs torchvision; where torchvision is
missing (it does not import beside the CPU torch build) the processor is built without its video part: images
work as usual (the PIL image processor gives the same pixel values), videos raise a clear error.
"""

from __future__ import annotations

import importlib.util
import logging

from transformers import AutoConfig, AutoProcessor, AutoTokenizer, Qwen2_5_VLProcessor, Qwen2VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from llava.model.language_model.qwen_vl import QWEN_CLASSES
from llava.model.strict_loading import load_strictly, require_tokenizer_files

logger = logging.getLogger(__name__)

PROCESSOR_CLASSES = {"qwen2_vl": Qwen2VLProcessor, "qwen2_5_vl": Qwen2_5_VLProcessor}


def is_qwen(config) -> bool:
    return getattr(config, "model_type", None) in QWEN_CLASSES


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
    pixels = {key: value for key, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if value is not None}
    if importlib.util.find_spec("torchvision") is not None:
        return AutoProcessor.from_pretrained(model_path, **pixels)
    logger.info("torchvision is not installed: building the %s processor without its video part", model_type)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(model_path, **pixels)
    return _image_only(PROCESSOR_CLASSES[model_type])(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=None, chat_template=tokenizer.chat_template
    )


def qwen_max_image_tokens(processor) -> int:
    """The most language-model tokens one image can become: the processor's pixel bound over the area one merged
    token covers (patch_size * merge_size pixels square)."""
    image_processor = processor.image_processor
    side = image_processor.patch_size * image_processor.merge_size
    return int(image_processor.size["longest_edge"]) // (side * side)


def load_qwen(model_path: str, config: AutoConfig, load_kwargs: dict, min_pixels=None, max_pixels=None):
    """(tokenizer, model, processor, context_len) for a Qwen2-VL / Qwen2.5-VL checkpoint."""
    from llava.model.builder import checkpoint_file

    require_tokenizer_files(model_path, checkpoint_file)  # before the weights: no minutes spent on a load that fails
    model = load_strictly(QWEN_CLASSES[config.model_type], model_path, config=config, **load_kwargs)
    processor = load_qwen_processor(model_path, config.model_type, min_pixels, max_pixels)
    context_len = getattr(config.get_text_config(), "max_position_embeddings", 32768)
    return processor.tokenizer, model, processor, context_len
