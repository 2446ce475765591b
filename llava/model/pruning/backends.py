"""Engine backends for decoder models laid out like transformers' decoders.

`RotaryDecoderBackend` serves any text model with `layers[i].input_layernorm` before `layers[i].self_attn` and a
final `norm` (LLaMA, Mistral, Qwen2-VL's and Qwen2.5-VL's text models, Qwen3, ...). What the methods read inside a
layer (the keys after RoPE, the last token's attention row) comes out of the layer's own attention module, so its
projections, biases, q / k norms, grouped-query heads and rotary embedding are the ones the layer uses.
`QwenVLBackend` is that backend for the Qwen2-VL / Qwen2.5-VL text models, with the DART release's settings.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from transformers.masking_utils import create_causal_mask

from llava.model.pruning.config import PruningSettings
from llava.model.pruning.engine import warn_once

LLAVA_DEFAULT_BUDGET = PruningSettings.max_num_trunction  # 128, what the flags and make_dart_config fill in


class RotaryDecoderBackend:
    """The engine's view of one LLaMA-style base model (`model`: e.g. a `LlamaModel` subclass)."""

    reduces_before_llm = True  # LLaVA's splice (llava_arch) reduces the image features for such methods
    # One position per token, embedded by the model's `rotary_emb`: the engine can give kept tokens new ones.
    renumbers_positions = True

    def __init__(self, model):
        self.model = model
        self.config = model.config

    def position_embeddings(self, hidden_states: torch.Tensor, position_ids: torch.Tensor):
        """The rotary (cos, sin) the layers take for `position_ids` (B, L), as the model's forward computes them."""
        return self.model.rotary_emb(hidden_states, position_ids)

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
        """From the cache when it holds exactly this prefill (keys are stored after RoPE), else from the layer's
        attention module run on the layer's input."""
        if cache is not None and cache.get_seq_length(layer_idx) == layer_input.shape[1]:
            keys = cache.layers[layer_idx].keys  # (B, kv_heads, L, head_dim)
        else:
            layer = self.model.layers[layer_idx]
            spy = _KeyCapture()
            try:
                _eager_twin(layer.self_attn).forward(hidden_states=layer.input_layernorm(layer_input),
                                                     position_embeddings=position_embeddings, attention_mask=None,
                                                     past_key_values=spy)
            except _KeysCaptured:
                pass
            if spy.keys is None:
                raise TypeError(f"{type(layer.self_attn).__name__} never handed its keys to the cache "
                                "(past_key_values.update): the pruning engine cannot read them")
            keys = spy.keys
        return keys.transpose(1, 2).flatten(2)

    def last_token_attention(self, layer_idx: int, layer_input: torch.Tensor, position_embeddings, keys: torch.Tensor,
                             valid: torch.Tensor | None) -> torch.Tensor:
        """The row of the last token in the attention weights eager attention returns for this layer, averaged
        over heads, (B, L) in float32. The layer's attention module runs eagerly on the last token alone,
        against `keys` (this layer's, after RoPE): one (heads x L) product whatever attention backend the model
        runs, in the model's dtype as eager attention computes it (softmax in float32)."""
        layer = self.model.layers[layer_idx]
        attn = layer.self_attn
        batch, length, _ = layer_input.shape
        keys = keys.view(batch, length, -1, attn.head_dim).transpose(1, 2)
        mask = torch.zeros(batch, 1, 1, length, dtype=layer_input.dtype, device=layer_input.device)
        if valid is not None:  # the last token is the newest, so causality masks nothing else
            mask = mask.masked_fill(~valid.to(mask.device).bool()[:, None, None, :], torch.finfo(mask.dtype).min)
        _, weights = _eager_twin(attn).forward(
            hidden_states=layer.input_layernorm(layer_input[:, -1:]),
            position_embeddings=tuple(e[..., -1:, :] for e in position_embeddings),
            attention_mask=mask, past_key_values=_KeyCapture(keys))
        return weights[:, :, -1].float().mean(dim=1)

    def attention_matrix(self, layer_idx: int, layer_input: torch.Tensor, position_embeddings, keys: torch.Tensor,
                         valid: torch.Tensor | None, rows_per_chunk: int = 256) -> torch.Tensor:
        """Every row of the attention weights eager attention returns for this layer, averaged over heads,
        (B, L, L) in float32, causal and with the padding in `valid` masked. Computed in chunks of query rows so
        that only (heads x chunk x L) weights exist at once, whatever attention backend the model runs."""
        layer = self.model.layers[layer_idx]
        attn = layer.self_attn
        batch, length, _ = layer_input.shape
        keys = keys.view(batch, length, -1, attn.head_dim).transpose(1, 2)
        allowed = torch.ones(length, length, dtype=torch.bool, device=layer_input.device).tril()[None, None]
        if valid is not None:
            allowed = allowed & valid.to(layer_input.device).bool()[:, None, None, :]
        mask = torch.zeros(allowed.shape, dtype=layer_input.dtype, device=layer_input.device)
        mask = mask.masked_fill(~allowed, torch.finfo(mask.dtype).min).expand(batch, 1, length, length)
        normed = layer.input_layernorm(layer_input)
        chunks = []
        for first in range(0, length, rows_per_chunk):
            last = min(length, first + rows_per_chunk)
            _, weights = _eager_twin(attn).forward(
                hidden_states=normed[:, first:last],
                position_embeddings=tuple(e[..., first:last, :] for e in position_embeddings),
                attention_mask=mask[:, :, first:last], past_key_values=_KeyCapture(keys))
            chunks.append(weights.float().mean(dim=1))
        return torch.cat(chunks, dim=1)

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


