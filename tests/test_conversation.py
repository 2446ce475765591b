"""Prompt strings must equal LLaVA's byte for byte: the expected values are written out literally."""

import pytest
from PIL import Image

from llava import conversation
from llava.conversation import (
    Conversation,
    SeparatorStyle,
    UnknownTemplateError,
    conv_templates,
    get_conv_template,
)

QUESTION = "<image>\nWhat is this?"

SYSTEM_HUMAN = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
SYSTEM_USER = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
SYSTEM_MMTAG = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant is able to "
    "understand the visual content that the user provides, and assist the user with a variety of tasks using "
    "natural language.The visual content will be provided with the following format: <Image>visual content</Image>."
)
SYSTEM_LLAMA_2 = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being "
    "safe.  Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal "
    "content. Please ensure that your responses are socially unbiased and positive in nature.\n\nIf a question "
    "does not make any sense, or is not factually coherent, explain why instead of answering something not "
    "correct. If you don't know the answer to a question, please don't share false information."
)
SYSTEM_LLAVA_LLAMA_2 = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language."
)
VICUNA_V0_ANSWER = (
    "Renewable energy sources are those that can be replenished naturally in a relatively short amount of time, "
    "such as solar, wind, hydro, geothermal, and biomass. Non-renewable energy sources, on the other hand, are "
    "finite and will eventually be depleted, such as coal, oil, and natural gas. Here are some key differences "
    "between renewable and non-renewable energy sources:\n"
    "1. Availability: Renewable energy sources are virtually inexhaustible, while non-renewable energy sources "
    "are finite and will eventually run out.\n"
    "2. Environmental impact: Renewable energy sources have a much lower environmental impact than non-renewable "
    "sources, which can lead to air and water pollution, greenhouse gas emissions, and other negative effects.\n"
    "3. Cost: Renewable energy sources can be more expensive to initially set up, but they typically have lower "
    "operational costs than non-renewable sources.\n"
    "4. Reliability: Renewable energy sources are often more reliable and can be used in more remote locations "
    "than non-renewable sources.\n"
    "5. Flexibility: Renewable energy sources are often more flexible and can be adapted to different situations "
    "and needs, while non-renewable sources are more rigid and inflexible.\n"
    "6. Sustainability: Renewable energy sources are more sustainable over the long term, while non-renewable "
    "sources are not, and their depletion can lead to economic and social instability.\n"
)

# One user turn with the image, the answer left open: what the eval workers build.
SINGLE_TURN = {
    "vicuna_v1": SYSTEM_USER + " USER: <image>\nWhat is this? ASSISTANT:",
    "v1": SYSTEM_USER + " USER: <image>\nWhat is this? ASSISTANT:",
    "llava_v1": SYSTEM_HUMAN + " USER: <image>\nWhat is this? ASSISTANT:",
    "v1_mmtag": SYSTEM_MMTAG + " USER: <image>\nWhat is this? ASSISTANT:",
    "llava_v1_mmtag": SYSTEM_MMTAG + " USER: <image>\nWhat is this? ASSISTANT:",
    "llava_v0": SYSTEM_HUMAN + "###Human: <image>\nWhat is this?###Assistant:",
    "v0_mmtag": SYSTEM_MMTAG + "###Human: <image>\nWhat is this?###Assistant:",
    "llava_v0_mmtag": SYSTEM_MMTAG + "###Human: <image>\nWhat is this?###Assistant:",
    "default": SYSTEM_HUMAN
    + "###Human: What are the key differences between renewable and non-renewable energy sources?###Assistant: "
    + VICUNA_V0_ANSWER
    + "###Human: <image>\nWhat is this?###Assistant:",
    "v0": SYSTEM_HUMAN
    + "###Human: What are the key differences between renewable and non-renewable energy sources?###Assistant: "
    + VICUNA_V0_ANSWER
    + "###Human: <image>\nWhat is this?###Assistant:",
    "llama_2": "[INST] <<SYS>>\n" + SYSTEM_LLAMA_2 + "\n<</SYS>>\n\n<image>\nWhat is this? [/INST]",
    "llava_llama_2": "[INST] <<SYS>>\n" + SYSTEM_LLAVA_LLAMA_2 + "\n<</SYS>>\n\n<image>\nWhat is this? [/INST]",
    "mistral_instruct": "[INST] <image>\nWhat is this? [/INST]",
    "chatml_direct": "<|im_start|>system\nAnswer the questions.<|im_end|>"
    "<|im_start|>user\n<image>\nWhat is this?<|im_end|><|im_start|>assistant\n",
    "mistral_direct": "<|im_start|>system\nAnswer the questions.<|im_end|>"
    "<|im_start|>user\n<image>\nWhat is this?<|im_end|><|im_start|>assistant\n",
    "mpt": "<|im_start|>system\nA conversation between a user and an LLM-based AI assistant. The assistant gives "
    "helpful and honest answers.<|im_end|><|im_start|>user\n<image>\nWhat is this?<|im_end|><|im_start|>assistant\n",
    "plain": "<image>\nWhat is this?\n",
    "v0_plain": "<image>\nWhat is this?\n",
}


def _single_turn(name, question=QUESTION):
    conv = get_conv_template(name)
    conv.append_message(conv.roles[0], question)
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


