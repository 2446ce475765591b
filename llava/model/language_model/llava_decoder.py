"""What every LLaVA language-model family shares: the pruning engine on the library's base model, and LLaVA's
causal LM.

`PrunedDecoderMixin` leaves the library base model's forward (`LlamaModel`, `MistralModel`) as it is and attaches
the pruning engine to its decoder layers with hooks (`llava.model.pruning.attach`): at layer K the layers switch to
the tokens the configured method keeps. A family may refuse pruning (`check_prunable`). `LlavaCausalLMMixin` is
LLaVA's forward / generate over such a model: the image splice, the pruning record, the loss over kept tokens.

Per-call pruning state (settings and image spans in, kept positions out) travels in a `PruningRecord`, never
in `model.config`; `model.config.DART_config` is only the default for calls whose record leaves the settings
unset.
"""

from __future__ import annotations

import dataclasses

import torch
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import CausalLMOutputWithPast

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.model.pruning import PruningSettings, PruningRecord
from llava.model.pruning.attach import attach_engine
from llava.model.pruning.backends import RotaryDecoderBackend
from llava.model.pruning.engine import call_settings
from llava.model.pruning.record import ImageSpan


@dataclasses.dataclass
class LlavaCausalLMOutputWithPast(CausalLMOutputWithPast):
    """`kept_indices`: (B, L') positions kept after pruning (see `PruningRecord.keep`), None when nothing was pruned."""

    kept_indices: torch.Tensor | None = None


class PrunedDecoderMixin:
    """Put first in the bases of a LLaVA base model, before `LlavaMetaModel` and the library's base model
    (`LlamaModel`, `MistralModel`): the library's forward runs unchanged, with the pruning engine attached to
    its decoder layers by hooks (`llava.model.pruning.attach`). The forward takes two more keyword arguments:

    image_spans: per sample, the (start, length) of each image's tokens (from the splice); pruning runs at
        prefill when the call's settings (`dart_config(pruning_record)`) are set and a sample has an image.
    pruning_record: per-call state; filled at prefill, needed again at each decoding step.
    """

    def __init__(self, config):
        super().__init__(config)
        attach_engine(self, lambda: RotaryDecoderBackend(self), self.check_prunable)

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        # LLaVA-1.6's row separator is a bare parameter, which transformers' defaults do not cover: a model built
        # from its config gets LLaVA's initialisation (a checkpoint lacking it is refused by strict loading).
        if module is self and getattr(self, "image_newline", None) is not None:
            init.normal_(self.image_newline, mean=0.0, std=self.config.hidden_size**-0.5)

    def dart_config(self, record: PruningRecord | None = None) -> PruningSettings | None:
        """The pruning settings of a call: the record's own if it sets them, else `config.DART_config`."""
        return call_settings(record, RotaryDecoderBackend(self))

    def check_prunable(self) -> None:
        """Raise when this model cannot prune inside the language model; called before a prefill that would."""


