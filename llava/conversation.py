"""Conversation templates: how a chat history becomes the prompt string a LLaVA checkpoint was trained on.

The template texts and `get_prompt` output are byte-for-byte those of LLaVA's `llava/conversation.py`
(checkpoints were trained on these exact strings; a changed space changes the token ids).
Usage::

    conv = get_conv_template("vicuna_v1")          # a fresh copy, safe to mutate
    conv.append_message(conv.roles[0], "<image>\\nWhat is this?")
    conv.append_message(conv.roles[1], None)       # None: leave the answer open
    prompt = conv.get_prompt()
"""

from __future__ import annotations

import base64
import dataclasses
from enum import Enum, auto
from io import BytesIO
from typing import Any

from llava.constants import DEFAULT_IMAGE_TOKEN


class SeparatorStyle(Enum):
    """How turns are joined (names as in LLaVA)."""

    SINGLE = auto()  # "ROLE: msg###" after every turn
    TWO = auto()  # "ROLE: msg" + sep after user turns, sep2 after assistant turns
    MPT = auto()  # ChatML: role already carries "<|im_start|>...\n"; sep closes each turn
    PLAIN = auto()  # messages only, no roles (pretraining / "plain" checkpoints)
    LLAMA_2 = auto()  # "[INST] <<SYS>>...<</SYS>> msg [/INST] answer </s>"


# A message is a string, None (an open turn), or a tuple (text, PIL image, image_process_mode) as the
# Gradio demo builds it.
Message = Any


class UnknownTemplateError(KeyError, ValueError):
    """Raised by `get_conv_template` for a name not in `conv_templates`."""

    def __str__(self) -> str:
        # KeyError would print the repr of the message; we want the plain sentence.
        return str(self.args[0])


@dataclasses.dataclass
class Conversation:
    """A chat history plus the template that renders it."""

    system: str
    roles: tuple[str, str]
    messages: list[list[Message]]
    offset: int
    sep_style: SeparatorStyle = SeparatorStyle.SINGLE
    sep: str = "###"
    sep2: str | None = None
    version: str = "Unknown"
    skip_next: bool = False

    def append_message(self, role: str, message: Message) -> None:
        self.messages.append([role, message])

    def copy(self) -> Conversation:
        """A copy with its own message list (templates hold tuples, which cannot be appended to)."""
        return dataclasses.replace(self, messages=[[role, msg] for role, msg in self.messages], skip_next=False)

    def get_prompt(self) -> str:
        messages = self._messages_with_image_turn()
        render = {
            SeparatorStyle.SINGLE: self._render_single,
            SeparatorStyle.TWO: self._render_two,
            SeparatorStyle.MPT: self._render_mpt,
            SeparatorStyle.LLAMA_2: self._render_llama_2,
            SeparatorStyle.PLAIN: self._render_plain,
        }.get(self.sep_style)
        if render is None:
            raise ValueError(f"Invalid separator style: {self.sep_style}")
        return render(messages)

    # -- prompt rendering -------------------------------------------------------------------------

    def _messages_with_image_turn(self) -> list[tuple[str, Message]]:
        """Normalise the image placement when the first message carries an image tuple.

        As in LLaVA: `<image>` is removed from the text and put back at the front as `<image>\\n`, or, for
        the `*_mmtag` templates, sent as a separate `<Image><image></Image>` turn answered by "Received.".
        Only the first message is inspected.
        """
        messages = [(role, msg) for role, msg in self.messages]
        if not messages or not isinstance(messages[0][1], tuple):
            return messages
        role, (text, *_) = messages[0]
        text = text.replace(DEFAULT_IMAGE_TOKEN, "").strip()
        if "mmtag" in self.version:
            image_turns = [(self.roles[0], f"<Image>{DEFAULT_IMAGE_TOKEN}</Image>"), (self.roles[1], "Received.")]
            return image_turns + [(role, text)] + messages[1:]
        return [(role, f"{DEFAULT_IMAGE_TOKEN}\n{text}")] + messages[1:]

    def _render_single(self, messages: list[tuple[str, Message]]) -> str:
        ret = self.system + self.sep
        for role, message in messages:
            ret += f"{role}: {_text(message)}{self.sep}" if message else f"{role}:"
        return ret

    def _render_two(self, messages: list[tuple[str, Message]]) -> str:
        seps = (self.sep, self.sep2)
        ret = self.system + seps[0]
        for i, (role, message) in enumerate(messages):
            ret += f"{role}: {_text(message)}{seps[i % 2]}" if message else f"{role}:"
        return ret

    def _render_mpt(self, messages: list[tuple[str, Message]]) -> str:
        ret = self.system + self.sep
        for role, message in messages:
            ret += f"{role}{_text(message)}{self.sep}" if message else role
        return ret

    def _render_llama_2(self, messages: list[tuple[str, Message]]) -> str:
        if messages and (not messages[0][1] or messages[0][0] != self.roles[0]):
            raise ValueError("LLAMA_2 templates need a non-empty first message from the user role")
        ret = ""
        for i, (_, message) in enumerate(messages):
            if not message:
                continue
            text = _text(message)
            if i == 0 and self.system:
                text = f"<<SYS>>\n{self.system}\n<</SYS>>\n\n{text}"
            if i % 2 == 0:
                ret += f"{self.sep}[INST] {text} [/INST]"
            else:
                ret += f" {text} {self.sep2}"
        # LLaVA strips the leading separator with `lstrip(sep)`; since the text after it is always
        # "[INST]", removing the prefix gives the same string.
        return ret.removeprefix(self.sep)

    def _render_plain(self, messages: list[tuple[str, Message]]) -> str:
        # LLaVA's plain template has sep2=None (it would fail on a filled assistant turn); treat it as "".
        seps = (self.sep, self.sep2 or "")
        ret = self.system
        for i, (_, message) in enumerate(messages):
            if message:
                ret += _text(message) + seps[i % 2]
        return ret

    # -- images -----------------------------------------------------------------------------------

    def get_images(self, return_pil: bool = False) -> list:
        """Images of the user turns (after `offset`), as PIL images or base64 PNG strings."""
        images = []
        for i, (_, msg) in enumerate(self.messages[self.offset :]):
            if i % 2 == 0 and isinstance(msg, tuple):
                _, image, mode = msg
                image = _prepare_image(image, mode)
                images.append(image if return_pil else _to_base64(image))
        return images

    def dict(self) -> dict:
        """A JSON-friendly view (images dropped), as LLaVA's web server logs it."""
        return {
            "system": self.system,
            "roles": self.roles,
            "messages": [[role, _text(msg)] for role, msg in self.messages],
            "offset": self.offset,
            "sep": self.sep,
            "sep2": self.sep2,
        }


