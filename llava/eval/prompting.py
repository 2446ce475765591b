"""Prompt building shared by the CLI, the eval workers and the demo."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from llava.constants import DEFAULT_IM_END_TOKEN, DEFAULT_IM_START_TOKEN, DEFAULT_IMAGE_TOKEN, IMAGE_PLACEHOLDER
from llava.conversation import Conversation, get_conv_template


def infer_conv_mode(model_name: str) -> str:
    """LLaVA's rule for picking a template from the checkpoint name, used only when --conv-mode is not given."""
    name = model_name.lower()
    if "llama-2" in name:
        return "llava_llama_2"
    if "mistral" in name:
        return "mistral_instruct"
    if "v1.6-34b" in name:
        return "chatml_direct"
    if "v1" in name:
        return "llava_v1"
    if "mpt" in name:
        return "mpt"
    return "llava_v0"


def image_token(mm_use_im_start_end: bool) -> str:
    return DEFAULT_IM_START_TOKEN + DEFAULT_IMAGE_TOKEN + DEFAULT_IM_END_TOKEN if mm_use_im_start_end else DEFAULT_IMAGE_TOKEN


def insert_image_tokens(question: str, num_images: int, mm_use_im_start_end: bool) -> str:
    """Put the image token where the question says `<image-placeholder>`, else one per image in front (LLaVA)."""
    token = image_token(mm_use_im_start_end)
    if num_images == 0:
        return question
    if IMAGE_PLACEHOLDER in question:
        return re.sub(re.escape(IMAGE_PLACEHOLDER), token, question)
    if DEFAULT_IMAGE_TOKEN in question:
        return question.replace(DEFAULT_IMAGE_TOKEN, token) if mm_use_im_start_end else question
    return (token + "\n") * num_images + question


def build_prompt(question: str, conv_mode: str, num_images: int = 1, mm_use_im_start_end: bool = False) -> str:
    """One user turn and an open assistant turn in the given template."""
    conv = get_conv_template(conv_mode)
    conv.append_message(conv.roles[0], insert_image_tokens(question, num_images, mm_use_im_start_end))
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


def conversation_prompt(messages: Sequence[Mapping[str, str]], conv_mode: str) -> tuple[str, Conversation]:
    """A {role, content} conversation (ending with the user's turn) in a LLaVA template: the prompt with an open
    assistant turn, and the filled template (for its stop string). A "system" message replaces the template's
    system prompt; `<image>` placeholders stay where the messages put them."""
    conv = get_conv_template(conv_mode)
    roles = {"user": conv.roles[0], "assistant": conv.roles[1]}
    for message in messages:
        if message["role"] == "system":
            conv.system = message["content"]
        else:
            conv.append_message(roles[message["role"]], message["content"])
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt(), conv
