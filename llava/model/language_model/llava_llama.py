"""LLaVA on LLaMA, with visual-token pruning (DART by default) inside the language model.

`LlavaLlamaModel` is transformers' `LlamaModel`, its forward unchanged, with the pruning engine attached to its
decoder layers (`llava.model.language_model.llava_decoder`). `LlavaLlamaForCausalLM` is `LlamaForCausalLM` with LLaVA's image splice, forward and generate, shared
with the other families (`llava_mistral`).
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, LlamaModel

from llava.model.language_model.llava_decoder import LlavaCausalLMMixin, LlavaCausalLMOutputWithPast, PrunedDecoderMixin
from llava.model.llava_arch import LlavaMetaForCausalLM, LlavaMetaModel

__all__ = ["LlavaCausalLMOutputWithPast", "LlavaConfig", "LlavaLlamaForCausalLM", "LlavaLlamaModel"]


class LlavaConfig(LlamaConfig):
    """LLaMA config plus LLaVA's `mm_*` fields and the optional `DART_config` dict (None: no pruning)."""

    model_type = "llava_llama"


class LlavaLlamaModel(PrunedDecoderMixin, LlavaMetaModel, LlamaModel):
    config_class = LlavaConfig


class LlavaLlamaForCausalLM(LlavaCausalLMMixin, LlamaForCausalLM, LlavaMetaForCausalLM):
    config_class = LlavaConfig
    llava_model_class = LlavaLlamaModel


AutoConfig.register("llava_llama", LlavaConfig)
AutoModelForCausalLM.register(LlavaConfig, LlavaLlamaForCausalLM)
