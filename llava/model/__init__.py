"""LLaVA model classes; importing this package registers `llava_llama` with the transformers Auto classes."""

from llava.model.language_model.llava_llama import LlavaConfig, LlavaLlamaForCausalLM, LlavaLlamaModel
from llava.model.pruning.record import USE_MODEL_CONFIG, PruningRecord

__all__ = ["LlavaConfig", "LlavaLlamaForCausalLM", "LlavaLlamaModel", "PruningRecord", "USE_MODEL_CONFIG"]
