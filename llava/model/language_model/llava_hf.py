"""LLaVA-1.5 and LLaVA-NeXT in the Hugging Face "llava-hf" layout, with visual-token pruning, on transformers'
own classes (`LlavaForConditionalGeneration`, `LlavaNextForConditionalGeneration`).

The same weights run here and in the original layout (`llava_arch`, converted by `llava.model.llava_hf_convert`)
keep the same image tokens and answer alike. Like the Qwen classes (`qwen_vl`), nothing of the library is
restated: the pruning engine is attached to the library's text model by hooks, the generation class reads the
image spans from `input_ids == config.image_token_id` at prefill and carries the call's `PruningRecord`.

Methods that reduce the image before the language model (VisionZip, DivPrune, pooling, VisPruner, HoloV) run as in
LLaVA's splice: at prefill `generate` encodes the images with the library's feature getter (and, for the methods that
rank by the [CLS] token, the select layer's outputs, per-head attention included), reduces each image's features
with the same method (given its prompt's instruction, `PruningRecord.instructions`), shortens each image's run of image tokens to the count kept (so positions stay consecutive, as the
original splice makes them), embeds and scatters, and hands the library's `generate` the shortened `input_ids`,
`inputs_embeds` and mask. It returns the caller's `input_ids` followed by the new tokens, as the library does.
CDPruner is refused (`REFUSED_BEFORE_LLM`): it embeds the instruction with the text half of the vision tower's CLIP
checkpoint, which a llava-hf checkpoint does not carry.

Settings come from `config.DART_config` (top-level config) or per call from `PruningRecord(dart_config=...)`;
the budget rule is the original's: LLaVA-1.5 max_num_trunction / reduction_ratio, LLaVA-NeXT
retain_token_num_for_llava_next (`LlavaHFBackend`).
"""

from __future__ import annotations

import dataclasses

import torch
from transformers.models.llava import modeling_llava
from transformers.models.llava_next import modeling_llava_next

from llava.model.language_model.llava_mistral import SlidingWindowPruningError
from llava.model.language_model.pruned_generation import pruned_forward, vision_spans
from llava.model.multimodal_encoder.clip_encoder import SelectLayerOutputs, select_layer_outputs
from llava.model.pruning import PruningInput, PruningRecord, get_method
from llava.model.pruning.attach import attach_engine
from llava.model.pruning.backends import RotaryDecoderBackend
from llava.model.pruning.engine import call_settings
from llava.model.pruning.methods import reduce_images
from llava.model.pruning.record import ImageReduction, ImageSpan
from llava.model.strict_loading import inherit_weight_conversions


# Methods before the language model the llava-hf classes cannot run, and why (LLaVA-OneVision adds its own).
REFUSED_BEFORE_LLM = {
    "cdpruner": "CDPruner embeds the instruction with the text half (text model, projections, tokenizer) of the vision "
                "tower's CLIP checkpoint, as its official LLaVA code loads it beside the tower; a llava-hf checkpoint "
                "holds the CLIP vision model alone and records no hub id of the CLIP checkpoint it was converted "
                "from. Run CDPruner on the original LLaVA layout (its mm_vision_tower carries the text half)",
}


class BeforeLLMRefused(ValueError):
    """A method before the language model that this family cannot run on this prompt."""


class LlavaHFBackend(RotaryDecoderBackend):
    """The llava-hf text model (`LlamaModel`, `MistralModel`). Its own config is the `text_config`; the settings
    and whether the sequence is LLaVA-NeXT's come from `settings_config`, the top-level config."""

    reduces_before_llm = True  # the generation class reduces the features for such methods at prefill

    def __init__(self, model, settings_config):
        super().__init__(model)
        self.settings_config = settings_config

    @property
    def llava_next(self) -> bool:
        return getattr(self.settings_config, "model_type", None) == "llava_next"

    def default_settings(self):
        return getattr(self.settings_config, "DART_config", None)


def check_prunable(text_config) -> None:
    """As the original Mistral class: no pruning inside a language model with a sliding window."""
    window = getattr(text_config, "sliding_window", None)
    if window is not None:
        raise SlidingWindowPruningError(
            f"the text model's config sets sliding_window={window}: pruning inside the language model is not "
            "supported with a sliding window; set text_config.sliding_window = None or switch pruning off")


