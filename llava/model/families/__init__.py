"""Model families as plug-ins: one module per family, a registry keyed by `config.model_type`.

    loaded = load_model("liuhaotian/llava-v1.5-7b", device="cpu")      # or any registered family's checkpoint
    inputs = loaded.question_inputs("What is shown?", [image], conv_mode="llava_v1")
    output = loaded.model.generate(**loaded.generate_inputs([inputs]), max_new_tokens=32)

Every consumer (eval workers, serving, CLI, run_llava, lmms-eval, sweep) asks this registry; none names a family.
A family is a `Family` subclass in its own module, registered below (or by `register` from anywhere, e.g. a
test); docs/Families.md says how to add one.
"""

from __future__ import annotations

from llava.model.families.base import (
    BenchmarkShape,
    Family,
    LoadedModel,
    ModelInputs,
    PromptError,
    Video,
    left_pad_rows,
    to_model,
)
from llava.model.families.llava import LlavaFamily, TextOnlyFamily
from llava.model.families.llava_hf import LlavaHFFamily
from llava.model.families.llava_onevision import LlavaOnevisionFamily
from llava.model.families.qwen3_vl import Qwen3VLFamily
from llava.model.families.qwen_vl import QwenVLFamily
from llava.model.families.registry import (
    families,
    family_for,
    family_of,
    register,
    unregister,
)

register(LlavaFamily())
register(QwenVLFamily())
register(Qwen3VLFamily())
register(LlavaHFFamily())
register(LlavaOnevisionFamily())
register(TextOnlyFamily(), fallback=True)


def loaded_model(tokenizer, model, processor, context_len: int) -> LoadedModel:
    """What `load_pretrained_model` returned, with the model's family."""
    return LoadedModel(family_of(model), tokenizer, model, processor, context_len)


def load_model(model_path: str, model_base: str | None = None, **kwargs) -> LoadedModel:
    """`llava.model.builder.load_pretrained_model` (same arguments), as a `LoadedModel`."""
    from llava.model.builder import load_pretrained_model

    return loaded_model(*load_pretrained_model(model_path, model_base, **kwargs))


__all__ = [
    "BenchmarkShape", "Family", "LoadedModel", "ModelInputs", "PromptError", "Video", "families", "family_for", "family_of",
    "left_pad_rows", "load_model", "loaded_model", "register", "to_model", "unregister",
]