class _KeysCaptured(Exception):
    """Raised by `_KeyCapture` once it holds the keys: the attention module need not compute anything more."""


class _KeyCapture:
    """Stands in for the KV cache in one call of an attention module. `update` is where every transformers
    attention hands over its keys after its norms and rotary embedding: with no keys given, they are captured
    and the call stops there; with keys given, they (and zero values: only the weights are read) replace the
    call's own, as a cache holding the prefill would."""

    def __init__(self, keys: torch.Tensor | None = None):
        self.keys = keys

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        if self.keys is None:
            self.keys = key_states
            raise _KeysCaptured
        values = self.keys.new_zeros(*self.keys.shape[:-1], value_states.shape[-1])
        return self.keys, values


def _eager_twin(attn: torch.nn.Module) -> torch.nn.Module:
    """The attention module under eager attention, which returns its weights: a shallow copy sharing its
    parameters and submodules, with a config copy naming eager attention (the model's own config is untouched,
    so concurrent calls are unaffected). Called through `forward`, so no hook of the module sees it."""
    twin = copy.copy(attn)
    twin.config = copy.copy(attn.config)
    twin.config._attn_implementation = "eager"
    return twin


class QwenVLBackend(RotaryDecoderBackend):
    """The Qwen2-VL / Qwen2.5-VL / Qwen3-VL text model. `settings_config`: the top-level model config, where
    `DART_config` is read first (the DART release's Qwen2.5-VL reads it from `text_config`, also accepted)."""

    llava_next = False
    reduces_before_llm = True  # the generation class reduces the images for such methods (qwen_before_llm)
    # Where such methods run here, for the engine's message when unreduced features reach the language model.
    before_llm_hint = ("on Qwen-VL models they run in `generate` (or pass `model.reduced_prompt(...).model_inputs()` "
                       "to forward)")
    # M-RoPE: an image token's position is (t, h, w), and no release says how to renumber such positions.
    renumbers_positions = False
    # The DART release's Qwen dicts carry no LLaVA-1.6 budget: it is meaningless here.
    unused_settings_keys = ("retain_token_num_for_llava_next",)
    # Who ignores max_num_trunction, and on whose authority, in the warning (other ratio-budget backends reuse
    # `adapt_settings` with their own).
    ratio_models = "Qwen2-VL / Qwen2.5-VL / Qwen3-VL, as in the DART release"

    def __init__(self, model, settings_config=None):
        super().__init__(model)
        self.settings_config = settings_config

    def default_settings(self):
        top = getattr(self.settings_config, "DART_config", None)
        return top if top is not None else getattr(self.config, "DART_config", None)

    def adapt_settings(self, settings):
        """The reference's Qwen budget is the ratio only, T = int(m * (1 - reduction_ratio) / pivots); it
        never reads max_num_trunction, and neither do we on Qwen. Every command fills in LLaVA-1.5's default
        budget when the user gives none, so only another value is worth a warning."""
        if settings.max_num_trunction not in (None, LLAVA_DEFAULT_BUDGET):
            warn_once(
                f"max_num_trunction={settings.max_num_trunction} is ignored on {self.ratio_models}: the budget "
                f"comes from reduction_ratio={settings.reduction_ratio}"
            )
        if settings.max_num_trunction is not None:
            settings = dataclasses.replace(settings, max_num_trunction=None)
        return settings
