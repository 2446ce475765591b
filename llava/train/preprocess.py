"""Conversations -> token ids and labels, with only the assistant's tokens carrying labels (by default).

LLaVA computed the label spans with per-template length arithmetic (`- 2`, `legacy` corrections) that
silently breaks when a tokenizer changes. Here each assistant answer's span is measured by tokenizing the
prompt up to the answer and up to the end of the answer (the template's own rendering of the partial
conversation), and the result is checked against the full tokenization: a mismatch is reported and the
sample masked out, never trained on misaligned labels.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch

from llava.constants import (
    DEFAULT_IM_END_TOKEN,
    DEFAULT_IM_START_TOKEN,
    DEFAULT_IMAGE_TOKEN,
    IGNORE_INDEX,
    IMAGE_TOKEN_INDEX,
)
from llava.conversation import Conversation, SeparatorStyle, get_conv_template
from llava.mm_utils import tokenizer_image_token

logger = logging.getLogger(__name__)

ROLE_OF_SPEAKER = {"human": 0, "gpt": 1}


def move_image_token_first(conversations: Sequence[dict], mm_use_im_start_end: bool = False) -> list[dict]:
    """LLaVA's `preprocess_multimodal`: the first turn's `<image>` goes to the front, followed by a newline."""
    result = []
    for turn in conversations:
        value = turn["value"]
        if DEFAULT_IMAGE_TOKEN in value:
            value = DEFAULT_IMAGE_TOKEN + "\n" + value.replace(DEFAULT_IMAGE_TOKEN, "").strip()
            if mm_use_im_start_end:
                value = value.replace(DEFAULT_IMAGE_TOKEN, DEFAULT_IM_START_TOKEN + DEFAULT_IMAGE_TOKEN + DEFAULT_IM_END_TOKEN)
        result.append({**turn, "value": value})
    return result


def _token_ids(text: str, tokenizer, has_image: bool) -> list[int]:
    if has_image:
        return tokenizer_image_token(text, tokenizer)
    return tokenizer(text).input_ids


def _render(template: Conversation, turns: Sequence[tuple[int, str | None]]) -> str:
    conv = template.copy()
    conv.messages = []
    for role_index, text in turns:
        conv.append_message(conv.roles[role_index], text)
    return conv.get_prompt()


def _turns(conversations: Sequence[dict]) -> list[tuple[int, str]]:
    # LLaVA dropped a leading assistant turn; `llava.train.data_checks` refuses such a sample instead.
    turns = [(ROLE_OF_SPEAKER[t["from"]], t["value"]) for t in conversations]
    for i, (role, _) in enumerate(turns):
        if role != i % 2:
            raise ValueError(f"turn {i} is from {'gpt' if role else 'human'}: turns must alternate human/gpt")
    return turns


def tokenize_conversation(
    conversations: Sequence[dict],
    tokenizer,
    template_name: str,
    has_image: bool,
    max_length: int | None = None,
    train_on_prompt: bool = False,
) -> dict[str, torch.Tensor]:
    """`{"input_ids", "labels"}` (1-D LongTensors) for one sample in LLaVA's conversation format.

    `plain` (stage-1 pretraining) is `<image>` + caption + "\\n" with only the caption labelled, as in LLaVA.
    train_on_prompt: every text token carries a label (system prompt and user turns too; the image never),
    as in language-model pretraining. A model trained from scratch learns to look things up in its context
    far sooner this way: predicting a question's words rewards copying them from the context.
    """
    template = get_conv_template(template_name)
    if template.sep_style == SeparatorStyle.PLAIN:
        return _tokenize_plain(conversations, tokenizer, template, has_image, max_length)
    turns = _turns(conversations)
    prompt = _render(template, turns)
    input_ids = _token_ids(prompt, tokenizer, has_image)
    labels = [IGNORE_INDEX] * len(input_ids)
    aligned = True
    for i, (role, _) in enumerate(turns):
        if role != 1:
            continue
        before = _token_ids(_render(template, turns[:i] + [(1, None)]), tokenizer, has_image)
        through = _token_ids(_render(template, turns[: i + 1]), tokenizer, has_image)
        if through != input_ids[: len(through)] or before != input_ids[: len(before)]:
            aligned = False
            break
        labels[len(before) : len(through)] = input_ids[len(before) : len(through)]
    if aligned and train_on_prompt:
        labels = [IGNORE_INDEX if t == IMAGE_TOKEN_INDEX else t for t in input_ids]
    if not aligned:
        logger.warning("tokenization mismatch in a %s conversation: sample ignored (%r...)", template_name, prompt[:80])
        labels = [IGNORE_INDEX] * len(input_ids)
    return _pack(input_ids, labels, max_length)


def _tokenize_plain(conversations, tokenizer, template, has_image, max_length):
    if len(conversations) < 2:
        raise ValueError("a plain (pretraining) sample needs a human turn with <image> and a gpt caption")
    prompt = DEFAULT_IMAGE_TOKEN + conversations[1]["value"] + template.sep
    input_ids = _token_ids(prompt, tokenizer, has_image=True)
    masked = len(_token_ids(DEFAULT_IMAGE_TOKEN, tokenizer, has_image=True))
    labels = [IGNORE_INDEX] * masked + input_ids[masked:]
    return _pack(input_ids, labels, max_length)


def _pack(input_ids: list[int], labels: list[int], max_length: int | None) -> dict[str, torch.Tensor]:
    if max_length is not None:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return {"input_ids": torch.tensor(input_ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long)}
