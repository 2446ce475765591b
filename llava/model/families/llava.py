"""Original-layout LLaVA-1.5 / 1.6 checkpoints (`llava_llama`, `llava_mistral`; the LLaVA-1.5 releases' "llava"
with `mm_vision_tower`), and plain language models (the text-only family, e.g. a stage-0 tiny model).

Prompts are LLaVA's: a conversation template (`--conv-mode`), `tokenizer_image_token` (the text around each
`<image>` tokenized in pieces, IMAGE_TOKEN_INDEX where the image goes) and `process_images` (pad to a square,
or anyres crops). `generate` starts from the spliced embeddings, so it returns the new tokens only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.conversation import stop_string
from llava.model.families.base import (
    BenchmarkShape,
    Family,
    LoadedModel,
    ModelInputs,
    PromptError,
    check_placeholders,
    to_model,
)


class LlavaFamily(Family):
    name = "llava"
    model_types = ("llava_llama", "llava_mistral")
    generate_returns_prompt = False
    # LLaVA-1.5-7B's depth and heads at width 1024 (the 7B MLP ratio); its prompt: system prompt and `USER:`,
    # 576 image tokens, a short question and `ASSISTANT:`.
    benchmark_shape = BenchmarkShape("llava", "LLaVA-1.5-7B's layout", layers=32, heads=32, kv_heads=None,
                                     hidden_size=1024, intermediate_size=2752, prefix_tokens=35, image_tokens=576,
                                     suffix_tokens=25)

    def load(self, model_path: str, config, load_kwargs: dict, options: Mapping[str, Any]):
        from llava.model.builder import load_llava

        return load_llava(model_path, config, load_kwargs, dict(options))

    def conv_mode(self, loaded: LoadedModel, requested: str | None, model_name: str) -> str | None:
        from llava.eval.core.prompting import CHAT_TEMPLATE, choose_conv_mode

        if requested == CHAT_TEMPLATE:
            raise ValueError(f"--conv-mode {CHAT_TEMPLATE}: {loaded.model.config.model_type} checkpoints have no chat "
                             "template of their own; pass a LLaVA conversation template (e.g. vicuna_v1)")
        return choose_conv_mode(requested, loaded.model.config, model_name)

    def question_inputs(self, loaded: LoadedModel, question: str, images: Sequence[Image.Image],
                        conv_mode: str | None) -> ModelInputs:
        from llava.eval.core.prompting import build_prompt

        _check_template(loaded, conv_mode)
        mm_use_im_start_end = getattr(loaded.model.config, "mm_use_im_start_end", False)
        return self._inputs(loaded, build_prompt(question, conv_mode, len(images), mm_use_im_start_end), images)

    def chat_inputs(self, loaded: LoadedModel, messages: Sequence[Mapping[str, str]], images: Sequence[Image.Image],
                    conv_mode: str | None) -> tuple[ModelInputs, str | None]:
        from llava.eval.core.prompting import conversation_prompt, insert_image_tokens

        # `<image>` in a user turn becomes the image tokens the checkpoint was trained with (`mm_use_im_start_end`).
        mm_use_im_start_end = getattr(loaded.model.config, "mm_use_im_start_end", False)
        messages = [{**m, "content": insert_image_tokens(m["content"], m["content"].count(DEFAULT_IMAGE_TOKEN),
                                                         mm_use_im_start_end)} for m in messages]
        _check_template(loaded, conv_mode)
        prompt, conv = conversation_prompt(messages, conv_mode)
        return self.prompt_inputs(loaded, prompt, images), stop_string(conv)

    def prompt_inputs(self, loaded: LoadedModel, prompt: str, images: Sequence[Image.Image]) -> ModelInputs:
        check_placeholders(prompt, images)
        return self._inputs(loaded, prompt, images)

    def _inputs(self, loaded: LoadedModel, prompt: str, images: Sequence[Image.Image]) -> ModelInputs:
        from llava.mm_utils import process_images, tokenizer_image_token

        input_ids = tokenizer_image_token(prompt, loaded.tokenizer, return_tensors="pt")
        if not images:
            return ModelInputs(input_ids, sequence_length=int(input_ids.numel()), text=prompt)
        model = loaded.model
        if not hasattr(model, "spliced_length"):
            raise PromptError(f"{type(model).__name__} is a language model without a vision tower: it cannot take "
                              "images")
        pixels = process_images(list(images), loaded.processor, model.config)
        sizes = [image.size for image in images]
        return ModelInputs(input_ids, image_inputs={"pixels": pixels, "image_sizes": sizes}, image_sizes=sizes,
                           sequence_length=model.spliced_length(input_ids, pixels, sizes),
                           image_tokens=model.image_token_counts(pixels, sizes), text=prompt)

    def merge_image_inputs(self, loaded: LoadedModel, batch: Sequence[ModelInputs]) -> dict[str, Any]:
        """LLaVA's `images` (one tensor when every image has one crop of one shape, else a list: anyres crops)
        and `image_sizes`, in prompt order."""
        images, sizes = [], []
        for item in batch:
            if item.image_inputs:
                images += list(item.image_inputs["pixels"])
                sizes += list(item.image_inputs["image_sizes"])
        if all(img.ndim == 3 and img.shape == images[0].shape for img in images):
            images = torch.stack(images)
        return {"images": to_model(images, loaded.model), "image_sizes": sizes}

    def image_grids(self, loaded: LoadedModel, inputs: ModelInputs) -> list[list[int]]:
        if not inputs.image_sizes:
            return []
        side = loaded.model.get_vision_tower().num_patches_per_side
        return [[side, side]] * len(inputs.image_sizes)

    def benchmark_model(self, args):
        from llava.model import LlavaConfig, LlavaLlamaForCausalLM

        config = LlavaConfig(vocab_size=32000, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
                             num_hidden_layers=args.layers, num_attention_heads=args.heads,
                             num_key_value_heads=getattr(args, "kv_heads", None) or args.heads, max_position_embeddings=4096,
                             rms_norm_eps=1e-5, attn_implementation=args.attn_implementation)
        return LlavaLlamaForCausalLM(config)

    def describe_images(self, loaded: LoadedModel) -> dict[str, Any]:
        tower = loaded.model.get_vision_tower()
        return {"image_tokens": tower.num_patches, "patch_grid": [tower.num_patches_per_side] * 2,
                "image_aspect_ratio": getattr(loaded.model.config, "image_aspect_ratio", None)}


def _check_template(loaded: LoadedModel, conv_mode: str | None) -> None:
    from llava.eval.core.prompting import CHAT_TEMPLATE

    if conv_mode is None or conv_mode == CHAT_TEMPLATE:
        raise PromptError(f"{loaded.model.config.model_type} checkpoints have no chat template of their own: they are "
                          "prompted in a LLaVA conversation template (--conv-mode, e.g. vicuna_v1)")


class TextOnlyFamily(LlavaFamily):
    """A plain language model (any model_type no family claims): LLaVA's templates, text only, no pruning;
    its `generate` returns the prompt too."""

    name = "text"
    model_types = ()
    generate_returns_prompt = True
    before_llm_methods = False
    prunes = False
    benchmark_shape = None

    def describe_images(self, loaded: LoadedModel) -> dict[str, Any]:
        return {"image_tokens": 0, "patch_grid": None, "image_aspect_ratio": None}
