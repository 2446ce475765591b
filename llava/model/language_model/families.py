"""The LLaVA language-model families (LLaMA, Mistral): which config and model classes a checkpoint gets."""

from __future__ import annotations

from transformers import PreTrainedConfig

from llava.model.language_model.llava_llama import LlavaConfig, LlavaLlamaForCausalLM
from llava.model.language_model.llava_mistral import LlavaMistralConfig, LlavaMistralForCausalLM

# The model_type of an original LLaVA checkpoint (one with `mm_vision_tower`) -> our config class. The released
# LLaVA-1.5 checkpoints say "llava" (older LLaVA code), ours and newer ones "llava_llama".
LLAVA_CONFIG_CLASSES: dict[str, type[PreTrainedConfig]] = {
    "llava_llama": LlavaConfig,
    "llava": LlavaConfig,
    "llava_mistral": LlavaMistralConfig,
}

CAUSAL_LM_CLASSES = {LlavaConfig: LlavaLlamaForCausalLM, LlavaMistralConfig: LlavaMistralForCausalLM}

# A plain language model's model_type -> the LLaVA config it becomes when vision is added (training stage 1).
# Any other type is treated as LLaMA, as LLaVA does.
BASE_LLM_CONFIG_CLASSES: dict[str, type[PreTrainedConfig]] = {"mistral": LlavaMistralConfig}


def is_llava_config(config) -> bool:
    return isinstance(config, tuple(CAUSAL_LM_CLASSES))


def causal_lm_class(config):
    """The LLaVA causal-LM class of a config from `LLAVA_CONFIG_CLASSES` (e.g. LlavaMistralForCausalLM)."""
    for config_class, model_class in CAUSAL_LM_CLASSES.items():
        if isinstance(config, config_class):
            return model_class
    raise TypeError(f"{type(config).__name__} is not a LLaVA config; known: "
                    f"{', '.join(c.__name__ for c in CAUSAL_LM_CLASSES)}")


def llava_config_for_base(config) -> PreTrainedConfig:
    """The LLaVA config of a plain language model's config (same fields, the LLaVA family's model_type)."""
    config_class = BASE_LLM_CONFIG_CLASSES.get(config.model_type, LlavaConfig)
    return config_class.from_dict({**config.to_dict(), "model_type": config_class.model_type})
