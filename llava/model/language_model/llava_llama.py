"""LLaVA on LLaMA, with visual-token pruning (DART by default) inside the decoder loop.

`LlavaLlamaModel` subclasses transformers' `LlamaModel` and overrides only `forward`: the decoder loop is
the library's, plus one hook before layer K where the configured pruning method picks the tokens that
layers K..N-1 keep. Per-call pruning state (settings and image spans in, kept indices out) travels in a
`PruningRecord`, never in `model.config`; `model.config.DART_config` is only the default for calls whose
record leaves the settings unset.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

import torch
from transformers import initialization as init
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, LlamaModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.models.llama.modeling_llama import LlamaPreTrainedModel, rotate_half
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from llava.constants import IMAGE_TOKEN_INDEX
from llava.model.llava_arch import ImageSpan, LlavaMetaForCausalLM, LlavaMetaModel
from llava.model.pruning import DARTConfig, keep_indices, parse_dart_config

logger = logging.getLogger(__name__)
_reported: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _reported:
        _reported.add(message)
        logger.warning(message)


class _UseModelConfig:
    """Type of `USE_MODEL_CONFIG`; one instance, so `record.dart_config is USE_MODEL_CONFIG` is the test."""

    def __repr__(self) -> str:
        return "USE_MODEL_CONFIG"


# PruningRecord.dart_config's default: "not set for this call, read model.config.DART_config at prefill".
# Distinct from None, which means "no pruning for this call" (as DART_config = None does model-wide).
USE_MODEL_CONFIG = _UseModelConfig()


class LlavaConfig(LlamaConfig):
    """LLaMA config plus LLaVA's `mm_*` fields and the optional `DART_config` dict (None: no pruning)."""

    model_type = "llava_llama"


@dataclasses.dataclass
class PruningRecord:
    """Pruning state of one generate / forward call.

    Filled by the model at prefill and read back at every decoding step (it rides along the generate
    kwargs), so concurrent calls never share state. Users read `keep` (or the helpers) afterwards.

    keep: (B, L') ascending absolute positions, in the prefill sequence, of the tokens layers >= `layer` kept.
    forced_keep: if set before the call, used instead of running the pruning method (positions past its
        length, e.g. generated tokens in a longer sequence, are kept too).
    dart_config: this call's pruning settings, read at prefill: a `DARTConfig` or a `DART_config` dict
        (validated against the model's depth then; a bad key raises PruningConfigError, a ValueError),
        None for "no pruning in this call", or `USE_MODEL_CONFIG` (the default) for `model.config.DART_config`.
        Concurrent calls with different settings need nothing else: `model.config` is not touched.
    """

    keep: torch.Tensor | None = None
    layer: int | None = None
    prefill_length: int | None = None
    image_spans: list[list[ImageSpan]] | None = None
    selection_seconds: float = 0.0
    forced_keep: torch.Tensor | None = None
    dart_config: DARTConfig | Mapping[str, Any] | None | _UseModelConfig = USE_MODEL_CONFIG

    @property
    def pruned(self) -> bool:
        return self.keep is not None

    def kept_image_positions(self, sample: int = 0) -> list[torch.Tensor]:
        """Per image of `sample`: the kept tokens' offsets inside that image (patch indices, row-major)."""
        spans = (self.image_spans or [[]])[sample]
        if self.keep is None:
            return [torch.arange(length) for _, length in spans]
        keep = self.keep[sample].cpu()
        return [keep[(keep >= start) & (keep < start + length)] - start for start, length in spans]

    def num_kept_image_tokens(self, sample: int = 0) -> int:
        return sum(int(p.numel()) for p in self.kept_image_positions(sample))

    def num_image_tokens(self, sample: int = 0) -> int:
        return sum(length for _, length in (self.image_spans or [[]])[sample])


@dataclasses.dataclass
class LlavaCausalLMOutputWithPast(CausalLMOutputWithPast):
    """`kept_indices`: (B, L') positions kept after pruning, None when nothing was pruned."""

    kept_indices: torch.Tensor | None = None


