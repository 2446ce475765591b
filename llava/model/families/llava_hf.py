"""llava-hf checkpoints: `LlavaForConditionalGeneration` (llava-hf/llava-1.5-7b-hf) and
`LlavaNextForConditionalGeneration` (llava-hf/llava-v1.6-*-hf), in the hub layout (`vision_config` /
`text_config`, `image_token_index`, the processor's expanded `<image>` tokens).

`--conv-mode chat_template` prompts them the processor's way instead (lmms-eval's `llava_hf` protocol): the
checkpoint's chat template (no system prompt), the prompt tokenized in one piece, images resized and
centre-cropped by its image processor.

Prompts follow LLaVA's protocol, as the eval workers run original checkpoints (`--conv-mode`): the conversation
template, the text around each `<image>` tokenized in pieces, each placeholder expanded to the image's tokens,
pixels padded to a square (1.5) or anyres crops (1.6) as LLaVA's `process_images` makes them. So the same weights
in the original and in the llava-hf layout keep the same tokens and give the same greedy answer
(`llava.model.llava_hf_inputs`). The budget is the original's: `max_num_trunction` on 1.5,
`retain_token_num_for_llava_next` on 1.6.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from llava.conversation import stop_string
from llava.model.families.base import (
    Family,
    LoadedModel,
    ModelInputs,
    chat_template_content,
    check_placeholders,
    to_model,
    user_turn,
)


class LlavaHFFamily(Family):
    name = "llava_hf"
    model_types = ("llava", "llava_next")
    refused_methods = {"cdpruner": "a llava-hf checkpoint holds the CLIP vision model alone: no CLIP text half to "
                                   "embed the instruction with"}

    def accepts(self, config) -> bool:
        # The original LLaVA-1.5 releases also say "llava"; they carry `mm_vision_tower`, not `vision_config`.
        return super().accepts(config) and getattr(config, "vision_config", None) is not None

    def load(self, model_path: str, config, load_kwargs: dict, options: Mapping[str, Any]):
        from llava.model.language_model.llava_hf import load_llava_hf

        return load_llava_hf(model_path, config, load_kwargs)

    def conv_mode(self, loaded: LoadedModel, requested: str | None, model_name: str) -> str | None:
        """The one asked for; else the template the llava-hf chat template writes: "USER: ... ASSISTANT:"
        (vicuna_v1), [INST] for the Mistral-based 1.6, ChatML for the 34B."""
        from llava.eval.core.prompting import choose_conv_mode

        if requested:
            return choose_conv_mode(requested, loaded.model.config, model_name)
        text_type = loaded.model.config.get_text_config().model_type
        return "mistral_instruct" if text_type == "mistral" else "chatml_direct" if "34b" in model_name.lower() \
            else "vicuna_v1"

    def question_inputs(self, loaded: LoadedModel, question: str, images: Sequence[Image.Image],
                        conv_mode: str | None) -> ModelInputs:
        from llava.eval.core.prompting import CHAT_TEMPLATE, build_prompt

        if conv_mode == CHAT_TEMPLATE:
            return processor_inputs(loaded, user_turn(question, len(images)), images)
        return self.prompt_inputs(loaded, build_prompt(question, conv_mode or "vicuna_v1", len(images)), images)

    def chat_inputs(self, loaded: LoadedModel, messages: Sequence[Mapping[str, str]], images: Sequence[Image.Image],
                    conv_mode: str | None) -> tuple[ModelInputs, str | None]:
        from llava.eval.core.prompting import CHAT_TEMPLATE, conversation_prompt

        if conv_mode == CHAT_TEMPLATE:  # the answer ends at the end-of-sequence token the template trains
            return processor_inputs(loaded, chat_template_content(messages), images), None
        prompt, conv = conversation_prompt(messages, conv_mode or "vicuna_v1")
        return self.prompt_inputs(loaded, prompt, images), stop_string(conv)

    def prompt_inputs(self, loaded: LoadedModel, prompt: str, images: Sequence[Image.Image]) -> ModelInputs:
        from llava.model.llava_hf_inputs import image_token_count, llava_protocol_inputs

        check_placeholders(prompt, images)
        config = loaded.model.config
        encoded = llava_protocol_inputs(prompt, images, loaded.tokenizer, loaded.processor.image_processor, config)
        input_ids = encoded.pop("input_ids")
        return ModelInputs(input_ids, image_inputs=encoded, image_sizes=[image.size for image in images],
                           sequence_length=int(input_ids.numel()),
                           image_tokens=[image_token_count(config, image.size) for image in images], text=prompt)

    def merge_image_inputs(self, loaded: LoadedModel, batch: Sequence[ModelInputs]) -> dict[str, Any]:
        from llava.model.llava_hf_inputs import batched_images

        merged = batched_images([item.image_inputs for item in batch])
        return {key: to_model(value, loaded.model) for key, value in merged.items()}

    def image_grids(self, loaded: LoadedModel, inputs: ModelInputs) -> list[list[int]]:
        from llava.model.llava_hf_inputs import patches_per_side

        return [[patches_per_side(loaded.model.config)] * 2] * len(inputs.image_sizes)

    def describe_images(self, loaded: LoadedModel) -> dict[str, Any]:
        from llava.model.llava_hf_inputs import is_llava_next, patches_per_side

        side = patches_per_side(loaded.model.config)
        return {"image_tokens": side * side, "patch_grid": [side, side],
                "image_aspect_ratio": "anyres" if is_llava_next(loaded.model.config) else "pad"}


def processor_inputs(loaded: LoadedModel, messages: list[dict], images: Sequence[Image.Image]) -> ModelInputs:
    """A chat-template conversation (its `{"type": "image"}` entries take `images` in order) through the
    checkpoint's own chat template and processor."""
    from llava.model.llava_hf_inputs import image_token_count

    processor = loaded.processor
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    encoded = processor(text=[text], images=list(images) or None, return_tensors="pt")
    input_ids = encoded["input_ids"][0]
    image_inputs = {key: encoded[key] for key in ("pixel_values", "image_sizes") if key in encoded}
    return ModelInputs(input_ids, image_inputs=image_inputs, image_sizes=[image.size for image in images],
                       sequence_length=int(input_ids.numel()),
                       image_tokens=[image_token_count(loaded.model.config, image.size) for image in images], text=text)
