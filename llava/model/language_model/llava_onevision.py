"""LLaVA-OneVision (`LlavaOnevisionForConditionalGeneration`, llava-hf/llava-onevision-qwen2-*-hf) with visual-token
pruning, on transformers' own class.

As the llava-hf classes (`llava.model.language_model.llava_hf`), nothing of the library is restated: the generation
class is a thin subclass of the library's, the pruning engine is attached to its Qwen2 text model by hooks, and the
spans are read from the prompt at prefill. Each run of `<image>` tokens (an image: its 27 x 27 base view, then its
unpadded anyres crops with an `image_newline` after each row) and each run of `<video>` tokens (a video: 196 pooled
tokens per frame, then one `image_newline`) is one span, pruned on its own.

Budget rule: the reduction ratio alone, T = floor(m * (1 - reduction_ratio) / (p_img + p_txt)) per span (DART's
Qwen rule; `max_num_trunction` is ignored with a warning, `retain_token_num_for_llava_next` is not read). LLaVA-1.6's
rule keeps a fixed count (`retain_token_num_for_llava_next`) per image, whatever its size; here a span is anything
from 730 tokens (one view of a multi-image prompt) to ~7,400 (a base view plus nine crops) and, for a video,
196 per frame: one fixed count would keep 40% of one and 4% of another, and nearly all of a short clip. A ratio
keeps the same share of every span, images and videos alike, as DART does on the other families whose visual
inputs vary in size.

Methods before the language model: DivPrune reduces each image's spliced features (base view, crops, newlines) as
on LLaVA-NeXT. VisionZip (and every method reading the [CLS] token: VisPruner, HoloV) is refused: it ranks patches by the [CLS] token's attention, and this SigLIP tower has no
[CLS] token (`vision_feature_select_strategy: full`); the official VisionZip code (dvlab-research/VisionZip) takes
the [CLS] at index 0 of a CLIP tower and gives no rule for towers without one. Pooling is refused: it pools one
crop's patch grid, and an image here is a base view followed by crops with newline tokens, no single grid. Videos
with a method before the language model are refused (those methods reduce images only). CDPruner is refused: it
embeds the instruction with the vision tower checkpoint's text half, which llava-hf's OneVision checkpoint lacks.
"""

from __future__ import annotations

from transformers.models.llava_onevision import modeling_llava_onevision as onevision

from llava.model.language_model.llava_hf import BeforeLLMRefused, LlavaHFBackend, _PrunedLlavaHF
from llava.model.language_model.pruned_generation import pruned_forward
from llava.model.pruning import PruningInput, PruningRecord, get_method
from llava.model.pruning.backends import QwenVLBackend
from llava.model.strict_loading import inherit_weight_conversions

# Methods before the language model this family cannot run, and why; besides these, every method that reads the
# tower's [CLS] token (`CLS_REFUSAL`).
REFUSED_BEFORE_LLM = {
    "visionzip": "VisionZip ranks patches by the [CLS] token's attention, and LLaVA-OneVision's SigLIP tower has no "
                 "[CLS] token (vision_feature_select_strategy 'full'); the official VisionZip code gives no rule for "
                 "towers without one",
    "cdpruner": "CDPruner embeds the instruction with the text half of the vision tower's own checkpoint (CLIP's, in its "
                "official LLaVA code), and llava-hf's OneVision checkpoint holds the SigLIP vision model alone: no "
                "text half, no SigLIP tokenizer",
    "pooling": "pooling averages one crop's patch grid, and LLaVA-OneVision splices an image as a base view followed "
               "by its anyres crops with a newline token after each row, which is no single grid",
}


CLS_REFUSAL = ("{name} ranks patches by the vision tower's [CLS] token, and LLaVA-OneVision's SigLIP tower has no [CLS] "
               "token (vision_feature_select_strategy 'full'); its official code gives no rule for towers without one")


def refusal(method) -> str | None:
    """Why `method` (before the language model) cannot run on LLaVA-OneVision, or None."""
    if method.name in REFUSED_BEFORE_LLM:
        return REFUSED_BEFORE_LLM[method.name]
    if PruningInput.VISION_CLS_ATTENTION in method.inputs:
        return CLS_REFUSAL.format(name=method.name)
    return None


class LlavaOnevisionBackend(LlavaHFBackend):
    """The Qwen2 text model of LLaVA-OneVision, with the ratio budget (see the module docstring)."""

    llava_next = False
    unused_settings_keys = ("retain_token_num_for_llava_next",)
    ratio_models = "LLaVA-OneVision (one ratio for its images and videos of every size)"
    adapt_settings = QwenVLBackend.adapt_settings


@inherit_weight_conversions
class LlavaOnevisionForConditionalGenerationWithPruning(_PrunedLlavaHF,
                                                       onevision.LlavaOnevisionForConditionalGeneration):
    forward = pruned_forward(onevision.LlavaOnevisionForConditionalGeneration)
    backend_class = LlavaOnevisionBackend

    def __init__(self, config):
        super().__init__(config)
        self._attach_engine()

    def span_token_ids(self) -> tuple[int, ...]:
        return self.config.image_token_id, self.config.video_token_id

    def generate(self, *args, pruning_record: PruningRecord | None = None, **kwargs):
        """The llava-hf generate (see `_PrunedLlavaHF.generate`), refusing up front what cannot run here."""
        record = pruning_record if pruning_record is not None else PruningRecord()
        settings = self.dart_config(record)
        method = get_method(settings.method) if settings is not None else None
        if method is not None and method.before_llm:
            why = refusal(method)
            if why is not None:
                raise BeforeLLMRefused(f"pruning method {method.name!r} cannot run on LLaVA-OneVision: {why}")
            if kwargs.get("pixel_values_videos") is not None:
                raise BeforeLLMRefused(f"pruning method {method.name!r} reduces images before the language model; "
                                       "LLaVA-OneVision videos are pruned inside it only (dart, fastv, pdrop, random)")
        return super().generate(*args, pruning_record=record, **kwargs)

    def _image_arguments(self, kwargs: dict):
        # Multi-image prompts splice each image as one view (no anyres crops): the features need the image counts.
        return kwargs.pop("image_sizes", None), kwargs.pop("batch_num_images", None)

    def _encoded_images(self, pixel_values, image_arguments, tower_outputs: bool):
        image_sizes, batch_num_images = image_arguments
        packed = self.model.get_image_features(pixel_values, image_sizes,
                                               batch_num_images=batch_num_images).pooler_output
        return [(features, None, None) for features in packed]


def load_llava_onevision(model_path: str, config, load_kwargs: dict):
    """(tokenizer, model, processor, context_len): the tokenizer files checked before the weights, the weights
    loaded strictly, the processor built without torchvision (`llava.model.families.llava_onevision`)."""
    from llava.model.builder import checkpoint_file
    from llava.model.families.llava_onevision import load_onevision_processor
    from llava.model.strict_loading import load_strictly, require_tokenizer_files

    require_tokenizer_files(model_path, checkpoint_file)
    model = load_strictly(LlavaOnevisionForConditionalGenerationWithPruning, model_path, config=config, **load_kwargs)
    processor = load_onevision_processor(model_path)
    context_len = getattr(config.get_text_config(), "max_position_embeddings", 32768)
    return processor.tokenizer, model, processor, context_len
