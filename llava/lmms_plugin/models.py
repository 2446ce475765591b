r"""lmms-eval model classes for our LLaVA and Qwen2-VL / Qwen2.5-VL checkpoints, with DART (or another pruning
method) inside the language model.

    python -m lmms_eval --model llava_dart --model_args pretrained=liuhaotian/llava-v1.5-7b,Sparse=True,\
max_num_trunction=128 --tasks pope --batch_size 4

`model_args` take the DART release's spellings (`Sparse`, `pruned_layer`, `image_token_start_index`,
`image_token_length`, `max_num_trunction`, `reduction_ratio`, `pivot_image_token`, `pivot_text_token`,
`retain_token_num_for_llava_next`) plus `pruning_method`; the two span arguments are only checked against the
real image spans (the spans win, with one warning where they disagree). Prompts and batches go through the same
code as our own eval workers (`llava.eval.core.common`), so a question gets the answer our worker gives it.

Video tasks (e.g. `videomme`) give video file paths among a document's visuals: the models whose family takes
videos (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision) sample their frames as lmms-eval does (`llava.video`), at
most `max_num_frames` (default 32) and with `fps` at most that many per second (lmms-eval's Qwen model_args), and
put them before the images and the question; the others refuse them.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
from collections.abc import Sequence
from typing import Any

import torch
from accelerate import Accelerator
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from PIL import Image
from tqdm import tqdm

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.eval.core.common import Generation, Prepared, answer_window, prepare_prompt
from llava.eval.core.prompting import CHAT_TEMPLATE, check_conv_mode
from llava.mm_utils import get_model_name_from_path
from llava.model import PruningRecord
from llava.model.builder import read_config
from llava.model.families import family_for, load_model
from llava.model.pruning import make_dart_config, parse_pruning_settings
from llava.pruning_settings import ATTENTION_BACKENDS, BY_NAME, SPARSE_FLAG, dart_config_values
from llava.video import load_video

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 128  # what lmms-eval's own model classes use when a task sets none


class ModelArgsError(ValueError):
    """A `--model_args` entry the model cannot use."""


KNOWN_MODEL_ARGS = ("pretrained", "device", "batch_size", "attn_implementation", "conv_template", "min_pixels",
                    "max_pixels", "max_num_frames", "fps", "Sparse", *BY_NAME)
DEFAULT_MAX_NUM_FRAMES = 32  # lmms-eval's Qwen models' max_num_frames


def _setting_value(name: str, value: Any) -> Any:
    """A model_args value (lmms-eval has already turned "4" into 4 and "True" into True) in the setting's type
    and range."""
    setting = BY_NAME[name]
    if setting.nullable and (value is None or str(value).lower() == "none"):
        return None
    if setting.kind is int:
        value = _integer(name, value)
    if setting.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ModelArgsError(f"model_args {name}={value!r}: expected a number")
        value = float(value)
    if setting.kind is str and not isinstance(value, str):
        raise ModelArgsError(f"model_args {name}={value!r}: expected a name")
    if setting.kind in (int, float) and not _in_range(setting, value):
        raise ModelArgsError(f"model_args {name}={value!r} is out of range: it must be in {_range_text(setting)}")
    return value


def _integer(name: str, value: Any) -> int:
    # lmms-eval turns only digit strings into integers: "-1" arrives as the float -1.0.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelArgsError(f"model_args {name}={value!r}: expected an integer")
    return value


def _in_range(setting, value: float) -> bool:
    """The setting's range: the maximum is inclusive for integers, exclusive for floats (a ratio of 1 prunes all)."""
    if setting.minimum is not None and value < setting.minimum:
        return False
    if setting.maximum is None:
        return True
    return value <= setting.maximum if setting.kind is int else value < setting.maximum


def _range_text(setting) -> str:
    if setting.kind is int:
        return f"{setting.minimum:g}..{setting.maximum:g}" if setting.maximum is not None else f">= {setting.minimum:g}"
    return f"[{setting.minimum:g}, {setting.maximum:g})" if setting.maximum is not None else f">= {setting.minimum:g}"


