"""Qwen2-VL and Qwen2.5-VL with visual-token pruning (DART by default), on transformers' own classes.

Each family gets three thin subclasses of the library's classes: the text model, whose `forward` is the
library's decoder loop plus the pruning engine's hook before each layer; the multimodal model, which builds
that text model and keeps the pruning arguments away from the vision tower; and the generation class, which
finds the image and video spans in the prompt and carries the call's `PruningRecord`. Nothing else is
changed: the vision tower, the M-RoPE position ids (`get_rope_index`, `rope_deltas`) and `generate` are the
library's. Kept tokens keep their original 3-D positions, so decoding positions are what they are unpruned.

Settings come from `config.DART_config` (or, as the DART release's Qwen2.5-VL reads them,
`config.text_config.DART_config`) or per call from `PruningRecord(dart_config=...)`. The budget follows the
reference on Qwen: the reduction ratio only (see `QwenVLBackend`).
"""

from __future__ import annotations

import inspect

import torch
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen25
from transformers.models.qwen2_vl import modeling_qwen2_vl as qwen2
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from llava.model.pruning import PruningRecord
from llava.model.pruning.backends import QwenVLBackend
from llava.model.pruning.engine import PruningHook
from llava.model.pruning.record import ImageSpan
from llava.model.strict_loading import inherit_weight_conversions

# Keyword arguments of ours that travel with the library's **kwargs from the generation class down to the text
# model; the vision tower, which gets the same **kwargs, must not see them.
PRUNING_KWARGS = ("image_spans", "pruning_record")


def vision_spans(input_ids: torch.Tensor, token_ids: tuple[int, ...]) -> list[list[ImageSpan]]:
    """Per row of (B, L) `input_ids`, the (start, length) of each run of image or video placeholder tokens:
    an image's tokens run from its first `<|image_pad|>` up to its `<|vision_end|>`."""
    placeholder = torch.isin(input_ids, torch.tensor(token_ids, device=input_ids.device)).int()
    # +1 where a run starts, -1 just after it ends (a zero column on each side closes runs at the edges).
    edges = torch.nn.functional.pad(placeholder, (1, 1)).diff(dim=1)
    spans = []
    for row in edges.cpu():
        starts, ends = (row == 1).nonzero().flatten().tolist(), (row == -1).nonzero().flatten().tolist()
        spans.append([(start, end - start) for start, end in zip(starts, ends)])
    return spans


class _PrunedTextModel:
    """The Qwen2-VL / Qwen2.5-VL text model's forward (identical in both families) plus the pruning hook.

    `settings_config` is the top-level model config, where `DART_config` is looked up first; the generation
    class sets it.
    """

    settings_config = None

    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        image_spans: list[list[ImageSpan]] | None = None,
        pruning_record: PruningRecord | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        past_length = past_key_values.get_seq_length() if past_key_values is not None else 0
        # M-RoPE: (3, B, L) positions for temporal, height and width; a leading text row makes them (4, B, L).
        if position_ids is None:
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_length
            position_ids = position_ids.view(1, 1, -1).expand(3, inputs_embeds.shape[0], -1)
        elif position_ids.ndim == 2:
            position_ids = position_ids[None, ...].expand(3, position_ids.shape[0], -1)
        if position_ids.ndim == 3 and position_ids.shape[0] == 4:
            text_position_ids, position_ids = position_ids[0], position_ids[1:]
        else:
            text_position_ids = None
        if self.has_sliding_layers:  # released Qwen2-VL / 2.5-VL checkpoints set use_sliding_window: false
            raise NotImplementedError("Qwen text models with sliding-window layers (use_sliding_window) are not supported")

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            position_ids=text_position_ids,
        )
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        layer_kwargs = {"attention_mask": causal_mask, "position_embeddings": position_embeddings,
                        "position_ids": text_position_ids}

        prune = PruningHook(
            QwenVLBackend(self, self.settings_config), pruning_record if pruning_record is not None else PruningRecord(),
            image_spans=image_spans, attention_mask=attention_mask, position_ids=position_ids,
            cache=past_key_values, past_length=past_length, hidden_states=inputs_embeds,
        )
        for idx, decoder_layer in enumerate(self.layers):
            hidden_states, layer_kwargs = prune(idx, hidden_states, layer_kwargs)
            hidden_states = decoder_layer(
                hidden_states, past_key_values=past_key_values, use_cache=use_cache, **layer_kwargs, **kwargs
            )

        hidden_states = self.norm(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, past_key_values=past_key_values)