@dataclasses.dataclass
class ReducedPrompt:
    """A batch whose images a method before the language model reduced: what the library's generate gets."""

    input_ids: torch.Tensor  # (B, L') each image's run of image tokens shortened to its kept count, left-padded
    inputs_embeds: torch.Tensor  # (B, L', D)
    attention_mask: torch.Tensor  # (B, L')
    image_spans: list[list[ImageSpan]]
    reductions: list[list[ImageReduction]]


class _PrunedLlavaHF:
    """What both generation classes add to the library's: the engine on the text model, the record, and the
    reduction of the image features by methods that work before the language model."""

    last_pruning_record: PruningRecord | None = None
    backend_class = LlavaHFBackend  # the engine's view of the text model (a family with its own budget rule: its own)

    def span_token_ids(self) -> tuple[int, ...]:
        return (self.config.image_token_id,)

    def _attach_engine(self) -> None:
        text_model = self.model.language_model
        attach_engine(text_model, lambda: self.backend_class(text_model, self.config),
                      lambda: check_prunable(text_model.config))

    @property
    def is_llava_next(self) -> bool:
        return self.config.model_type == "llava_next"

    def pruning_backend(self) -> LlavaHFBackend:
        return self.backend_class(self.model.language_model, self.config)

    def dart_config(self, record: PruningRecord | None = None):
        """The pruning settings of a call: the record's own if it sets them, else `config.DART_config`."""
        return call_settings(record, self.pruning_backend())

    def generate(self, input_ids=None, pixel_values=None, attention_mask=None, *,
                 pruning_record: PruningRecord | None = None, **kwargs):
        """The library's generate (returns the prompt as given, then the new tokens). The pruning state of the
        call lands in `pruning_record` (pass your own in concurrent code) and in `self.last_pruning_record`."""
        record = pruning_record if pruning_record is not None else PruningRecord()
        record.image_reductions = None
        self.last_pruning_record = record
        settings = self.dart_config(record)
        method = get_method(settings.method) if settings is not None else None
        if method is not None and method.before_llm and method.name in REFUSED_BEFORE_LLM:
            raise BeforeLLMRefused(f"pruning method {method.name!r} cannot run on llava-hf checkpoints: "
                                   f"{REFUSED_BEFORE_LLM[method.name]}")
        if method is None or not method.before_llm or pixel_values is None or input_ids is None:
            if pixel_values is not None:
                kwargs["pixel_values"] = pixel_values
            return super().generate(input_ids=input_ids, attention_mask=attention_mask, pruning_record=record,
                                    **kwargs)
        reduced = self.reduced_prompt(input_ids, attention_mask, pixel_values, self._image_arguments(kwargs),
                                      method, settings, record)
        output = super().generate(input_ids=reduced.input_ids, inputs_embeds=reduced.inputs_embeds,
                                  attention_mask=reduced.attention_mask, image_spans=reduced.image_spans,
                                  pruning_record=record, **kwargs)
        return _with_prompt(output, input_ids, reduced.input_ids.shape[1])

    # -- methods before the language model ---------------------------------------------------------------

    def _image_arguments(self, kwargs: dict):
        """What `_encoded_images` needs besides the pixels (here the image sizes), taken out of generate's kwargs:
        the library's generate then gets the spliced embeddings without them."""
        return kwargs.pop("image_sizes", None)

    def reduced_prompt(self, input_ids, attention_mask, pixel_values, image_sizes, method, settings,
                       record: PruningRecord) -> ReducedPrompt:
        """The batch with every image's features reduced by `method` (see the module docstring); fills the
        record's `image_reductions` and `selection_seconds`."""
        instructions = None
        if record.instructions is not None:  # each sample's instruction, once per image it holds
            per_sample = [len(_image_runs(ids[valid], self.config.image_token_id)) for ids, valid in
                          zip(input_ids, (attention_mask if attention_mask is not None
                                          else torch.ones_like(input_ids)).bool())]
            instructions = [text for text, n in zip(record.instructions, per_sample) for _ in range(n)]
        features, reductions, seconds = self.reduced_image_features(pixel_values, image_sizes, method, settings,
                                                                    instructions)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        rows, row_reductions, next_image = [], [], 0
        for ids, valid in zip(input_ids, attention_mask.bool()):
            counts = _image_runs(ids[valid], self.config.image_token_id)
            images = range(next_image, next_image + len(counts))
            for image, count in zip(images, counts):
                if count != reductions[image].original_tokens:
                    raise ValueError(f"an image has {count} image tokens in the prompt but its features "
                                     f"{reductions[image].original_tokens}")
            rows.append(self._shortened_row(ids[valid], [features[i] for i in images]))
            row_reductions.append([reductions[i] for i in images])
            next_image += len(counts)
        if next_image != len(features):
            raise ValueError(f"the prompts have {next_image} images but {len(features)} were given")
        record.image_reductions = row_reductions
        record.selection_seconds = seconds
        return self._left_padded(rows, row_reductions)

    def reduced_image_features(self, pixel_values, image_sizes, method, settings, instructions=None):
        """Per image: its reduced (n', D) features and what the method did; and the seconds the method took.
        instructions: per image, its prompt's instruction (or None)."""
        encoded = self._encoded_images(pixel_values, image_sizes, PruningInput.VISION_CLS_ATTENTION in method.inputs)
        return reduce_images(encoded, method, settings, self.is_llava_next, self.model.multi_modal_projector,
                             instructions, self.model.vision_tower)

    def _encoded_images(self, pixel_values, image_sizes, tower_outputs: bool):
        """Per image: (its (n, D) features as the library splices them, its (rows, cols) patch grid when it is
        one crop, its select-layer outputs when asked for and it is one crop)."""
        if self.is_llava_next:
            packed = self.model.get_image_features(pixel_values, image_sizes).pooler_output
            return [(features, None, None) for features in packed]
        if tower_outputs:
            select = hf_select_layer_outputs(self.model.vision_tower, pixel_values, self.config.vision_feature_layer,
                                             self.config.vision_feature_select_strategy)
            features = list(self.model.multi_modal_projector(select.patches))
        else:
            select = None
            features = list(self.model.get_image_features(pixel_values).pooler_output)
        side = self.config.vision_config.image_size // self.config.vision_config.patch_size
        encoded = []
        for index, image in enumerate(features):
            one_grid = image.shape[0] == side * side
            encoded.append((image, (side, side) if one_grid else None, _one(select, index) if one_grid else None))
        return encoded

    def _shortened_row(self, ids: torch.Tensor, features: list[torch.Tensor]):
        """One prompt (no padding): its ids with each image's run of image tokens as long as its reduced
        features, its embeddings with those features in place, and its image spans."""
        is_image = ids == self.config.image_token_id
        starts = (is_image & ~torch.cat([is_image.new_zeros(1), is_image[:-1]])).nonzero().flatten().tolist()
        pieces, spans, cursor, length = [], [], 0, 0
        for start, image in zip(starts, features):
            end = start
            while end < ids.numel() and bool(is_image[end]):
                end += 1
            text = ids[cursor:start]
            pieces.append(text)
            spans.append((length + text.numel(), image.shape[0]))
            pieces.append(ids.new_full((image.shape[0],), self.config.image_token_id))
            length += text.numel() + image.shape[0]
            cursor = end
        pieces.append(ids[cursor:])
        short = torch.cat(pieces)
        embeds = self.get_input_embeddings()(short)
        if features:
            mask = (short == self.config.image_token_id).unsqueeze(-1)
            embeds = embeds.masked_scatter(mask, torch.cat(features).to(embeds.dtype))
        return short, embeds, spans

    def _left_padded(self, rows, reductions) -> ReducedPrompt:
        longest = max(ids.numel() for ids, _, _ in rows)
        first_ids, first_embeds, _ = rows[0]
        pad = getattr(self.config, "pad_token_id", None)  # LLaVA-OneVision's config has none
        pad = pad if pad is not None else 0
        ids = first_ids.new_full((len(rows), longest), pad)
        embeds = first_embeds.new_zeros((len(rows), longest, first_embeds.shape[-1]))
        mask = first_ids.new_zeros((len(rows), longest))
        spans = []
        for b, (row_ids, row_embeds, row_spans) in enumerate(rows):
            offset = longest - row_ids.numel()
            ids[b, offset:], embeds[b, offset:], mask[b, offset:] = row_ids, row_embeds, 1
            spans.append([(start + offset, count) for start, count in row_spans])
        return ReducedPrompt(ids, embeds, mask, spans, reductions)


