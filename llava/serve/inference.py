"""Streaming generation with per-call DART settings, shared by the model worker and the CLI.

    inputs, stop = loaded.chat_inputs(messages, images, conv_mode)     # or loaded.prompt_inputs(prompt, images)
    params = SamplingParams(..., max_new_tokens=fit_to_context(inputs, loaded, 256), stop=stop)
    gen = StreamedGeneration(loaded, inputs, params, dart_config)
    gen.start()
    for delta in gen: ...        # text pieces as the model writes them
    gen.report                   # answer, tokens, prefill time, the call's PruningRecord

`model.generate` runs in a thread and hands tokens to a `TextIteratorStreamer`. The call's DART settings
ride in its own `PruningRecord(dart_config=...)` (None: no pruning), as do the kept indices, so calls with
different settings run at the same time; `model.config.DART_config` is neither read nor written here.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from llava.mm_utils import KeywordsStoppingCriteria
from llava.model import PruningRecord
from llava.model.families import LoadedModel, ModelInputs, PromptError

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """LLaVA's convention: temperature 0 means greedy decoding."""

    temperature: float = 0.2
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: str | None = None

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "use_cache": True, "num_beams": 1}
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False)
        return kwargs


def fit_to_context(inputs: ModelInputs, loaded: LoadedModel, max_new_tokens: int = 256) -> int:
    """The new tokens this call may write; PromptError when the prompt leaves no room for one.

    The prompt must fit in the model's `tokenizer_model_max_length` (LLaVA would silently truncate it, cutting the
    question off) with room for at least one new token; `max_new_tokens` is lowered to what fits in the context
    length, as LLaVA's worker does.
    """
    context_len = loaded.context_len
    length = inputs.sequence_length
    prompt_limit = min(context_len, getattr(loaded.model.config, "tokenizer_model_max_length", None) or context_len)
    if length >= prompt_limit:
        of_them = f" ({sum(inputs.image_tokens)} of them image tokens)" if inputs.image_tokens else ""
        raise PromptError(f"the prompt is {length} tokens{of_them}; this model takes prompts of at most "
                          f"{prompt_limit - 1} tokens")
    return min(max_new_tokens, context_len - length)


class _CancelCriteria(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _TimedStreamer(TextIteratorStreamer):
    """Also records when the first new token arrived (end of prefill) and counts the new tokens."""

    def __init__(self, tokenizer, **kwargs):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True, **kwargs)
        self.first_token_time: float | None = None
        self.num_tokens = 0
        self._ended = False

    def put(self, value: torch.Tensor) -> None:
        if not self.next_tokens_are_prompt:
            if self.first_token_time is None:
                self.first_token_time = time.perf_counter()
            self.num_tokens += int(value.numel())
        super().put(value)

    def end(self) -> None:
        if not self._ended:  # called by generate, and again by our cleanup after an error
            self._ended = True
            super().end()


@dataclasses.dataclass
class GenerationReport:
    """What one call did. prefill_seconds: from the start of generate to the first new token (vision tower +
    prefill, pruning included); selection_seconds (in `pruning()`): the pruning method's share of it."""

    text: str
    num_tokens: int
    finish_reason: str  # "stop", "length" or "cancelled"
    prefill_seconds: float | None
    seconds: float
    record: PruningRecord
    dart_config: dict[str, Any] | None
    patch_grids: list[list[int]] = dataclasses.field(default_factory=list)  # (rows, cols) per image
    image_aspect_ratio: str | None = None

    def pruning(self) -> dict[str, Any]:
        """The pruning summary a client shows: counts, timings, kept patch indices per image (row-major in its
        `patch_grids` entry; `patch_grid`: the grid every image shares, if they do)."""
        kept = [p.tolist() if p is not None else None for p in self.record.kept_image_positions(0)]
        # A grid describes an image only where it has one token per cell (not LLaVA-1.6's anyres splice).
        grids = [grid if n == grid[0] * grid[1] else None for grid, n in zip(self.patch_grids, self._image_lengths())]
        shared = grids[0] if grids and all(grid == grids[0] for grid in grids) else None
        return {
            "enabled": self.dart_config is not None,
            "pruned": self.record.pruned,
            "kept_image_tokens": self.record.num_kept_image_tokens(),
            "image_tokens": self.record.num_image_tokens(),
            "kept_indices": kept,
            "patch_grid": shared,
            "patch_grids": grids,
            "image_aspect_ratio": self.image_aspect_ratio,
            "selection_seconds": self.record.selection_seconds,
            "prefill_seconds": self.prefill_seconds,
            "config": self.dart_config,
        }

    def _image_lengths(self) -> list[int]:
        """Each image's token count before pruning (a method before the language model shortens its span)."""
        if self.record.image_reductions is not None:
            return [r.original_tokens for r in self.record.image_reductions[0]]
        return [n for _, n in (self.record.image_spans or [[]])[0]]