def _sparse_value(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ModelArgsError(f"model_args Sparse={value!r}: expected True or False")
    return value


@dataclasses.dataclass(frozen=True)
class PruningArgs:
    """The pruning model_args, each checked in its type and range: `Sparse` and {setting name: value}."""

    sparse: bool
    values: dict[str, Any]

    @classmethod
    def parse(cls, args: dict[str, Any]) -> PruningArgs:
        unknown = sorted(set(args) - set(BY_NAME) - {"Sparse", SPARSE_FLAG})
        if unknown:
            raise ModelArgsError(f"unknown model_args {', '.join(unknown)} (known: {', '.join(KNOWN_MODEL_ARGS)})")
        args = dict(args)
        sparse = _sparse_value(args.pop("Sparse", args.pop(SPARSE_FLAG, False)))
        return cls(sparse, {name: _setting_value(name, value) for name, value in args.items()})

    def dart_config(self, num_layers: int) -> dict[str, Any] | None:
        """The DART_config they ask for (None: no pruning), validated against the model's depth."""
        if not self.sparse:
            if self.values:
                logger.warning("model_args %s are set but Sparse is not: no pruning", ", ".join(sorted(self.values)))
            return None
        try:
            return parse_pruning_settings(make_dart_config(**dart_config_values(self.values)), num_layers).to_dict()
        except ValueError as exc:
            raise ModelArgsError(f"model_args: {exc}") from None


def _check_attn_implementation(attn_implementation: str | None) -> None:
    if attn_implementation is not None and attn_implementation not in ATTENTION_BACKENDS:
        raise ModelArgsError(f"model_args attn_implementation={attn_implementation!r}: expected one of "
                             f"{', '.join(ATTENTION_BACKENDS)}")


def _batch_size(batch_size: int | str) -> int:
    try:
        size = int(batch_size)
    except ValueError:
        raise ModelArgsError(f"batch_size must be an integer >= 1, got {batch_size!r}") from None
    if size < 1:
        raise ModelArgsError(f"batch_size must be >= 1, got {batch_size}")
    return size


def _check_video_args(max_num_frames: Any, fps: Any) -> tuple[int, float | None]:
    """(max_num_frames, fps) in their types and ranges; fps None (or "none"): max_num_frames alone."""
    frames = _integer("max_num_frames", max_num_frames)
    if frames < 1:
        raise ModelArgsError(f"model_args max_num_frames={frames} is out of range: it must be >= 1")
    if fps is None or str(fps).lower() == "none":
        return frames, None
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
        raise ModelArgsError(f"model_args fps={fps!r}: expected a positive number of frames per second")
    return frames, float(fps)


def _check_plain_args(attn_implementation: str | None, batch_size: int | str, conv_template: str,
                      pruning_args: dict[str, Any]) -> tuple[int, PruningArgs]:
    """(batch size, pruning args), after every check that needs neither the checkpoint nor its config."""
    pruning = PruningArgs.parse(pruning_args)
    _check_attn_implementation(attn_implementation)
    size = _batch_size(batch_size)
    check_conv_mode(conv_template)  # an unknown name fails here, listing the known ones
    return size, pruning


def _visuals(visuals: Any) -> tuple[list[Image.Image], list[str]]:
    """A document's visuals (an image, a video file path, a list, or a nested list of them) as (RGB images, video
    paths), each in order; anything else is refused."""
    if visuals is None:
        return [], []
    if isinstance(visuals, Image.Image):
        return [visuals.convert("RGB")], []
    if isinstance(visuals, str):  # lmms-eval's video tasks give a video by its file path
        return [], [visuals]
    images, videos = [], []
    for visual in visuals:
        if not isinstance(visual, (Image.Image, str, list, tuple)):
            raise ValueError(f"this model takes images and video files only, the task gave a "
                             f"{type(visual).__name__}: {visual!r:.80}")
        more_images, more_videos = _visuals(visual)
        images += more_images
        videos += more_videos
    return images, videos


def _cut_at_stops(text: str, until: Sequence[str]) -> str:
    for stop in until:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text


def _hf_generation_kwargs(gen_kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A task's generation_kwargs -> (transformers generate kwargs, stop strings); temperature 0 is greedy."""
    gen_kwargs = dict(gen_kwargs)
    until = gen_kwargs.pop("until", [])
    until = [until] if isinstance(until, str) else list(until or [])
    temperature = float(gen_kwargs.get("temperature") or 0)
    sampling = bool(gen_kwargs.get("do_sample")) or temperature > 0
    kwargs = {"max_new_tokens": int(gen_kwargs.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS),
              "num_beams": int(gen_kwargs.get("num_beams") or 1), "do_sample": sampling, "use_cache": True}
    if sampling:
        kwargs.update(temperature=temperature or 1.0, top_p=float(gen_kwargs.get("top_p") or 1.0))
    return kwargs, until


class _DartModel(lmms):
    """What the registered models share; `model_name` is the `--model` name, which the checkpoint's family
    names (`Family.lmms_model`)."""

    model_name = "llava_dart"

    def __init__(self, pretrained: str, device: str | None = "cuda", batch_size: int | str = 1,
                 attn_implementation: str | None = None, conv_template: str = "vicuna_v1",
                 min_pixels: int | None = None, max_pixels: int | None = None, max_batch_size: int | None = None,
                 max_num_frames: int = DEFAULT_MAX_NUM_FRAMES, fps: float | None = None, **pruning_args):
        super().__init__()
        del max_batch_size  # lmms-eval passes it for automatic batch sizes, which these models do not do
        # What needs no weights is checked before they load.
        self.batch_size_per_device, pruning = _check_plain_args(attn_implementation, batch_size, conv_template,
                                                                pruning_args)
        self.max_num_frames, self.fps = _check_video_args(max_num_frames, fps)
        self.pretrained = str(pretrained)

        accelerator = Accelerator()
        if accelerator.num_processes > 1:  # lmms-eval gives each rank its share of the requests
            self.accelerator = accelerator
            self._rank, self._world_size = accelerator.process_index, accelerator.num_processes
            device = "cpu" if accelerator.device.type == "cpu" else f"cuda:{accelerator.local_process_index}"
        self._device = device or "cuda"
        model_name = get_model_name_from_path(str(pretrained).rstrip("/"))
        self.loaded = load_model(str(pretrained), None, model_name=model_name, device=self._device,
                                 attn_implementation=attn_implementation, min_pixels=min_pixels, max_pixels=max_pixels)
        self.tokenizer, self.model = self.loaded.tokenizer, self.loaded.model
        self._check_family(pretrained, self.model.config)
        self.conv_mode = self.loaded.conv_mode(conv_template, model_name)  # None: the model's chat template
        # The eval workers' way: the settings on the config, read by every call.
        self.model.config.DART_config = pruning.dart_config(self.model.config.get_text_config().num_hidden_layers)
        self.kept_image_tokens = self.image_tokens = 0
        logger.info("%s: %s on %s, rank %d of %d, %s", type(self).__name__, pretrained, self.model.device,
                    self._rank, self._world_size, self.model.config.DART_config or "no pruning")

    @classmethod
    def check_model_args(cls, args: dict[str, Any]) -> None:
        """Every check the constructor makes on `args` (lmms-eval's parsed model_args), reading the checkpoint's
        config but not its weights: what `llava.lmms_plugin.preflight` runs before lmms-eval starts."""
        try:
            bound = inspect.signature(cls.__init__).bind(None, **args)
        except TypeError as exc:  # e.g. no pretrained
            raise ModelArgsError(f"model_args: {exc}") from None
        bound.apply_defaults()
        given = bound.arguments
        _, pruning = _check_plain_args(given["attn_implementation"], given["batch_size"], given["conv_template"],
                                       given["pruning_args"])
        _check_video_args(given["max_num_frames"], given["fps"])
        config = read_config(str(given["pretrained"]))
        cls._check_family(given["pretrained"], config)
        if pruning.sparse:  # without it the settings are only warned about, which the run itself does
            pruning.dart_config(config.get_text_config().num_hidden_layers)

    @classmethod
    def _check_family(cls, pretrained: str, config) -> None:
        expected = family_for(config).lmms_model(config)
        if expected != cls.model_name:
            raise ModelArgsError(f"{pretrained} is a {config.model_type} checkpoint, which --model {expected} runs; "
                                 f"this is --model {cls.model_name}")

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_device

    @property
    def device(self):
        return self.model.device

    # -- requests -> prompts ------------------------------------------------------------------------------

    def _prepare(self, index: int, context: str, visuals: Any) -> Prepared:
        images, video_paths = _visuals(visuals)
        if video_paths and not self.loaded.family.takes_video:  # the whole task would fail alike: stop it here
            raise ValueError(f"--model {self.model_name} ({self.pretrained}, a {self.model.config.model_type} "
                             f"checkpoint) takes no videos, and the task gave {video_paths[0]!r:.120}; run video "
                             "tasks with a model that takes them (qwen2_vl_dart, qwen2_5_vl_dart, qwen3_vl_dart, "
                             "llava_onevision_dart)")
        try:
            videos = [load_video(path, max_frames=self.max_num_frames, fps=self.fps) for path in video_paths]
        except (FileNotFoundError, ValueError) as exc:  # one unreadable video skips its document, as our workers do
            logger.warning("skipping document %d: %s", index, exc)
            return Prepared(index, error=str(exc))
        # A chat template places the images itself (first, as lmms-eval's own chat-template models do).
        chat_template = self.conv_mode in (None, CHAT_TEMPLATE)
        question = context.replace(DEFAULT_IMAGE_TOKEN, "").strip() if chat_template else context
        return prepare_prompt(index, question, images, self.loaded, self.conv_mode, videos)

    def _doc(self, task: str, split: str, doc_id: int):
        return self.task_dict[task][split][doc_id]

    # -- lmms-eval's API ---------------------------------------------------------------------------------

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answers in request order, in left-padded batches of `batch_size` prompts of similar length (grouped by
        generation settings), cut at the task's stop strings."""
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(json.dumps(request.args[1], sort_keys=True, default=str), []).append(i)
        answers: list[str | None] = [None] * len(requests)
        progress = tqdm(total=len(requests), disable=self._rank != 0, desc="Model Responding")
        for indices in groups.values():
            gen_kwargs, until = _hf_generation_kwargs(requests[indices[0]].args[1])
            prepared = []
            for i in indices:
                context, _, doc_to_visual, doc_id, task, split = requests[i].args
                prepared.append(self._prepare(i, context, doc_to_visual(self._doc(task, split, doc_id))))
            for i, answer in answer_window(self.loaded, prepared, self.batch_size, gen_kwargs).items():
                answers[i] = _cut_at_stops(answer.text, until)
                self._count(answer)
                progress.update(1)
        progress.close()
        if self.image_tokens:
            logger.info("image tokens kept: %d of %d (%.1f%%)", self.kept_image_tokens, self.image_tokens,
                        100 * self.kept_image_tokens / self.image_tokens)
        return answers

    def _count(self, answer: Generation) -> None:
        self.kept_image_tokens += answer.kept_image_tokens
        self.image_tokens += answer.image_tokens

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """(log P(continuation | context), whether greedy decoding gives it) per request. With pruning, the
        context is pruned as generate would prune it (its own prefill picks the kept set) and the continuation is
        scored with that kept set forced, so a continuation's score is what decoding it after that prefill gives."""
        results = []
        for context, doc_to_target, doc_to_visual, doc_id, task, split in tqdm(
            [request.args for request in requests], disable=self._rank != 0, desc="Model Scoring"
        ):
            doc = self._doc(task, split, doc_id)
            continuation = doc_to_target if isinstance(doc_to_target, str) else doc_to_target(doc)
            results.append(self._score(self._prepare(0, context, doc_to_visual(doc)), continuation))
        return results

    def _score(self, prepared: Prepared, continuation: str) -> tuple[float, bool]:
        target = self.tokenizer(continuation, add_special_tokens=False, return_tensors="pt").input_ids[0]
        if target.numel() == 0:
            return 0.0, True
        kept = None
        if self.model.config.DART_config is not None:
            context_record = PruningRecord()
            self._forward(prepared, torch.empty(0, dtype=torch.long), context_record)
            kept = context_record.kept_positions(0) if context_record.pruned else None
        logits = self._forward(prepared, target, PruningRecord(forced_keep=kept))
        scored = logits[0, -target.numel() - 1 : -1].float().log_softmax(-1)
        target = target.to(scored.device)
        logprob = scored.gather(1, target[:, None]).sum().item()
        return logprob, bool((scored.argmax(-1) == target).all())

    def _forward(self, prepared: Prepared, target: torch.Tensor, record: PruningRecord) -> torch.Tensor:
        """Logits of one forward over the prompt followed by `target` tokens (no cache)."""
        if prepared.error is not None:
            raise ValueError(prepared.error)
        inputs = self.loaded.generate_inputs([prepared.inputs.followed_by(target)])
        with torch.inference_mode():
            return self.model(**inputs, pruning_record=record, use_cache=False).logits

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} does not implement multi-round generation")


class LlavaDart(_DartModel):
    """`--model llava_dart`: LLaVA-1.5 / 1.6 checkpoints (original layout) in LLaVA's conversation template
    `conv_template` (default vicuna_v1, as lmms-eval's own `llava` and the DART release's scripts)."""

    model_name = "llava_dart"


class Qwen2VLDart(_DartModel):
    """`--model qwen2_vl_dart`: Qwen2-VL checkpoints (HF layout), their own chat template."""

    model_name = "qwen2_vl_dart"


class Qwen2_5_VLDart(_DartModel):
    """`--model qwen2_5_vl_dart`: Qwen2.5-VL checkpoints (HF layout), their own chat template."""

    model_name = "qwen2_5_vl_dart"


class Qwen3VLDart(_DartModel):
    """`--model qwen3_vl_dart`: Qwen3-VL checkpoints (HF layout), their own chat template."""

    model_name = "qwen3_vl_dart"


class LlavaOnevisionDart(_DartModel):
    """`--model llava_onevision_dart`: LLaVA-OneVision checkpoints (llava-hf layout), their own chat template."""

    model_name = "llava_onevision_dart"


# lmms-eval's model id (registered in llava.lmms_plugin) -> our class.
MODEL_CLASSES = {cls.model_name: cls for cls in (LlavaDart, Qwen2VLDart, Qwen2_5_VLDart, Qwen3VLDart,
                                                 LlavaOnevisionDart)}