def _image_runs(ids: torch.Tensor, image_token_id: int) -> list[int]:
    """The lengths of the runs of image tokens in one prompt (one run per image)."""
    return [length for _, length in vision_spans(ids[None], (image_token_id,))[0]]


def _one(select: SelectLayerOutputs | None, index: int) -> SelectLayerOutputs | None:
    if select is None:
        return None
    return SelectLayerOutputs(select.patches[index], select.cls[index], select.cls_attention[index],
                              select.keys[index],
                              select.head_attention[index] if select.head_attention is not None else None)


def hf_select_layer_outputs(vision_tower, pixel_values: torch.Tensor, layer, strategy: str) -> SelectLayerOutputs:
    """LLaVA's `CLIPVisionTower.forward_with_cls_attention` for the llava-hf tower (a `CLIPVisionModel`)."""
    if strategy != "default":
        raise ValueError("ranking patches by the [CLS] attention needs vision_feature_select_strategy 'default', "
                         f"got {strategy!r}")
    if not isinstance(layer, int):
        raise ValueError(f"ranking patches by the [CLS] attention needs one vision_feature_layer, got {layer!r}")
    return select_layer_outputs(vision_tower, pixel_values, layer)


def _with_prompt(output, input_ids: torch.Tensor, reduced_length: int):
    """The library's output for the shortened prompt, with the caller's prompt in its place."""
    sequences = output if isinstance(output, torch.Tensor) else output.sequences
    joined = torch.cat([input_ids.to(sequences.device), sequences[:, reduced_length:]], dim=1)
    if isinstance(output, torch.Tensor):
        return joined
    output.sequences = joined
    return output