@pytest.mark.parametrize("name", sorted(SINGLE_TURN))
def test_single_turn_prompt(name):
    assert _single_turn(name) == SINGLE_TURN[name]


def test_every_template_is_covered():
    assert set(SINGLE_TURN) == set(conv_templates)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("vicuna_v1", SYSTEM_USER + " USER: Hi ASSISTANT: Hello.</s>USER: Why? ASSISTANT:"),
        ("llava_v0", SYSTEM_HUMAN + "###Human: Hi###Assistant: Hello.###Human: Why?###Assistant:"),
        (
            "llava_llama_2",
            "[INST] <<SYS>>\n" + SYSTEM_LLAVA_LLAMA_2 + "\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Why? [/INST]",
        ),
        ("mistral_instruct", "[INST] Hi [/INST] Hello. </s>[INST] Why? [/INST]"),
        (
            "chatml_direct",
            "<|im_start|>system\nAnswer the questions.<|im_end|><|im_start|>user\nHi<|im_end|>"
            "<|im_start|>assistant\nHello.<|im_end|><|im_start|>user\nWhy?<|im_end|><|im_start|>assistant\n",
        ),
    ],
)
def test_multi_turn_prompt(name, expected):
    conv = get_conv_template(name)
    for role, message in zip(conv.roles * 2, ["Hi", "Hello.", "Why?", None]):
        conv.append_message(role, message)
    assert conv.get_prompt() == expected


def test_plain_with_answer_joins_with_newline():
    conv = get_conv_template("plain")
    conv.append_message(conv.roles[0], QUESTION)
    conv.append_message(conv.roles[1], "A cat.")
    # sep2 is None in LLaVA's plain template: the answer is followed by nothing.
    assert conv.get_prompt() == "<image>\nWhat is this?\nA cat."


IMAGE_TURN = ("What is this?\n<image>", Image.new("RGB", (8, 8)), "Default")


@pytest.mark.parametrize(
    "name, expected",
    [
        # <image> is moved to the front as "<image>\n".
        ("vicuna_v1", SYSTEM_USER + " USER: <image>\nWhat is this? ASSISTANT:"),
        ("llava_llama_2", "[INST] <<SYS>>\n" + SYSTEM_LLAVA_LLAMA_2 + "\n<</SYS>>\n\n<image>\nWhat is this? [/INST]"),
        # mmtag templates send the image as its own turn, acknowledged by "Received.".
        (
            "v1_mmtag",
            SYSTEM_MMTAG + " USER: <Image><image></Image> ASSISTANT: Received.</s>USER: What is this? ASSISTANT:",
        ),
        (
            "v0_mmtag",
            SYSTEM_MMTAG
            + "###Human: <Image><image></Image>###Assistant: Received.###Human: What is this?###Assistant:",
        ),
    ],
)
def test_image_tuple_message(name, expected):
    conv = get_conv_template(name)
    conv.append_message(conv.roles[0], IMAGE_TURN)
    conv.append_message(conv.roles[1], None)
    assert conv.get_prompt() == expected
    assert conv.messages[0][1] is IMAGE_TURN  # get_prompt does not rewrite the history


def test_copy_is_independent_of_template():
    conv = get_conv_template("v1")
    conv.append_message("USER", "hi")
    assert conv_templates["v1"].messages == ()
    assert get_conv_template("v1").messages == []
    assert conv.copy().messages == conv.messages and conv.copy().messages is not conv.messages


def test_default_conversation_is_vicuna_v1():
    assert conversation.default_conversation is conversation.conv_vicuna_v1


def test_unknown_template_lists_valid_names():
    with pytest.raises(UnknownTemplateError, match="valid names: .*vicuna_v1") as info:
        get_conv_template("vicuna_v9")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert "'vicuna_v9'" in str(info.value)


def test_llama_2_rejects_assistant_first():
    conv = get_conv_template("llama_2")
    conv.append_message(conv.roles[1], "Hello.")
    with pytest.raises(ValueError, match="first message"):
        conv.get_prompt()


def test_invalid_style_raises():
    conv = Conversation(system="", roles=("a", "b"), messages=[], offset=0, sep_style="nope")
    with pytest.raises(ValueError, match="Invalid separator style"):
        conv.get_prompt()


def test_get_images_pads_and_keeps_small_images():
    conv = get_conv_template("v1")
    conv.append_message(conv.roles[0], ("<image>\nq", Image.new("RGB", (20, 10), (255, 0, 0)), "Pad"))
    conv.append_message(conv.roles[1], None)
    (image,) = conv.get_images(return_pil=True)
    assert image.size == (20, 20)
    assert image.getpixel((0, 0)) == (122, 116, 104)
    assert isinstance(conv.get_images()[0], str)  # base64 PNG


def test_get_images_bounds_large_images():
    conv = get_conv_template("v1")
    conv.append_message(conv.roles[0], ("q", Image.new("RGB", (3000, 1000)), "Default"))
    (image,) = conv.get_images(return_pil=True)
    assert image.size == (1344, 448)


def test_separator_style_names():
    assert {s.name for s in SeparatorStyle} == {"SINGLE", "TWO", "MPT", "PLAIN", "LLAMA_2"}
