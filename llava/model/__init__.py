"""LLaVA model classes; importing this package registers `llava_llama` and `llava_mistral` with the transformers
Auto classes."""

from llava.model.language_model.llava_llama import LlavaConfig, LlavaLlamaForCausalLM, LlavaLlamaModel
from llava.model.language_model.llava_mistral import LlavaMistralConfig, LlavaMistralForCausalLM, LlavaMistralModel
from llava.model.llava_arch import LlavaMetaForCausalLM
from llava.model.pruning.record import USE_MODEL_CONFIG, PruningRecord

__all__ = [
    "LlavaConfig",
    "LlavaLlamaForCausalLM",
    "LlavaLlamaModel",
    "LlavaMetaForCausalLM",
    "LlavaMistralConfig",
    "LlavaMistralForCausalLM",
    "LlavaMistralModel",
    "PruningRecord",
    "USE_MODEL_CONFIG",
]