class StreamedGeneration:
    """One `model.generate` call in a thread; iterate it for text deltas, then read `report` (or `error`).

    dart_config: this call's DART_config dict (validated, e.g. by `parse_pruning_settings(...).to_dict()`) or None
    for no pruning; it goes into the call's `PruningRecord`, so overlapping calls never wait on each other.

    on_finish: called in the generation thread once generate has returned or failed (the worker frees its
    concurrency slot there, so a slot is held exactly as long as the model is busy).
    """

    def __init__(self, loaded: LoadedModel, inputs: ModelInputs, params: SamplingParams,
                 dart_config: dict[str, Any] | None, on_finish: Callable[[], None] | None = None):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.inputs = inputs
        self.params = params
        self.dart_config = dart_config
        self.on_finish = on_finish
        # The settings travel with the call: None means no pruning here, whatever model.config says.
        self.record = PruningRecord(dart_config=dart_config, instructions=[inputs.instruction])
        self.streamer = _TimedStreamer(self.tokenizer)
        self.report: GenerationReport | None = None
        self.error: BaseException | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llava-generate", daemon=True)
        self._start_time: float | None = None
        self._end_time: float | None = None

    def start(self) -> StreamedGeneration:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop after the current token (e.g. the client went away)."""
        self._cancel.set()

    def _stopping_criteria(self, prompt_length: int) -> StoppingCriteriaList:
        """`prompt_length`: where the new tokens start in what generate passes the criteria."""
        criteria = [_CancelCriteria(self._cancel)]
        if self.params.stop:
            start = torch.empty(1, prompt_length if self.loaded.family.generate_returns_prompt else 0)
            criteria.append(KeywordsStoppingCriteria([self.params.stop], self.tokenizer, start))
        return StoppingCriteriaList(criteria)

    def _run(self) -> None:
        model = self.model
        try:
            with torch.inference_mode():
                if self._cancel.is_set():
                    return
                kwargs = {**self.params.generate_kwargs(), **self.loaded.generate_inputs([self.inputs])}
                self._start_time = time.perf_counter()
                model.generate(
                    pruning_record=self.record,
                    streamer=self.streamer,
                    stopping_criteria=self._stopping_criteria(kwargs["input_ids"].shape[1]),
                    pad_token_id=self.tokenizer.pad_token_id,
                    **kwargs,
                )
        except Exception as exc:  # handed to the consumer, which reports it instead of crashing the server
            logger.exception("generation failed")
            self.error = exc
        finally:
            self._end_time = time.perf_counter()
            self.streamer.end()
            if self.on_finish is not None:
                self.on_finish()

    def _trim(self, text: str) -> str:
        stop = self.params.stop
        if stop and stop in text:
            return text[: text.index(stop)]
        return text

    def __iter__(self) -> Iterator[str]:
        """Text deltas of the answer (the stop string and anything after it left out)."""
        text = ""
        sent = 0
        for piece in self.streamer:
            text += piece
            visible = self._trim(text)
            if len(visible) > sent:
                yield visible[sent:]
                sent = len(visible)
        self._thread.join()
        if self.error is None:
            self._finish(self._trim(text))

    def _finish(self, text: str) -> None:
        streamer = self.streamer
        if streamer.num_tokens >= self.params.max_new_tokens:
            reason = "length"
        elif self._cancel.is_set():
            reason = "cancelled"
        else:
            reason = "stop"
        start = self._start_time or self._end_time
        prefill = streamer.first_token_time - start if streamer.first_token_time and start else None
        self.report = GenerationReport(
            text=text.strip(),
            num_tokens=streamer.num_tokens,
            finish_reason=reason,
            prefill_seconds=prefill,
            seconds=(self._end_time or start) - start if start else 0.0,
            record=self.record,
            dart_config=self.dart_config,
            patch_grids=self.loaded.family.image_grids(self.loaded, self.inputs),
            image_aspect_ratio=self.loaded.family.describe_images(self.loaded)["image_aspect_ratio"],
        )
