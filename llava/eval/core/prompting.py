"""Prompt building shared by the CLI, the eval workers and the demo."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llava.constants import (
    DEFAULT_IM_END_TOKEN,
    DEFAULT_IM_START_TOKEN,
    DEFAULT_IMAGE_TOKEN,
    DEFAULT_MODEL_PATH,
    IMAGE_PLACEHOLDER,
)
from llava.conversation import Conversation, get_conv_template
from llava.eval.core.prompt_texts import OPTION_PROMPT, SHORT_ANSWER_PROMPT

logger = logging.getLogger(__name__)


def infer_conv_mode(model_name: str) -> str:
    """LLaVA's rule for picking a template from the checkpoint name, for checkpoints that record none."""
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


# Language-model families with one instruction format, whatever the checkpoint's name says. LLaVA's own rule
# reads "mistral" in the name; a renamed or local copy of llava-v1.6-mistral-7b still has its model_type.
FAMILY_CONV_MODES = {"llava_mistral": "mistral_instruct"}


# `--conv-mode chat_template`: the checkpoint's own chat template and processor, for the families that have one
# (llava-hf: lmms-eval's `llava_hf` protocol; Qwen always uses its chat template).
CHAT_TEMPLATE = "chat_template"


def check_conv_mode(name: str | None) -> None:
    """Fail early, listing the valid names, for a conversation template that does not exist."""
    if name and name != CHAT_TEMPLATE:
        get_conv_template(name)


def choose_conv_mode(requested: str | None, model_config: Any, model_name: str) -> str:
    """The conversation template to prompt a LLaVA checkpoint with, logged with where it came from: the
    one asked for, else the one training recorded in config.json (`conv_template`, written by our train.py),
    else the one of the checkpoint's language-model family (`FAMILY_CONV_MODES`), else LLaVA's guess from
    the checkpoint's name (released checkpoints record none)."""
    recorded = getattr(model_config, "conv_template", None)
    if requested == CHAT_TEMPLATE:
        return requested
    if requested:
        get_conv_template(requested)  # an unknown name fails here, listing the valid ones
        if recorded and recorded != requested:
            logger.warning("conversation template %s (--conv-mode); the checkpoint was trained with %s", requested, recorded)
        else:
            logger.info("conversation template %s (--conv-mode)", requested)
        return requested
    if recorded:
        get_conv_template(recorded)
        logger.info("conversation template %s (recorded in the checkpoint's config.json)", recorded)
        return recorded
    model_type = getattr(model_config, "model_type", None)
    if model_type in FAMILY_CONV_MODES:
        family = FAMILY_CONV_MODES[model_type]
        logger.info("conversation template %s (the %s family's; pass --conv-mode to choose)", family, model_type)
        return family
    guessed = infer_conv_mode(model_name)
    logger.info("conversation template %s (guessed from the name %r; the checkpoint records none, "
                "pass --conv-mode to choose)", guessed, model_name)
    return guessed


# The answer-form instructions of LLaVA-1.5's short-answer prompts, the only prompts the embedded default saw.
ANSWER_INSTRUCTIONS = (SHORT_ANSWER_PROMPT, OPTION_PROMPT, "Please answer yes or no.")
EMBEDDED_DEFAULT_NOTICE = (f"the embedded default answers short questions about generated scenes; '{SHORT_ANSWER_PROMPT}' "
                           f"is added to questions without an answer instruction (its card: {DEFAULT_MODEL_PATH}/README.md)")


def is_embedded_default(model_path: str | None) -> bool:
    return model_path is not None and Path(model_path).expanduser().resolve() == Path(DEFAULT_MODEL_PATH).resolve()


def with_answer_instruction(question: str) -> str:
    """`question` ending in one of the short-answer instructions: as is when it has one, else with LLaVA-1.5's
    short-answer line added. For the embedded default, which was trained on no other prompt form and
    rambles into a made-up next turn without one."""
    if question.rstrip().endswith(ANSWER_INSTRUCTIONS):
        return question
    return f"{question.rstrip()}\n{SHORT_ANSWER_PROMPT}"


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