def _text(message: Message) -> str:
    """The text of a message that may be an (text, image, mode) tuple."""
    return message[0] if isinstance(message, tuple) else message


def _prepare_image(image, mode: str, max_len: int = 1344, min_len: int = 672):
    """Apply the demo's image_process_mode, then bound the size for display (as LLaVA's web demo)."""
    # Imported here so that building prompts does not import torch / transformers.
    from llava.mm_utils import expand2square

    if mode == "Pad":
        image = expand2square(image, (122, 116, 104))
    elif mode == "Resize":
        image = image.resize((336, 336))
    elif mode not in ("Default", "Crop"):
        raise ValueError(f"Invalid image_process_mode: {mode!r} (expected Pad, Resize, Crop or Default)")
    if max(image.size) > max_len:
        aspect_ratio = max(image.size) / min(image.size)
        shortest = int(min(max_len / aspect_ratio, min_len, min(image.size)))
        longest = int(shortest * aspect_ratio)
        width, height = image.size
        image = image.resize((shortest, longest) if height > width else (longest, shortest))
    return image


def _to_base64(image, image_format: str = "PNG") -> str:
    buffered = BytesIO()
    image.save(buffered, format=image_format)
    return base64.b64encode(buffered.getvalue()).decode()


# -- templates (texts exactly as in LLaVA) ----------------------------------------------------------

_SYSTEM_HUMAN = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
_SYSTEM_USER = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
# No space between "language." and "The": LLaVA's text has none.
_SYSTEM_MMTAG = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant is able to understand the visual content that the user provides, "
    "and assist the user with a variety of tasks using natural language."
    "The visual content will be provided with the following format: <Image>visual content</Image>."
)
# Two spaces after "safe." as in LLaVA (and Meta's original Llama-2 prompt).
_SYSTEM_LLAMA_2 = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, "
    "while being safe.  Your answers should not include any harmful, unethical, racist, sexist, toxic, "
    "dangerous, or illegal content. Please ensure that your responses are socially unbiased and positive "
    "in nature.\n\n"
    "If a question does not make any sense, or is not factually coherent, explain why instead of answering "
    "something not correct. If you don't know the answer to a question, please don't share false information."
)
_SYSTEM_LLAVA_LLAMA_2 = (
    "You are a helpful language and vision assistant. "
    "You are able to understand the visual content that the user provides, "
    "and assist the user with a variety of tasks using natural language."
)
_VICUNA_V0_EXAMPLE = (
    ("Human", "What are the key differences between renewable and non-renewable energy sources?"),
    (
        "Assistant",
        "Renewable energy sources are those that can be replenished naturally in a relatively "
        "short amount of time, such as solar, wind, hydro, geothermal, and biomass. "
        "Non-renewable energy sources, on the other hand, are finite and will eventually be "
        "depleted, such as coal, oil, and natural gas. Here are some key differences between "
        "renewable and non-renewable energy sources:\n"
        "1. Availability: Renewable energy sources are virtually inexhaustible, while non-renewable "
        "energy sources are finite and will eventually run out.\n"
        "2. Environmental impact: Renewable energy sources have a much lower environmental impact "
        "than non-renewable sources, which can lead to air and water pollution, greenhouse gas emissions, "
        "and other negative effects.\n"
        "3. Cost: Renewable energy sources can be more expensive to initially set up, but they typically "
        "have lower operational costs than non-renewable sources.\n"
        "4. Reliability: Renewable energy sources are often more reliable and can be used in more remote "
        "locations than non-renewable sources.\n"
        "5. Flexibility: Renewable energy sources are often more flexible and can be adapted to different "
        "situations and needs, while non-renewable sources are more rigid and inflexible.\n"
        "6. Sustainability: Renewable energy sources are more sustainable over the long term, while "
        "non-renewable sources are not, and their depletion can lead to economic and social instability.\n",
    ),
)