def _post_rope_keys(layer, layer_input: torch.Tensor, position_embeddings) -> torch.Tensor:
    """Recompute layer's key states after RoPE: (B, L, kv_heads * head_dim). Used when no cache holds them."""
    attn = layer.self_attn
    batch, length, _ = layer_input.shape
    keys = attn.k_proj(layer.input_layernorm(layer_input)).view(batch, length, -1, attn.head_dim)
    cos, sin = (e.unsqueeze(2) for e in position_embeddings)
    return (keys * cos + rotate_half(keys) * sin).flatten(2)


def _spans_per_row(image_spans: list[list[ImageSpan]], batch: int) -> list[list[ImageSpan]]:
    """One span list per batch row. Beam search / num_return_sequences repeat each prompt in place
    (repeat_interleave) after the spans were computed, so the spans are repeated the same way."""
    if len(image_spans) == batch:
        return image_spans
    if len(image_spans) == 0 or batch % len(image_spans):
        raise ValueError(f"got image spans for {len(image_spans)} samples but the batch has {batch} rows")
    return [spans for spans in image_spans for _ in range(batch // len(image_spans))]


class LlavaLlamaModel(LlavaMetaModel, LlamaModel):
    config_class = LlavaConfig

    def __init__(self, config: LlamaConfig):
        super().__init__(config)

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        # LLaVA-1.6's row separator is a bare parameter, which transformers' defaults do not cover. A checkpoint
        # without it (a LLaVA-1.5 model switched to spatial_unpad) starts from LLaVA's initialisation.
        if module is self and getattr(self, "image_newline", None) is not None:
            init.normal_(self.image_newline, mean=0.0, std=self.config.hidden_size**-0.5)

    def dart_config(self, record: PruningRecord | None = None) -> DARTConfig | None:
        """The pruning settings of a call: the record's own if it sets them, else `config.DART_config`."""
        raw = getattr(record, "dart_config", USE_MODEL_CONFIG)
        if raw is USE_MODEL_CONFIG:
            raw = getattr(self.config, "DART_config", None)
        return None if raw is None else parse_dart_config(raw, self.config.num_hidden_layers)

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
        """LlamaModel.forward plus the pruning hook.

        image_spans: per sample, the (start, length) of each image's tokens (from the splice); pruning runs
            at prefill when the call's settings (`dart_config(pruning_record)`) are set and a sample has an image.
        pruning_record: per-call state; filled at prefill, needed again at each decoding step.
        """
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        past_length = past_key_values.get_seq_length() if past_key_values is not None else 0
        if position_ids is None:
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_length
            position_ids = position_ids.unsqueeze(0)
        record = pruning_record if pruning_record is not None else PruningRecord()
        if image_spans is not None and past_length == 0:
            image_spans = _spans_per_row(image_spans, inputs_embeds.shape[0])
            record.image_spans = image_spans

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            position_ids=position_ids,
        )
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)
        layer_kwargs = {"attention_mask": causal_mask, "position_embeddings": position_embeddings, "position_ids": position_ids}

        prune_at = self._pruning_layer(record, image_spans, past_key_values, past_length, inputs_embeds.shape[1])
        layer_input = hidden_states
        for idx, decoder_layer in enumerate(self.layers[: self.config.num_hidden_layers]):
            if idx == prune_at:  # the single pruning hook
                hidden_states, layer_kwargs = self._enter_pruned_segment(
                    record, hidden_states, layer_input, attention_mask, position_ids, position_embeddings,
                    past_key_values, image_spans, past_length,
                )
            layer_input = hidden_states
            hidden_states = decoder_layer(
                hidden_states, past_key_values=past_key_values, use_cache=use_cache, **layer_kwargs, **kwargs
            )

        hidden_states = self.norm(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, past_key_values=past_key_values)

    def _pruning_layer(self, record, image_spans, cache, past_length: int, query_length: int) -> int | None:
        """The layer before which this call switches to the pruned sequence, or None."""
        if past_length == 0:
            cfg = self.dart_config(record)
            has_image = image_spans is not None and any(len(spans) > 0 for spans in image_spans)
            if cfg is None or not (has_image or record.forced_keep is not None) or query_length < 2:
                return None
            return cfg.K
        if record.pruned:
            return record.layer
        # A cache from a pruned prefill whose record was not passed. Pruning shortens layers K..N-1, so the
        # last layer alone tells (one check per step, not one per layer).
        if cache.get_seq_length(len(cache.layers) - 1) != past_length:
            raise ValueError(
                "the KV cache was pruned at prefill but no pruning_record was passed; pass the "
                "PruningRecord of the prefill call to every decoding step"
            )
        return None

    def _enter_pruned_segment(
        self, record, hidden_states, layer_input, attention_mask, position_ids, position_embeddings, cache,
        image_spans, past_length,
    ):
        """At layer K: select (prefill) or reuse (decoding) the kept tokens; return the state layers >= K see."""
        batch = hidden_states.shape[0]
        if past_length == 0:
            keep = self._select_keep(record, hidden_states, layer_input, position_embeddings, cache, image_spans)
            hidden_states = hidden_states.gather(1, keep.unsqueeze(-1).expand(-1, -1, hidden_states.shape[-1]))
            # Kept tokens keep their original positions, so RoPE sees the same positions as unpruned.
            position_ids = position_ids.expand(batch, -1).gather(1, keep)
            position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)
            pruned_mask = attention_mask.gather(1, keep) if attention_mask is not None and attention_mask.ndim == 2 else None
        else:
            keep = record.keep
            pruned_mask = None
            if attention_mask is not None and attention_mask.ndim == 2:
                # The 2D mask covers prefill + generated tokens; layers >= K only cache the kept prefill part.
                tail = attention_mask[:, record.prefill_length :]
                pruned_mask = torch.cat([attention_mask.gather(1, keep.to(attention_mask.device)), tail], dim=1)
        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=pruned_mask,
            past_key_values=cache,
            # No position_ids: the gaps left by pruning would otherwise be read as packed sequences.
            position_ids=None,
            layer_idx=record.layer if cache is not None else None,
        )
        return hidden_states, {"attention_mask": causal_mask, "position_embeddings": position_embeddings, "position_ids": None}

    def _select_keep(self, record, hidden_states, layer_input, position_embeddings, cache, image_spans) -> torch.Tensor:
        cfg = self.dart_config(record)
        batch, length, _ = hidden_states.shape
        start_time = time.perf_counter()
        if record.forced_keep is not None:
            forced = record.forced_keep.to(hidden_states.device).expand(batch, -1)
            tail = torch.arange(int(forced.max()) + 1, length, device=hidden_states.device).expand(batch, -1)
            keep = torch.cat([forced, tail], dim=1)
        else:
            normed = self.norm(hidden_states)
            keys = self._layer_keys(cfg.K - 1, layer_input, position_embeddings, cache)
            llava_next = str(getattr(self.config, "image_aspect_ratio", "pad")).startswith("anyres")
            rows = []
            for b in range(batch):
                span = self._single_image_span(image_spans[b], cfg, length)
                rows.append(keep_indices(normed[b], keys[b], span, cfg, llava_next=llava_next))
            if len({row.numel() for row in rows}) > 1:
                raise NotImplementedError(
                    f"pruning kept different numbers of tokens per sample ({[row.numel() for row in rows]}); "
                    "batches whose samples keep different counts are not supported yet: use batch size 1"
                )
            keep = torch.stack(rows)
        record.keep, record.layer, record.prefill_length = keep, cfg.K, length
        record.selection_seconds = time.perf_counter() - start_time
        return keep

    def _layer_keys(self, layer_idx: int, layer_input, position_embeddings, cache) -> torch.Tensor:
        """Post-RoPE keys of layer `layer_idx`, (B, L, kv_heads * head_dim): from the cache when it has them."""
        if cache is not None and cache.get_seq_length(layer_idx) == layer_input.shape[1]:
            keys = cache.layers[layer_idx].keys  # (B, kv_heads, L, head_dim), stored after RoPE
            return keys.transpose(1, 2).flatten(2)
        return _post_rope_keys(self.layers[layer_idx], layer_input, position_embeddings)

    def _single_image_span(self, spans: list[ImageSpan], cfg: DARTConfig, length: int) -> ImageSpan:
        if len(spans) == 0:
            return (length, 0)
        if len(spans) > 1:
            raise NotImplementedError(
                f"DART prunes one image span per sample; this prompt has {len(spans)} images. "
                "Disable pruning for multi-image prompts (DART_config=None, or PruningRecord(dart_config=None) per call)"
            )
        start, count = spans[0]
        explicit = (cfg.image_token_start_index, cfg.image_token_length)
        if (explicit[0] is not None and explicit[0] != start) or (explicit[1] is not None and explicit[1] != count):
            _warn_once(
                f"DART_config gives image_token_start_index={explicit[0]}, image_token_length={explicit[1]} but the "
                f"image features were spliced at start={start}, length={count}; using the spliced span"
            )
        # LLaVA-1.6 scripts of the DART release set config.text_length (tokens after the image) per sample.
        text_length = getattr(self.config, "text_length", None)
        if text_length is not None and text_length != length - start - count:
            _warn_once(
                f"config.text_length={text_length} but {length - start - count} tokens follow the spliced image; "
                "using the spliced span"
            )
        return (start, count)


