"""Engine backends for decoder models laid out like transformers' `LlamaModel`.

`RotaryDecoderBackend` serves any model with `layers[i].input_layernorm`, `layers[i].self_attn.k_proj`
(and `head_dim`), a `rotary_emb` returning (cos, sin) and a final `norm`: LLaMA and Qwen2's text model
among them. A family with another RoPE layout overrides `apply_rotary` (and `position_embeddings`).
`QwenVLBackend` is that backend for the Qwen2-VL / Qwen2.5-VL text models (M-RoPE: the rotary embedding
takes (3, B, L) positions and returns ordinary (B, L, head_dim) cos / sin), with the reference's settings.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from transformers.masking_utils import create_causal_mask
from transformers.models.llama.modeling_llama import rotate_half

from llava.model.pruning.engine import warn_once


class RotaryDecoderBackend:
    """The engine's view of one LLaMA-style base model (`model`: e.g. a `LlamaModel` subclass)."""

    reduces_before_llm = True  # LLaVA's splice (llava_arch) reduces the image features for such methods

    def __init__(self, model):
        self.model = model
        self.config = model.config

    @property
    def llava_next(self) -> bool:
        return str(getattr(self.config, "image_aspect_ratio", "pad")).startswith("anyres")

    @property
    def unused_settings_keys(self) -> tuple[str, ...]:
        """LLaVA-1.6's budget is `retain_token_num_for_llava_next` alone; LLaVA-1.5's never reads it."""
        return ("max_num_trunction", "reduction_ratio") if self.llava_next else ("retain_token_num_for_llava_next",)

    def default_settings(self):
        return getattr(self.config, "DART_config", None)

    def adapt_settings(self, settings):
        return settings

    def final_norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.model.norm(hidden_states)

    def layer_keys(self, layer_idx: int, layer_input: torch.Tensor, position_embeddings, cache) -> torch.Tensor:
        """From the cache when it holds exactly this prefill (keys are stored after RoPE), else recomputed."""
        if cache is not None and cache.get_seq_length(layer_idx) == layer_input.shape[1]:
            keys = cache.layers[layer_idx].keys  # (B, kv_heads, L, head_dim)
            return keys.transpose(1, 2).flatten(2)
        layer = self.model.layers[layer_idx]
        attn = layer.self_attn
        batch, length, _ = layer_input.shape
        keys = attn.k_proj(layer.input_layernorm(layer_input)).view(batch, length, -1, attn.head_dim)
        return self.apply_rotary(keys, position_embeddings).flatten(2)

    def last_token_attention(self, layer_idx: int, layer_input: torch.Tensor, position_embeddings, keys: torch.Tensor,
                             valid: torch.Tensor | None) -> torch.Tensor:
        """softmax(q_last . k / sqrt(d)) per head, averaged over heads: the row of the last token in the
        attention weights eager attention would return for this layer, (B, L) in float32. Only the last
        token's query is projected, so it costs one (heads x L) product whatever attention backend runs."""
        layer = self.model.layers[layer_idx]
        attn = layer.self_attn
        batch, length, _ = layer_input.shape
        query = attn.q_proj(layer.input_layernorm(layer_input[:, -1:])).view(batch, 1, -1, attn.head_dim)
        cos, sin = position_embeddings
        query = self.apply_rotary(query, (cos[..., -1:, :], sin[..., -1:, :]))[:, 0]  # (B, heads, d)
        keys = keys.view(batch, length, -1, attn.head_dim)
        groups = query.shape[1] // keys.shape[2]  # grouped-query attention: each KV head serves `groups` heads
        keys = keys.repeat_interleave(groups, dim=2)
        scale = getattr(attn, "scaling", attn.head_dim ** -0.5)
        scores = torch.einsum("bhd,blhd->bhl", query.float(), keys.float()) * scale
        if valid is not None:  # the last token is the newest, so causality masks nothing else
            scores = scores.masked_fill(~valid.to(scores.device).bool()[:, None, :], float("-inf"))
        return scores.softmax(dim=-1).mean(dim=1)

    def apply_rotary(self, keys: torch.Tensor, position_embeddings) -> torch.Tensor:
        """RoPE on (B, L, heads, head_dim) keys, as the attention layers apply it."""
        cos, sin = (e.unsqueeze(2) for e in position_embeddings)
        return keys * cos + rotate_half(keys) * sin

    def position_embeddings(self, hidden_states: torch.Tensor, position_ids: torch.Tensor) -> Any:
        return self.model.rotary_emb(hidden_states, position_ids=position_ids)

    def causal_mask(self, hidden_states: torch.Tensor, attention_mask, cache, layer_idx: int):
        return create_causal_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=attention_mask,
            past_key_values=cache,
            # No position_ids: the gaps left by pruning would otherwise be read as packed sequences.
            position_ids=None,
            layer_idx=layer_idx if cache is not None else None,
        )


class QwenVLBackend(RotaryDecoderBackend):
    """The Qwen2-VL / Qwen2.5-VL text model. `settings_config`: the top-level model config, where
    `DART_config` is read first (the DART release's Qwen2.5-VL reads it from `text_config`, also accepted)."""

    llava_next = False
    reduces_before_llm = False
    # The DART release's Qwen dicts carry no LLaVA-1.6 budget: it is meaningless here.
    unused_settings_keys = ("retain_token_num_for_llava_next",)

    def __init__(self, model, settings_config=None):
        super().__init__(model)
        self.settings_config = settings_config

    def default_settings(self):
        top = getattr(self.settings_config, "DART_config", None)
        return top if top is not None else getattr(self.config, "DART_config", None)

    def adapt_settings(self, settings):
        """The reference's Qwen budget is the ratio only, T = int(m * (1 - reduction_ratio) / pivots); it
        never reads max_num_trunction, and neither do we on Qwen."""
        if settings.max_num_trunction is not None:
            warn_once(
                f"max_num_trunction={settings.max_num_trunction} is ignored on Qwen2-VL / Qwen2.5-VL, as in the DART "
                f"release: the budget comes from reduction_ratio={settings.reduction_ratio}"
            )
            settings = dataclasses.replace(settings, max_num_trunction=None)
        return settings