conv_vicuna_v0 = Conversation(
    system=_SYSTEM_HUMAN,
    roles=("Human", "Assistant"),
    messages=_VICUNA_V0_EXAMPLE,
    offset=2,
    sep_style=SeparatorStyle.SINGLE,
    sep="###",
)

conv_vicuna_v1 = Conversation(
    system=_SYSTEM_USER,
    roles=("USER", "ASSISTANT"),
    version="v1",
    messages=(),
    offset=0,
    sep_style=SeparatorStyle.TWO,
    sep=" ",
    sep2="</s>",
)

conv_llama_2 = Conversation(
    system=_SYSTEM_LLAMA_2,
    roles=("USER", "ASSISTANT"),
    version="llama_v2",
    messages=(),
    offset=0,
    sep_style=SeparatorStyle.LLAMA_2,
    sep="<s>",
    sep2="</s>",
)

conv_llava_llama_2 = dataclasses.replace(conv_llama_2, system=_SYSTEM_LLAVA_LLAMA_2)

conv_mistral_instruct = Conversation(
    system="",
    roles=("USER", "ASSISTANT"),
    version="llama_v2",
    messages=(),
    offset=0,
    sep_style=SeparatorStyle.LLAMA_2,
    sep="",
    sep2="</s>",
)

conv_mpt = Conversation(
    system="<|im_start|>system\n"
    "A conversation between a user and an LLM-based AI assistant. The assistant gives helpful and honest answers.",
    roles=("<|im_start|>user\n", "<|im_start|>assistant\n"),
    version="mpt",
    messages=(),
    offset=0,
    sep_style=SeparatorStyle.MPT,
    sep="<|im_end|>",
)

conv_chatml_direct = dataclasses.replace(conv_mpt, system="<|im_start|>system\nAnswer the questions.")

conv_llava_plain = Conversation(
    system="",
    roles=("", ""),
    messages=(),
    offset=0,
    sep_style=SeparatorStyle.PLAIN,
    sep="\n",
)

conv_llava_v0 = Conversation(
    system=_SYSTEM_HUMAN,
    roles=("Human", "Assistant"),
    messages=(),
    offset=0,
    sep_style=SeparatorStyle.SINGLE,
    sep="###",
)

conv_llava_v0_mmtag = dataclasses.replace(conv_llava_v0, system=_SYSTEM_MMTAG, version="v0_mmtag")

conv_llava_v1 = dataclasses.replace(conv_vicuna_v1, system=_SYSTEM_HUMAN)

conv_llava_v1_mmtag = dataclasses.replace(conv_vicuna_v1, system=_SYSTEM_MMTAG, version="v1_mmtag")

default_conversation = conv_vicuna_v1

conv_templates: dict[str, Conversation] = {
    "default": conv_vicuna_v0,
    "v0": conv_vicuna_v0,
    "v1": conv_vicuna_v1,
    "vicuna_v1": conv_vicuna_v1,
    "llama_2": conv_llama_2,
    "mistral_instruct": conv_mistral_instruct,
    "chatml_direct": conv_chatml_direct,
    "mistral_direct": conv_chatml_direct,
    "plain": conv_llava_plain,
    "v0_plain": conv_llava_plain,
    "llava_v0": conv_llava_v0,
    "v0_mmtag": conv_llava_v0_mmtag,
    "llava_v1": conv_llava_v1,
    "v1_mmtag": conv_llava_v1_mmtag,
    "llava_llama_2": conv_llava_llama_2,
    "mpt": conv_mpt,
    # Not in LLaVA's table; aliases named after the template variables, for scripts that use them.
    "llava_v0_mmtag": conv_llava_v0_mmtag,
    "llava_v1_mmtag": conv_llava_v1_mmtag,
}


def get_conv_template(name: str) -> Conversation:
    """A fresh copy of the template called `name`."""
    try:
        return conv_templates[name].copy()
    except KeyError:
        valid = ", ".join(sorted(conv_templates))
        raise UnknownTemplateError(f"Unknown conversation template {name!r}; valid names: {valid}") from None


def stop_string(conv: Conversation) -> str | None:
    """LLaVA's stop string for a template: its turn separator (sep2 for two-separator templates)."""
    return conv.sep if conv.sep_style in (SeparatorStyle.SINGLE, SeparatorStyle.MPT) else conv.sep2