class LlavaLlamaForCausalLM(LlamaForCausalLM, LlavaMetaForCausalLM):
    config_class = LlavaConfig

    def __init__(self, config: LlamaConfig):
        # Skip LlamaForCausalLM.__init__, which would build a plain LlamaModel first.
        LlamaPreTrainedModel.__init__(self, config)
        self.model = LlavaLlamaModel(config)
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
        if inputs_embeds is None and images is not None:
            spliced = self.prepare_multimodal_inputs(input_ids, images, attention_mask, labels, image_sizes=image_sizes)
            input_ids, inputs_embeds = None, spliced.inputs_embeds
            attention_mask, position_ids = spliced.attention_mask, spliced.position_ids
            labels, image_spans = spliced.labels, spliced.image_spans
        elif input_ids is not None and bool((input_ids == IMAGE_TOKEN_INDEX).any()):
            raise ValueError("the prompt contains an <image> placeholder but no image was given")
        record = pruning_record if pruning_record is not None else PruningRecord()
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
        """LLaVA's generate: `inputs` (B, L) token ids with IMAGE_TOKEN_INDEX placeholders, `images` to splice.

        Returns only the generated token ids (as LLaVA does, since generation starts from embeddings).
        The pruning state of the call lands in `pruning_record` (pass your own in concurrent code) and,
        for convenience in single-threaded use, in `self.last_pruning_record`.
        """
        if "inputs_embeds" in kwargs:
            raise NotImplementedError("pass token ids and images; `inputs_embeds` is built here")
        if inputs is None:
            raise ValueError("generate needs the prompt's token ids as `inputs`")
        attention_mask = kwargs.pop("attention_mask", None)
        kwargs.pop("position_ids", None)
        if images is not None:
            # Left padding: with a batch, every sample's last prompt token must sit at the end.
            spliced = self.prepare_multimodal_inputs(inputs, images, attention_mask, padding_side="left",
                                                     image_sizes=image_sizes)
            inputs_embeds, attention_mask = spliced.inputs_embeds, spliced.attention_mask.long()
            position_ids, image_spans = spliced.position_ids, spliced.image_spans
        else:
            if bool((inputs == IMAGE_TOKEN_INDEX).any()):
                raise ValueError("the prompt contains an <image> placeholder but no image was given")
            inputs_embeds, image_spans = self.get_model().embed_tokens(inputs), None
            if attention_mask is None:
                attention_mask = torch.ones_like(inputs)
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        record = pruning_record if pruning_record is not None else PruningRecord()
        self.last_pruning_record = record
        return super().generate(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            image_spans=image_spans,
            pruning_record=record,
            **kwargs,
        )


AutoConfig.register("llava_llama", LlavaConfig)
AutoModelForCausalLM.register(LlavaConfig, LlavaLlamaForCausalLM)
