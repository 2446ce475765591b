"""LLaVA on Mistral (`liuhaotian/llava-v1.6-mistral-7b`: model_type "llava_mistral"), pruned as LLaMA is.

Mistral is LLaMA's architecture with grouped-query attention and an optional sliding window, and its
transformers base model runs LLaMA's decoder loop; the classes here are the shared LLaVA code
(`llava_decoder`) over `MistralModel` / `MistralForCausalLM`, with the same pruning engine attached.

The sliding window: with `sliding_window: null` (the released LLaVA-1.6-Mistral, from Mistral-7B-Instruct-v0.2)
attention is plainly causal. With a window set, unpruned calls run `MistralModel`'s sliding-window mask, but
pruning inside the language model is refused: a window over a pruned cache would count kept tokens rather than
positions, and the library's sliding-window cache drops the keys the methods read.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForCausalLM, MistralConfig, MistralForCausalLM, MistralModel

from llava.model.language_model.llava_decoder import LlavaCausalLMMixin, PrunedDecoderMixin
from llava.model.llava_arch import LlavaMetaForCausalLM, LlavaMetaModel


class SlidingWindowPruningError(ValueError):
    """Pruning inside the language model was asked of a Mistral model whose config sets a sliding window."""


class LlavaMistralConfig(MistralConfig):
    """Mistral config plus LLaVA's `mm_*` fields and the optional `DART_config` dict (None: no pruning)."""

    model_type = "llava_mistral"


class LlavaMistralModel(PrunedDecoderMixin, LlavaMetaModel, MistralModel):
    config_class = LlavaMistralConfig

    def check_prunable(self) -> None:
        window = self.config.sliding_window
        if window is not None:
            raise SlidingWindowPruningError(
                f"this Mistral model's config sets sliding_window={window}, and pruning inside the language model "
                "is not supported with a sliding window (the window would count kept tokens, not positions, and "
                "the sliding-window cache drops keys the pruning methods read). Set config.sliding_window = None "
                f"to attend over the whole sequence (identical while prompt and answer hold at most {window} "
                "tokens), or switch pruning off"
            )


class LlavaMistralForCausalLM(LlavaCausalLMMixin, MistralForCausalLM, LlavaMetaForCausalLM):
    config_class = LlavaMistralConfig
    llava_model_class = LlavaMistralModel


AutoConfig.register("llava_mistral", LlavaMistralConfig)
AutoModelForCausalLM.register(LlavaMistralConfig, LlavaMistralForCausalLM)