# -- the two classes --------------------------------------------------------------------------------------


@inherit_weight_conversions
class LlavaForConditionalGenerationWithPruning(_PrunedLlavaHF, modeling_llava.LlavaForConditionalGeneration):
    forward = pruned_forward(modeling_llava.LlavaForConditionalGeneration)

    def __init__(self, config):
        super().__init__(config)
        self._attach_engine()


@inherit_weight_conversions
class LlavaNextForConditionalGenerationWithPruning(_PrunedLlavaHF, modeling_llava_next.LlavaNextForConditionalGeneration):
    forward = pruned_forward(modeling_llava_next.LlavaNextForConditionalGeneration)

    def __init__(self, config):
        super().__init__(config)
        self._attach_engine()


# config.model_type -> the class that loads that llava-hf checkpoint with pruning.
LLAVA_HF_CLASSES = {
    "llava": LlavaForConditionalGenerationWithPruning,
    "llava_next": LlavaNextForConditionalGenerationWithPruning,
}


def load_llava_hf(model_path: str, config, load_kwargs: dict):
    """(tokenizer, model, processor, context_len) for a llava-hf checkpoint: the tokenizer files checked before
    the weights, the weights loaded strictly, the checkpoint's own processor (its PIL image processor where
    torchvision is missing, which AutoProcessor picks by itself)."""
    from transformers import AutoProcessor

    from llava.model.builder import checkpoint_file
    from llava.model.strict_loading import load_declared_tokenizer, load_strictly, require_tokenizer_files

    require_tokenizer_files(model_path, checkpoint_file)
    model = load_strictly(LLAVA_HF_CLASSES[config.model_type], model_path, config=config, **load_kwargs)
    processor = AutoProcessor.from_pretrained(model_path)
    tokenizer = load_declared_tokenizer(model_path, checkpoint_file)
    context_len = getattr(config.get_text_config(), "max_position_embeddings", 4096)
    return tokenizer, model, processor, context_len
