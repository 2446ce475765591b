"""What a model family is, and the one type every consumer gets a prompt in.

A `Family` knows how a checkpoint of its `model_types` loads, how a question or a conversation with images
becomes `ModelInputs` (through LLaVA's conversation templates or the model's own chat template), how prompts
are batched into one `generate` call, what an image's token grid is, and the family's pruning budget rule.
Consumers hold a `LoadedModel` (what `llava.model.families.load_model` returns) and never name a family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from PIL import Image

from llava.constants import DEFAULT_IMAGE_TOKEN


class PromptError(ValueError):
    """A prompt / image combination the model cannot take (the caller's fault: a 4xx in the worker)."""


@dataclasses.dataclass
class Video:
    """A video as the model families take it: its sampled frames (RGB, in order) and when each was shown.

    frames: the sampled frames.
    timestamps: each frame's time in the video, in seconds.
    fps: the rate the frames were sampled at (frames per second of video time), as the processors that place
        frames in time (Qwen's temporal positions, Qwen3-VL's timestamps) read it.
    source: where it came from (a path, or a description), for messages.
    """

    frames: list[Image.Image]
    timestamps: list[float]
    fps: float
    source: str = "frames"


@dataclasses.dataclass
class ModelInputs:
    """One prompt, ready for the model.

    input_ids: (L,) as the family's model takes them (LLaVA: IMAGE_TOKEN_INDEX placeholders; the others: their
        image tokens, already expanded).
    token_inputs: other (L,) tensors aligned with `input_ids` (Qwen: `mm_token_type_ids`); padded with them.
    image_inputs: this prompt's image arguments to the model (pixel values, grids, sizes), merged over a batch
        by the family.
    image_sizes: (width, height) of each image as given.
    sequence_length: the tokens the language model sees (the images spliced in, before any pruning).
    image_tokens: of those, how many are image tokens, per image.
    text: the prompt as text, template applied (for --debug and logs).
    instruction: the user's question or last message, without image placeholders, for the methods that prune
        the images for it (CDPruner); None when only a templated prompt was given.
    """

    input_ids: torch.Tensor
    token_inputs: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    image_inputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    image_sizes: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    sequence_length: int = 0
    image_tokens: list[int] = dataclasses.field(default_factory=list)
    text: str = ""
    instruction: str | None = None

    def followed_by(self, tokens: torch.Tensor) -> ModelInputs:
        """The prompt with text `tokens` (1-D) appended, e.g. a continuation to score."""
        extended = {key: torch.cat([value, torch.zeros_like(tokens, dtype=value.dtype)])
                    for key, value in self.token_inputs.items()}
        return dataclasses.replace(self, input_ids=torch.cat([self.input_ids, tokens.to(self.input_ids.dtype)]),
                                   token_inputs=extended, sequence_length=self.sequence_length + tokens.numel())


def check_placeholders(prompt: str, images: Sequence[Image.Image]) -> None:
    """LLaVA's contract for a templated prompt: one `<image>` per image."""
    placeholders = prompt.count(DEFAULT_IMAGE_TOKEN)
    if placeholders != len(images):
        raise PromptError(f"the prompt has {placeholders} {DEFAULT_IMAGE_TOKEN} token(s) but {len(images)} "
                          f"image(s) were sent; put one {DEFAULT_IMAGE_TOKEN} in the prompt per image")


def user_turn(question: str, num_images: int) -> list[dict]:
    """One user turn in chat-template form: the images first, then the question (as Qwen's own examples and
    lmms-eval's chat-template models put them)."""
    return [{"role": "user", "content": [{"type": "image"}] * num_images + [{"type": "text", "text": question}]}]


def chat_template_content(messages: Sequence[Mapping[str, str]]) -> list[dict]:
    """{role, content} messages with `<image>` placeholders -> the chat-template form, each placeholder an
    `{"type": "image"}` entry where it stood (the images are taken in order of appearance)."""
    converted = []
    for message in messages:
        content = []
        for i, text in enumerate(message["content"].split(DEFAULT_IMAGE_TOKEN)):
            if i:
                content.append({"type": "image"})
            if text.strip():
                content.append({"type": "text", "text": text.strip()})
        converted.append({"role": message["role"], "content": content})
    return converted


def videos_first(converted: list[dict], num_videos: int) -> list[dict]:
    """A conversation in chat-template form with `num_videos` `{"type": "video"}` entries at the front of its first
    user turn (where a chat's videos go, before that turn's images)."""
    first = next(i for i, message in enumerate(converted) if message["role"] == "user")
    turn = converted[first]
    return [*converted[:first], {**turn, "content": [{"type": "video"}] * num_videos + list(turn["content"])},
            *converted[first + 1:]]


def left_pad_rows(rows: Sequence[torch.Tensor], pad_value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D rows of different lengths -> (B, L) left-padded with `pad_value`, and the (B, L) attention mask."""
    longest = max(row.numel() for row in rows)
    out = torch.full((len(rows), longest), pad_value, dtype=rows[0].dtype)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, longest - row.numel():] = row
        mask[b, longest - row.numel():] = 1
    return out, mask


def to_model(value, model):
    """A model argument on the model's device, floating tensors in its dtype (lists and tuples element-wise)."""
    if isinstance(value, torch.Tensor):
        return value.to(model.device, dtype=model.dtype) if value.is_floating_point() else value.to(model.device)
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return type(value)(to_model(v, model) for v in value)
    return value


@dataclasses.dataclass(frozen=True)
class BenchmarkShape:
    """A family's released model as the prefill benchmark builds it (random weights, the release's depth and
    heads at a narrower width) and its usual prompt: `name` is the benchmark's `--family` value."""

    name: str
    description: str
    layers: int
    heads: int
    kv_heads: int | None
    hidden_size: int
    intermediate_size: int
    prefix_tokens: int
    image_tokens: int
    suffix_tokens: int


@dataclasses.dataclass
class LoadedModel:
    """A checkpoint as loaded: its family, tokenizer, model, processor (the image processor for LLaVA, the
    whole processor for the others; None for a text-only model) and context length. The methods are the
    family's, bound to this model."""

    family: Family
    tokenizer: Any
    model: Any
    processor: Any
    context_len: int

    def question_inputs(self, question: str, images: Sequence[Image.Image], conv_mode: str | None,
                        videos: Sequence[Video] = ()) -> ModelInputs:
        if videos:
            inputs = self.family.video_question_inputs(self, question, videos, images, conv_mode)
        else:
            inputs = self.family.question_inputs(self, question, images, conv_mode)
        return dataclasses.replace(inputs, instruction=question.replace(DEFAULT_IMAGE_TOKEN, "").strip())

    def chat_inputs(self, messages: Sequence[Mapping[str, str]], images: Sequence[Image.Image],
                    conv_mode: str | None, videos: Sequence[Video] = ()) -> tuple[ModelInputs, str | None]:
        if videos:
            inputs, stop = self.family.video_chat_inputs(self, messages, videos, images, conv_mode)
        else:
            inputs, stop = self.family.chat_inputs(self, messages, images, conv_mode)
        asked = [message["content"] for message in messages if message["role"] == "user"]
        instruction = asked[-1].replace(DEFAULT_IMAGE_TOKEN, "").strip() if asked else None
        return dataclasses.replace(inputs, instruction=instruction), stop

    def prompt_inputs(self, prompt: str, images: Sequence[Image.Image]) -> ModelInputs:
        return self.family.prompt_inputs(self, prompt, images)

    def generate_inputs(self, batch: Sequence[ModelInputs]) -> dict[str, Any]:
        return self.family.generate_inputs(self, batch)

    def conv_mode(self, requested: str | None, model_name: str) -> str | None:
        return self.family.conv_mode(self, requested, model_name)


class Family:
    """One model family. Subclasses set the class attributes and implement the methods that raise here.

    model_types: the `config.model_type` values it serves (`accepts` can narrow that, e.g. by layout).
    prompt_format: "prompt" (a prompt in a LLaVA conversation template, `--conv-mode`) or "messages" (the
        model's own chat template builds it).
    ratio_budget: its DART budget is the reduction ratio alone (a token count is not read).
    before_llm_methods: whether the methods that reduce the image before the language model run on it.
    refused_methods: methods its models refuse for a reason of their own (name -> why), besides those the flags
        rule out (`before_llm_methods`, `vision_cls_attention`: whether its tower has a [CLS] token, default True).
    generate_returns_prompt: whether the model's `generate` returns the prompt before the new tokens.
    prunes: whether its model takes a `pruning_record` (a text-only model does not).
    takes_video: whether its prompts take videos (`video_question_inputs`, `video_chat_inputs`).
    """

    name: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]
    prompt_format: ClassVar[str] = "prompt"
    ratio_budget: ClassVar[bool] = False
    before_llm_methods: ClassVar[bool] = True
    refused_methods: ClassVar[dict[str, str]] = {}
    generate_returns_prompt: ClassVar[bool] = True
    prunes: ClassVar[bool] = True
    takes_video: ClassVar[bool] = False
    image_view: ClassVar[str | None] = None  # how the overlay maps an image to its grid (None: from the config)
    # Hub ids of this family's releases (a regular expression on the lowercased id), for the shell scripts'
    # naming when a hub checkpoint's config cannot be read (offline, not downloaded yet).
    hub_name_pattern: ClassVar[str | None] = None
    benchmark_shape: ClassVar[BenchmarkShape | None] = None  # what `llava.eval.speed.prefill_benchmark` times

    def accepts(self, config) -> bool:
        return getattr(config, "model_type", None) in self.model_types

    def lmms_model(self, config) -> str:
        """The lmms-eval model name (`--model`) that runs checkpoints of this family."""
        return "llava_dart"

    def load(self, model_path: str, config, load_kwargs: dict, options: Mapping[str, Any]):
        """(tokenizer, model, processor, context_len), the model on the device `load_kwargs` place it on."""
        raise NotImplementedError

    # -- prompts ---------------------------------------------------------------------------------------------

    def conv_mode(self, loaded: LoadedModel, requested: str | None, model_name: str) -> str | None:
        """The LLaVA conversation template prompts are put in (None: the model's chat template)."""
        return None

    def question_inputs(self, loaded: LoadedModel, question: str, images: Sequence[Image.Image],
                        conv_mode: str | None) -> ModelInputs:
        """One user turn (`question`, its images in front unless it places them) with an open answer."""
        raise NotImplementedError

    def video_question_inputs(self, loaded: LoadedModel, question: str, videos: Sequence[Video],
                              images: Sequence[Image.Image], conv_mode: str | None) -> ModelInputs:
        """One user turn with videos (and any images): the videos first, then the images, then the question."""
        raise PromptError(f"{loaded.model.config.model_type} models do not take videos")

    def chat_inputs(self, loaded: LoadedModel, messages: Sequence[Mapping[str, str]], images: Sequence[Image.Image],
                    conv_mode: str | None) -> tuple[ModelInputs, str | None]:
        """A {role, content} conversation ending with the user's turn, `<image>` where each image goes:
        (inputs, the stop string that ends the answer, None where an end-of-turn token does)."""
        raise NotImplementedError

    def video_chat_inputs(self, loaded: LoadedModel, messages: Sequence[Mapping[str, str]], videos: Sequence[Video],
                          images: Sequence[Image.Image], conv_mode: str | None) -> tuple[ModelInputs, str | None]:
        """`chat_inputs` with videos, which go first in the first user turn (before its images), as in
        `video_question_inputs`; every later turn's prompt carries them there."""
        raise PromptError(f"{loaded.model.config.model_type} models do not take videos")

    def prompt_inputs(self, loaded: LoadedModel, prompt: str, images: Sequence[Image.Image]) -> ModelInputs:
        """A prompt already in a template, one `<image>` per image."""
        raise PromptError(f"{loaded.model.config.model_type} models take `messages` (their chat template builds "
                          "the prompt), not a templated prompt")

    # -- generation ------------------------------------------------------------------------------------------

    def merge_image_inputs(self, loaded: LoadedModel, batch: Sequence[ModelInputs]) -> dict[str, Any]:
        """The batch's `image_inputs` as one call's arguments (on the model's device)."""
        raise NotImplementedError

    def generate_inputs(self, loaded: LoadedModel, batch: Sequence[ModelInputs]) -> dict[str, Any]:
        """One `generate` (or forward) call's arguments for `batch`, left-padded: `input_ids` and the rest."""
        model = loaded.model
        pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
        if len(batch) == 1:  # no padding, no mask: exactly as the reference code runs one prompt
            kwargs = {"input_ids": batch[0].input_ids[None], **{k: v[None] for k, v in batch[0].token_inputs.items()}}
        else:
            ids, mask = left_pad_rows([item.input_ids for item in batch], pad_id)
            kwargs = {"input_ids": ids, "attention_mask": mask}
            for key in batch[0].token_inputs:
                kwargs[key], _ = left_pad_rows([item.token_inputs[key] for item in batch], 0)
        kwargs = {key: value.to(model.device) for key, value in kwargs.items()}
        if any(item.image_inputs for item in batch):
            kwargs.update(self.merge_image_inputs(loaded, batch))
        return kwargs

    # -- images ----------------------------------------------------------------------------------------------

    def image_grids(self, loaded: LoadedModel, inputs: ModelInputs) -> list[list[int]]:
        """Each image's token grid (rows, cols), row-major as its tokens are; [] when unknown."""
        return []

    def describe_images(self, loaded: LoadedModel) -> dict[str, Any]:
        """For clients: `image_tokens` (per image, the most an image can have), `patch_grid` (the grid every
        image shares, or None), `image_aspect_ratio` (how an image maps to its grid)."""
        return {"image_tokens": None, "patch_grid": None, "image_aspect_ratio": self.image_view}

    def benchmark_model(self, args):
        """The random-init model of `benchmark_shape` at the sizes of `args` (layers, heads, kv_heads,
        hidden_size, intermediate_size, attn_implementation); called with the torch seed set."""
        raise NotImplementedError(f"the {self.name} family has no prefill-benchmark model")

    def default_budget_flags(self) -> list[str]:
        """The DART release's budget for this family, as pruning flags."""
        from llava.pruning_settings import SETTINGS

        name = "reduction_ratio" if self.ratio_budget else "max_num_trunction"
        (setting,) = [s for s in SETTINGS if s.name == name]
        return [f"--{name}", str(setting.default)]