class _VisionWithoutPruningKwargs:
    """The multimodal model's feature getters, with our keyword arguments kept from the vision tower."""

    def get_image_features(self, pixel_values, image_grid_thw=None, **kwargs):
        return super().get_image_features(pixel_values, image_grid_thw, **_without_pruning(kwargs))

    def get_video_features(self, pixel_values_videos, video_grid_thw=None, **kwargs):
        return super().get_video_features(pixel_values_videos, video_grid_thw, **_without_pruning(kwargs))


def _without_pruning(kwargs: dict) -> dict:
    return {key: value for key, value in kwargs.items() if key not in PRUNING_KWARGS}


def _pruned_forward(library_class):
    """The generation class's forward: the library's, with the image and video spans read from `input_ids` at
    prefill and the call's `PruningRecord` passed down. Its signature is the library's plus ours, since
    `generate` checks its arguments against the signature."""
    library_forward = library_class.forward

    def forward(self, input_ids=None, *, pruning_record: PruningRecord | None = None,
                image_spans: list[list[ImageSpan]] | None = None, **kwargs):
        cache = kwargs.get("past_key_values")
        prefill = cache is None or cache.get_seq_length() == 0
        if prefill and image_spans is None and input_ids is not None:
            image_spans = vision_spans(input_ids, (self.config.image_token_id, self.config.video_token_id))
        record = pruning_record if pruning_record is not None else PruningRecord()
        return library_forward(self, input_ids=input_ids, pruning_record=record,
                               image_spans=image_spans if prefill else None, **kwargs)

    parameters = list(inspect.signature(library_forward).parameters.values())
    variadic = [p for p in parameters if p.kind is inspect.Parameter.VAR_KEYWORD]
    ours = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in PRUNING_KWARGS]
    forward.__signature__ = inspect.Signature([p for p in parameters if p not in variadic] + ours + variadic)
    forward.__doc__ = (
        f"`{library_class.__name__}.forward`; `pruning_record` carries this call's settings in and its kept "
        "positions out. The image spans are read from `input_ids` at prefill (pass `image_spans` with `inputs_embeds`)."
    )
    return forward


class _PrunedGeneration:
    """The generation class's additions: the settings' config linked to the text model, and the record."""

    last_pruning_record: PruningRecord | None = None

    def _link_settings(self) -> None:
        self.model.language_model.settings_config = self.config
        self.last_pruning_record = None

    def generate(self, *args, pruning_record: PruningRecord | None = None, **kwargs):
        """The library's generate; the pruning state of the call lands in `pruning_record` (pass your own in
        concurrent code) and, for convenience in single-threaded use, in `self.last_pruning_record`."""
        record = pruning_record if pruning_record is not None else PruningRecord()
        self.last_pruning_record = record
        return super().generate(*args, pruning_record=record, **kwargs)


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
    forward = _pruned_forward(qwen2.Qwen2VLForConditionalGeneration)

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
    forward = _pruned_forward(qwen25.Qwen2_5_VLForConditionalGeneration)

    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen2_5_VLModelWithPruning(config)
        self.post_init()
        self._link_settings()


# config.model_type -> the class that loads that checkpoint with pruning.
QWEN_CLASSES = {
    "qwen2_vl": Qwen2VLForConditionalGenerationWithPruning,
    "qwen2_5_vl": Qwen2_5_VLForConditionalGenerationWithPruning,
}