class LlavaCausalLMMixin:
    """Put first in the bases of a LLaVA causal LM, before the library's causal LM (`LlamaForCausalLM`, ...) and
    `LlavaMetaForCausalLM`. `llava_model_class`: the family's LLaVA base model (a `PrunedDecoderMixin` class)."""

    llava_model_class: type

    def __init__(self, config):
        # The library causal LM's __init__ would build its plain base model first, only to be replaced.
        PreTrainedModel.__init__(self, config)
        self.model = self.llava_model_class(config)
        self.vocab_size = config.vocab_size
        self.lm_head = torch.nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.last_pruning_record: PruningRecord | None = None
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        images: torch.Tensor | list[torch.Tensor] | None = None,
        image_sizes: list[tuple[int, int]] | None = None,
        image_spans: list[list[ImageSpan]] | None = None,
        pruning_record: PruningRecord | None = None,
        **kwargs,
    ) -> LlavaCausalLMOutputWithPast:
        """LLaVA's forward: `input_ids` with IMAGE_TOKEN_INDEX placeholders + `images`, or spliced `inputs_embeds`
        (+ `image_spans`). With labels and pruning, the loss is over the kept positions (image tokens carry no
        labels, so the text loss is unchanged)."""
        record = pruning_record if pruning_record is not None else PruningRecord()
        if inputs_embeds is None and images is not None:
            spliced = self.prepare_multimodal_inputs(input_ids, images, attention_mask, labels, image_sizes=image_sizes,
                                                     pruning_record=record)
            input_ids, inputs_embeds = None, spliced.inputs_embeds
            attention_mask, position_ids = spliced.attention_mask, spliced.position_ids
            labels, image_spans = spliced.labels, spliced.image_spans
        elif input_ids is not None and bool((input_ids == IMAGE_TOKEN_INDEX).any()):
            raise ValueError("the prompt contains an <image> placeholder but no image was given")
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            image_spans=image_spans,
            pruning_record=record,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if isinstance(logits_to_keep, int):
            hidden_states = hidden_states[:, -logits_to_keep:, :] if logits_to_keep else hidden_states
        else:
            hidden_states = hidden_states[:, logits_to_keep, :]
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            if record.pruned and labels.shape[1] == record.prefill_length:
                labels = labels.gather(1, record.keep.to(labels.device))
                if record.keep_valid is not None:  # the left padding of rows that kept fewer tokens
                    labels = labels.masked_fill(~record.keep_valid.to(labels.device), IGNORE_INDEX)
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return LlavaCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            kept_indices=record.keep,
        )

    @torch.no_grad()
    def generate(
        self,
        inputs: torch.LongTensor | None = None,
        images: torch.Tensor | list[torch.Tensor] | None = None,
        image_sizes: list[tuple[int, int]] | None = None,
        pruning_record: PruningRecord | None = None,
        **kwargs,
    ):
        """LLaVA's generate: `inputs` (or `input_ids`) (B, L) token ids with IMAGE_TOKEN_INDEX placeholders, `images`
        to splice;
        or `inputs_embeds` (B, L, D) spliced already, with `image_spans` saying where the images are.

        Returns only the generated token ids (as LLaVA does, since generation starts from embeddings).
        The pruning state of the call lands in `pruning_record` (pass your own in concurrent code) and,
        for convenience in single-threaded use, in `self.last_pruning_record`.
        """
        if inputs is None:  # the library's keyword for the same thing
            inputs = kwargs.pop("input_ids", None)
        attention_mask = kwargs.pop("attention_mask", None)
        kwargs.pop("position_ids", None)
        image_spans = kwargs.pop("image_spans", None)
        inputs_embeds = kwargs.pop("inputs_embeds", None)
        record = pruning_record if pruning_record is not None else PruningRecord()
        if inputs_embeds is None or images is not None:
            record.image_reductions = None  # filled again if this call's splice reduces its images
        if inputs_embeds is not None:
            # Embeddings already spliced (e.g. by `prepare_multimodal_inputs`): the caller gives the image spans.
            if inputs is not None or images is not None:
                raise ValueError("pass either token ids (and images) or `inputs_embeds` (and `image_spans`), not both")
            if attention_mask is None:
                attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        elif inputs is None:
            raise ValueError("generate needs the prompt's token ids as `inputs` (or spliced `inputs_embeds`)")
        elif images is not None:
            # Left padding: with a batch, every sample's last prompt token must sit at the end.
            spliced = self.prepare_multimodal_inputs(inputs, images, attention_mask, padding_side="left",
                                                     image_sizes=image_sizes, pruning_record=record)
            inputs_embeds, attention_mask = spliced.inputs_embeds, spliced.attention_mask.long()
            position_ids, image_spans = spliced.position_ids, spliced.image_spans
        else:
            if bool((inputs == IMAGE_TOKEN_INDEX).any()):
                raise ValueError("the prompt contains an <image> placeholder but no image was given")
            inputs_embeds, image_spans = self.get_model().embed_tokens(inputs), None
            if attention_mask is None:
                attention_mask = torch.ones_like(inputs)
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        self.last_pruning_record = record
        return super().generate(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            image_spans=image_spans,
            pruning_record=record,
            **kwargs,
        )
