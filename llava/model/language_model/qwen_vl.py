"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL with visual-token pruning (DART by default), on transformers' own classes.

Each family gets three thin subclasses of the library's classes: the text model, its forward the library's, with
the pruning engine attached to its decoder layers by hooks (`llava.model.pruning.attach`); the multimodal model,
which builds that text model and keeps the pruning arguments (which travel with the library's **kwargs from the
generation class down to the text model) away from the vision tower; and the generation class, which
finds the image and video spans in the prompt and carries the call's `PruningRecord`. Nothing else is
changed: the vision tower, the M-RoPE position ids (`get_rope_index`, `rope_deltas`) and `generate` are the
library's. Kept tokens keep their original 3-D positions, so decoding positions are what they are unpruned.
Methods that reduce the image before the language model (DivPrune, pooling) run in `generate`, on each image's
merged tokens, before the library's forward sees the prompt (`llava.model.language_model.qwen_before_llm`).

Qwen3-VL (and its MoE variant) adds DeepStack: after each of its first text layers the library adds features of an intermediate tower
block to the hidden states at the visual positions (`_deepstack_process`). Once the engine has pruned, the
hidden states hold the kept tokens only, so each later injection is gathered the same way: the kept tokens'
visual positions and, for each, the feature of the token it was (`Qwen3VLTextModelWithPruning`).

Settings come from `config.DART_config` (or, as the DART release's Qwen2.5-VL reads them,
`config.text_config.DART_config`) or per call from `PruningRecord(dart_config=...)`. The budget follows the
reference on Qwen: the reduction ratio only (see `QwenVLBackend`).
"""

from __future__ import annotations

from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen25
from transformers.models.qwen2_vl import modeling_qwen2_vl as qwen2
from transformers.models.qwen3_vl import modeling_qwen3_vl as qwen3
from transformers.models.qwen3_vl_moe import modeling_qwen3_vl_moe as qwen3_moe

from llava.model.language_model.pruned_generation import pruned_forward
from llava.model.language_model.qwen_before_llm import generate_reduced, reduce_qwen_prompt
from llava.model.pruning import PruningRecord, get_method
from llava.model.pruning.attach import PRUNING_CALL_KWARGS, attach_engine
from llava.model.pruning.backends import QwenVLBackend
from llava.model.pruning.engine import call_settings
from llava.model.strict_loading import inherit_weight_conversions

class _PrunedTextModel:
    """A Qwen-VL text model (its forward the library's) with the pruning engine attached.

    `settings_config` is the top-level model config, where `DART_config` is looked up first; the generation
    class sets it.
    """

    settings_config = None

    def __init__(self, config):
        super().__init__(config)
        self.pruning = attach_engine(self, lambda: QwenVLBackend(self, self.settings_config), self.check_prunable)

    def check_prunable(self) -> None:
        if getattr(self, "has_sliding_layers", False):  # released Qwen2-VL / 2.5-VL checkpoints set use_sliding_window: false
            raise ValueError("pruning is not supported on Qwen text models with sliding-window layers "
                             "(use_sliding_window): the window would count kept tokens, not positions")


class _VisionWithoutPruningKwargs:
    """The multimodal model's feature getters, with our keyword arguments kept from the vision tower."""

    def get_image_features(self, pixel_values, image_grid_thw=None, **kwargs):
        return super().get_image_features(pixel_values, image_grid_thw, **_without_pruning(kwargs))

    def get_video_features(self, pixel_values_videos, video_grid_thw=None, **kwargs):
        return super().get_video_features(pixel_values_videos, video_grid_thw, **_without_pruning(kwargs))


def _without_pruning(kwargs: dict) -> dict:
    return {key: value for key, value in kwargs.items() if key not in PRUNING_CALL_KWARGS}


class _PrunedGeneration:
    """The generation class's additions: the settings' config linked to the text model, and the record."""

    last_pruning_record: PruningRecord | None = None

    def span_token_ids(self) -> tuple[int, ...]:
        """An image's tokens run from its first `<|image_pad|>` up to its `<|vision_end|>` (videos alike)."""
        return self.config.image_token_id, self.config.video_token_id

    def _link_settings(self) -> None:
        self.model.language_model.settings_config = self.config
        self.last_pruning_record = None

    def generate(self, *args, pruning_record: PruningRecord | None = None, **kwargs):
        """The library's generate; the pruning state of the call lands in `pruning_record` (pass your own in
        concurrent code) and, for convenience in single-threaded use, in `self.last_pruning_record`."""
        record = pruning_record if pruning_record is not None else PruningRecord()
        record.image_reductions = None
        self.last_pruning_record = record
        settings = call_settings(record, QwenVLBackend(self.model.language_model, self.config))
        if settings is not None and get_method(settings.method).before_llm:  # the images reduced at prefill
            return generate_reduced(self, super().generate, args, kwargs, get_method(settings.method), settings,
                                    record)
        return super().generate(*args, pruning_record=record, **kwargs)

    def reduced_prompt(self, input_ids, attention_mask, mm_token_type_ids, pixel_values, image_grid_thw,
                       record: PruningRecord):
        """The prompt with its images reduced by the call's method before the language model, as `generate` runs
        it: `.model_inputs()` are the library forward's arguments (pass `record` along)."""
        settings = call_settings(record, QwenVLBackend(self.model.language_model, self.config))
        return reduce_qwen_prompt(self, input_ids, attention_mask, mm_token_type_ids, pixel_values, image_grid_thw,
                                  get_method(settings.method), settings, record)


# -- Qwen2-VL --------------------------------------------------------------------------------------------


@inherit_weight_conversions
class Qwen2VLTextModelWithPruning(_PrunedTextModel, qwen2.Qwen2VLTextModel):
    pass


@inherit_weight_conversions
class Qwen2VLModelWithPruning(_VisionWithoutPruningKwargs, qwen2.Qwen2VLModel):
    def __init__(self, config):
        super().__init__(config)
        self.language_model = Qwen2VLTextModelWithPruning._from_config(config.text_config)
        self.post_init()


@inherit_weight_conversions
class Qwen2VLForConditionalGenerationWithPruning(_PrunedGeneration, qwen2.Qwen2VLForConditionalGeneration):
    forward = pruned_forward(qwen2.Qwen2VLForConditionalGeneration)

    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen2VLModelWithPruning(config)
        self.post_init()
        self._link_settings()


# -- Qwen2.5-VL ------------------------------------------------------------------------------------------


@inherit_weight_conversions
class Qwen2_5_VLTextModelWithPruning(_PrunedTextModel, qwen25.Qwen2_5_VLTextModel):
    pass


@inherit_weight_conversions
class Qwen2_5_VLModelWithPruning(_VisionWithoutPruningKwargs, qwen25.Qwen2_5_VLModel):
    def __init__(self, config):
        super().__init__(config)
        self.language_model = Qwen2_5_VLTextModelWithPruning._from_config(config.text_config)
        self.post_init()


@inherit_weight_conversions
class Qwen2_5_VLForConditionalGenerationWithPruning(_PrunedGeneration, qwen25.Qwen2_5_VLForConditionalGeneration):
    forward = pruned_forward(qwen25.Qwen2_5_VLForConditionalGeneration)

    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen2_5_VLModelWithPruning(config)
        self.post_init()
        self._link_settings()


# -- Qwen3-VL and Qwen3-VL-MoE ---------------------------------------------------------------------------


class _DeepStackOnKeptTokens:
    """A Qwen3-VL text model's DeepStack injection, followed through pruning."""

    def _deepstack_process(self, hidden_states, visual_pos_masks, visual_embeds):
        """The library's injection, on the kept tokens once the sequence is pruned: `visual_pos_masks` (B, L)
        and `visual_embeds` (one row per visual position, row-major) describe the prefill sequence, the hidden
        states its kept tokens (the record's latest stage, whose rows may be left-padded)."""
        if hidden_states.shape[1] == visual_pos_masks.shape[1]:
            return super()._deepstack_process(hidden_states, visual_pos_masks, visual_embeds)
        record = self.pruning.current_record()
        stage = record.stages[-1] if record is not None and record.stages else None
        if stage is None or stage.keep.shape != hidden_states.shape[:2]:
            raise RuntimeError(f"DeepStack features for {visual_pos_masks.shape[1]} positions met hidden states of "
                               f"{hidden_states.shape[1]} tokens, and no pruning stage of that length was recorded")
        visual = visual_pos_masks.to(hidden_states.device)
        keep = stage.keep.to(hidden_states.device)
        # Row of each visual position in visual_embeds: the library fills them in row-major order.
        row_of = (visual.flatten().long().cumsum(0) - 1).view_as(visual)
        kept_visual = visual.gather(1, keep)
        if stage.keep_valid is not None:  # the padding of ragged rows repeats a real index: not a second copy
            kept_visual &= stage.keep_valid.to(hidden_states.device).bool()
        kept_rows = row_of.gather(1, keep)[kept_visual]
        return super()._deepstack_process(hidden_states, kept_visual, visual_embeds[kept_rows.to(visual_embeds.device)])


@inherit_weight_conversions
class Qwen3VLTextModelWithPruning(_DeepStackOnKeptTokens, _PrunedTextModel, qwen3.Qwen3VLTextModel):
    pass


@inherit_weight_conversions
class Qwen3VLModelWithPruning(_VisionWithoutPruningKwargs, qwen3.Qwen3VLModel):
    def __init__(self, config):
        super().__init__(config)
        self.language_model = Qwen3VLTextModelWithPruning._from_config(config.text_config)
        self.post_init()


@inherit_weight_conversions
class Qwen3VLForConditionalGenerationWithPruning(_PrunedGeneration, qwen3.Qwen3VLForConditionalGeneration):
    forward = pruned_forward(qwen3.Qwen3VLForConditionalGeneration)

    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen3VLModelWithPruning(config)
        self.post_init()
        self._link_settings()


@inherit_weight_conversions
class Qwen3VLMoeTextModelWithPruning(_DeepStackOnKeptTokens, _PrunedTextModel, qwen3_moe.Qwen3VLMoeTextModel):
    pass


@inherit_weight_conversions
class Qwen3VLMoeModelWithPruning(_VisionWithoutPruningKwargs, qwen3_moe.Qwen3VLMoeModel):
    def __init__(self, config):
        super().__init__(config)
        self.language_model = Qwen3VLMoeTextModelWithPruning._from_config(config.text_config)
        self.post_init()


@inherit_weight_conversions
class Qwen3VLMoeForConditionalGenerationWithPruning(_PrunedGeneration, qwen3_moe.Qwen3VLMoeForConditionalGeneration):
    forward = pruned_forward(qwen3_moe.Qwen3VLMoeForConditionalGeneration)

    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen3VLMoeModelWithPruning(config)
        self.post_init()
        self._link_settings()


# config.model_type -> the class that loads that checkpoint with pruning.
QWEN_CLASSES = {
    "qwen2_vl": Qwen2VLForConditionalGenerationWithPruning,
    "qwen2_5_vl": Qwen2_5_VLForConditionalGenerationWithPruning,
    "qwen3_vl": Qwen3VLForConditionalGenerationWithPruning,
    "qwen3_vl_moe": Qwen3VLMoeForConditionalGenerationWithPruning,
}
