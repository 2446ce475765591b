"""The eval core shared by every worker (`model_vqa_loader`, `model_vqa`, `model_vqa_science`, `model_vqa_mmbench`).

A worker is a `Task`: how its question file is read and how a question becomes the user turn (and images)
and the fields of its answer line. Everything else lives here: the flags (LLaVA's and DART's), model loading
with the DART config, prompt building, image loading, chunking, resumable answer writing, progress and the
final summary.

    run:  read questions -> this chunk -> items -> skip those already answered -> load the model (only if
          anything is left) -> for each item: prompt + images -> generate -> one answer line.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import shortuuid
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from llava.constants import DEFAULT_MODEL_PATH
from llava.eval.core.answers import TOO_LONG, AnswerFile, ErrorLog, OutputError, errors_path, merge_chunks, settings_id
from llava.eval.core.chunking import Chunk, chunk_answers_path, get_chunk, local_device, resolve_chunk, wait_for_all_ranks
from llava.eval.core.prompting import check_conv_mode
from llava.eval.core.pruning_args import add_pruning_args, dart_config_from_args
from llava.eval.core.questions import Item, Row
from llava.mm_utils import get_model_name_from_path
from llava.model import PruningRecord
from llava.model.families import LoadedModel, ModelInputs, PromptError, Video, loaded_model
from llava.model.families import load_model as load_family_model

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Task:
    """What a worker adds to the core.

    read_questions: question file path -> rows (see `llava.eval.core.questions`).
    to_items: (row, args) -> the items (answer lines) of that row.
    key_fields: answer-line fields that tell questions apart, for resuming.
    max_new_tokens: the worker's default (LLaVA: 128 for model_vqa_loader, 1024 for the others).
    num_workers: DataLoader worker processes on CUDA (the CPU uses 0: workers would compete with the model
        for the same cores).
    add_arguments: the worker's own flags.
    model_text: (text, model config, args) -> text; a per-model variant of the user turn, applied once the
        model is loaded (the recorded `prompt` keeps the question file's text, which scorers parse).
    """

    description: str
    read_questions: Callable[[str], list[Row]]
    to_items: Callable[[Row, argparse.Namespace], list[Item]]
    key_fields: tuple[str, ...] = ("question_id", "prompt")
    max_new_tokens: int = 1024
    num_workers: int = 0
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    model_text: Callable[[str, Any, argparse.Namespace], str] | None = None


# -- flags ---------------------------------------------------------------------------------------------


def build_parser(task: Task) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=task.description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", default=DEFAULT_MODEL_PATH, help="default: the embedded tiny model")
    parser.add_argument("--model-base", default=None)
    parser.add_argument("--image-folder", default="")
    parser.add_argument("--question-file", default="tables/question.jsonl")
    parser.add_argument("--answers-file", default="answer.jsonl")
    parser.add_argument("--conv-mode", default="llava_v1")
    parser.add_argument("--num-chunks", type=int, default=None, help="default 1, or WORLD_SIZE under torchrun")
    parser.add_argument("--chunk-idx", type=int, default=None, help="default 0, or RANK under torchrun")
    parser.add_argument("--temperature", type=float, default=0.2, help="0 means greedy decoding")
    parser.add_argument("--top_p", type=float, default=None)
    parser.add_argument("--num_beams", type=int, default=1)
    parser.add_argument("--max_new_tokens", type=int, default=task.max_new_tokens)
    parser.add_argument("--overwrite", action="store_true", help="start the answers file over instead of resuming it")
    parser.add_argument("--device", default="cuda", help="cuda (falls back to the CPU when unavailable) or cpu")
    parser.add_argument("--num-workers", type=int, default=None,
                        help=f"DataLoader worker processes (default {task.num_workers} on CUDA, 0 on the CPU)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed, for sampling (temperature > 0)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="questions per generate call, grouped by length and left-padded; greedy answers "
                             "equal batch size 1's (default 1)")
    add_pruning_args(parser)
    if task.add_arguments is not None:
        task.add_arguments(parser)
    return parser


# Flags that change where or how fast answers are made, not what they are: left out of the settings
# fingerprint so that chunked, resumed and single runs agree (the attention backend only adds float noise).
_RUN_ONLY_FLAGS = frozenset({
    "question_file", "answers_file", "image_folder", "num_chunks", "chunk_idx", "overwrite", "device",
    "num_workers", "attn_implementation", "batch_size",
})


def _canonical_path(path: str | None) -> str | None:
    return os.path.abspath(path) if path and os.path.exists(path) else path


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_SAMPLE_BYTES = 1 << 20


def weights_fingerprint(path: str | None) -> str | None:
    """A cheap fingerprint of a local checkpoint's weights (None for a hub id or no path).

    Retraining into the same directory keeps the path, so resuming by path alone would reuse the old
    model's answers. Each weight file enters with its relative path, its size and its first and last MiB
    (all of it when smaller than 2 MiB): enough to tell retrained weights apart without reading a multi-GB
    checkpoint.
    """
    if not path or not os.path.isdir(path):
        return None
    digest = hashlib.sha1()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith(WEIGHT_SUFFIXES)):
            file = os.path.join(root, name)
            size = os.path.getsize(file)
            digest.update(f"{os.path.relpath(file, path)}:{size}".encode())
            with open(file, "rb") as f:
                digest.update(f.read(_SAMPLE_BYTES))
                if size > 2 * _SAMPLE_BYTES:
                    f.seek(-_SAMPLE_BYTES, os.SEEK_END)
                digest.update(f.read())  # the last MiB, or all the rest of a small file
    return digest.hexdigest()[:12]


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Everything that determines the answers; the DART flags enter as the DART_config they produce."""
    pruning_flags = set(vars(add_pruning_args(argparse.ArgumentParser()).parse_args([])))
    settings = {k: v for k, v in vars(args).items() if k not in _RUN_ONLY_FLAGS | pruning_flags}
    settings.update(
        model_path=_canonical_path(args.model_path),
        model_base=_canonical_path(args.model_base),
        model_weights=weights_fingerprint(args.model_path),
        base_weights=weights_fingerprint(args.model_base),
        DART_config=dart_config_from_args(args),
    )
    return settings


def generation_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """LLaVA's convention: temperature 0 means greedy decoding."""
    sampling = args.temperature > 0
    kwargs = {"do_sample": sampling, "num_beams": args.num_beams, "max_new_tokens": args.max_new_tokens, "use_cache": True}
    if sampling:
        kwargs.update(temperature=args.temperature, top_p=args.top_p)
    return kwargs


# -- prompts and images --------------------------------------------------------------------------------


@dataclasses.dataclass
class Prepared:
    """One item: its index in the run, and its `inputs` ready for the model, or the `error` that kept it out."""

    index: int
    inputs: ModelInputs | None = None
    error: str | None = None


class PromptDataset(Dataset):
    """Each item's `ModelInputs`; the loading work DataLoader workers can do in parallel.

    The model's family builds the prompt: LLaVA's conversation template `conv_mode`, or the model's own chat
    template. An unreadable image is not fatal: the item comes back with `error` set and is skipped by the caller.
    """

    def __init__(self, items: Sequence[Item], loaded: LoadedModel, conv_mode: str | None):
        self.items = items
        self.loaded = loaded
        self.conv_mode = conv_mode

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Prepared:
        item = self.items[index]
        try:
            images = [ref.open() for ref in item.images]
            videos = [ref.open() for ref in item.videos]
        except (FileNotFoundError, ValueError) as exc:
            return Prepared(index, error=str(exc))
        return prepare_prompt(index, item.text, images, self.loaded, self.conv_mode, videos)


def prepare_prompt(index: int, question: str, images: Sequence[Image.Image], loaded: LoadedModel,
                   conv_mode: str | None, videos: Sequence[Video] = ()) -> Prepared:
    """One question and its images (and videos), ready for `generate_answers` (the family builds the prompt)."""
    try:
        return Prepared(index, loaded.question_inputs(question, images, conv_mode, videos))
    except PromptError as exc:
        return Prepared(index, error=str(exc))


def _single(batch: list[Prepared]) -> Prepared:
    return batch[0]  # the DataLoader prepares items one by one; `_answer` groups them into batches


# -- the run -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Generation:
    """One answer: its text, the pruning record of its call and its row there, its token count and its share
    of the call's time."""

    text: str
    record: PruningRecord
    num_tokens: int
    seconds: float
    sample: int = 0

    @property
    def kept_image_tokens(self) -> int:
        return self.record.num_kept_image_tokens(self.sample)

    @property
    def image_tokens(self) -> int:
        return self.record.num_image_tokens(self.sample)


def generate_answer(model, tokenizer, input_ids: torch.Tensor, pixels, image_sizes, gen_kwargs: dict) -> Generation:
    """Answer one LLaVA-format prompt: `input_ids` (L,) with IMAGE_TOKEN_INDEX placeholders, `pixels` as
    `process_images` gives them (or None)."""
    loaded = loaded_model(tokenizer, model, None, 0)
    if pixels is not None and not loaded.family.prunes:
        raise PromptError(f"{type(model).__name__} is a language model without a vision tower: it cannot take images")
    image_inputs = {"pixels": pixels, "image_sizes": image_sizes or [None] * len(pixels)} if pixels is not None else {}
    return generate_answers(loaded, [ModelInputs(input_ids, image_inputs=image_inputs)], gen_kwargs)[0]


def _answer_length(tokens: torch.Tensor, eos_token_id) -> int:
    """Generated tokens up to and including the first end-of-sequence (the rest of a batch row is padding)."""
    if eos_token_id is None:
        return int(tokens.numel())
    ends = (tokens == eos_token_id).nonzero()
    return int(ends[0]) + 1 if len(ends) else int(tokens.numel())


def generate_answers(loaded: LoadedModel, batch: Sequence[ModelInputs], gen_kwargs: dict) -> list[Generation]:
    """Answer prompts in one generate call, left-padded; one Generation per prompt (its first returned sequence).

    A plain language model (e.g. the tiny default's text-only stage 0) answers text-only prompts; it has no
    pruning.
    """
    model, tokenizer = loaded.model, loaded.tokenizer
    record = PruningRecord(instructions=[item.instruction for item in batch])
    inputs = loaded.generate_inputs(batch)
    if loaded.family.prunes:
        inputs["pruning_record"] = record
    prompt_length = inputs["input_ids"].shape[1]
    start = time.perf_counter()
    with torch.inference_mode():
        output_ids = model.generate(pad_token_id=tokenizer.pad_token_id, **inputs, **gen_kwargs)
    seconds = (time.perf_counter() - start) / len(batch)
    if loaded.family.generate_returns_prompt:
        output_ids = output_ids[:, prompt_length:]
    per_prompt = output_ids.shape[0] // len(batch)  # num_return_sequences
    rows_per_prompt = max(1, record.batch_size // len(batch))  # the record has a row per beam
    texts = tokenizer.batch_decode(output_ids[::per_prompt], skip_special_tokens=True)
    return [
        Generation(text.strip(), record, _answer_length(output_ids[i * per_prompt], tokenizer.eos_token_id), seconds,
                   sample=i * rows_per_prompt)
        for i, text in enumerate(texts)
    ]


@dataclasses.dataclass
class RunStats:
    """What a run did, for its one-line summary."""

    answered: int = 0
    already_answered: int = 0
    skipped: int = 0
    too_long: int = 0  # of the skipped, prompts longer than the model's context
    errors_file: str = ""
    kept_image_tokens: list[int] = dataclasses.field(default_factory=list)
    image_tokens: list[int] = dataclasses.field(default_factory=list)
    generated_tokens: int = 0
    generation_seconds: float = 0.0
    seconds: float = 0.0

    def add(self, answer: Generation) -> None:
        self.answered += 1
        self.generated_tokens += answer.num_tokens
        self.generation_seconds += answer.seconds
        if answer.image_tokens:  # text-only questions have nothing to prune
            self.kept_image_tokens.append(answer.kept_image_tokens)
            self.image_tokens.append(answer.image_tokens)

    def summary(self) -> str:
        parts = [f"answered {self.answered} questions"]
        if self.already_answered:
            parts[0] += f" ({self.already_answered} already answered)"
        if self.skipped:
            reason = f"{self.too_long} too long for the context; " if self.too_long else ""
            parts.append(f"skipped {self.skipped} ({reason}see {self.errors_file})")
        if self.kept_image_tokens:
            kept = sum(self.kept_image_tokens) / len(self.kept_image_tokens)
            total = sum(self.image_tokens) / len(self.image_tokens)
            parts.append(f"image tokens kept per question {kept:.1f} of {total:.1f}")
        if self.generation_seconds > 0:
            parts.append(f"{self.generated_tokens / self.generation_seconds:.1f} tokens/s")
        parts.append(f"{self.seconds:.1f} s")
        return "; ".join(parts)


def load_model(args: argparse.Namespace, device: str) -> LoadedModel:
    """The checkpoint, with `model.config.DART_config` set from the flags."""
    loaded = load_family_model(
        os.path.expanduser(args.model_path), args.model_base, model_name=get_model_name_from_path(args.model_path),
        device=device, attn_implementation=args.attn_implementation,
    )
    model = loaded.model
    model.config.DART_config = dart_config_from_args(args, model.config.get_text_config().num_hidden_layers)
    return loaded


def check_takes_video(model_path: str) -> None:
    """Fail once, from the checkpoint's config and before its weights load, when its family takes no videos
    (otherwise every video question would be skipped with the same error)."""
    from llava.model.builder import read_config
    from llava.model.families import family_for

    family = family_for(read_config(os.path.expanduser(model_path)))
    if not family.takes_video:
        raise ValueError(f"{model_path} is a {family.name} checkpoint, whose prompts take no videos; give a "
                         "checkpoint of a family that takes them (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision) "
                         "with --model-path / CKPT")


def _check_image_folder(folder: str, items: Sequence[Item]) -> None:
    """Fail once, up front, rather than skipping every question of a mistyped --image-folder."""
    if folder and not os.path.isdir(folder) and any(ref.path is not None for item in items for ref in item.images):
        raise FileNotFoundError(f"image folder not found: {folder}")


def _answers_path(args: argparse.Namespace, chunk: Chunk) -> str:
    """Explicit chunk flags: the given file (LLaVA's scripts name one per chunk). Ranks: one file each."""
    answers = os.path.expanduser(args.answers_file)
    return chunk_answers_path(answers, chunk.n, chunk.k) if chunk.from_rank and chunk.n > 1 else answers


def run(task: Task, args: argparse.Namespace) -> RunStats:
    start = time.perf_counter()
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    chunk = resolve_chunk(args.num_chunks, args.chunk_idx)
    check_conv_mode(args.conv_mode)  # an unknown template fails here, listing the valid ones
    rows = get_chunk(task.read_questions(os.path.expanduser(args.question_file)), chunk.n, chunk.k)
    items = [item for row in rows for item in task.to_items(row, args)]
    answers_path = _answers_path(args, chunk)
    stats = RunStats(errors_file=errors_path(answers_path))
    with AnswerFile(answers_path, task.key_fields, settings_id(run_settings(args)), args.overwrite) as answers, \
            ErrorLog(stats.errors_file) as errors:
        pending = answers.pending(items)
        stats.already_answered = len(items) - len(pending)
        for kept, total in answers.existing_image_tokens:
            stats.kept_image_tokens.append(kept)
            stats.image_tokens.append(total)
        if pending:
            _check_image_folder(os.path.expanduser(args.image_folder), pending)
            _answer(task, args, chunk, pending, answers, errors, stats)
    stats.skipped, stats.too_long = errors.count, errors.too_long
    if chunk.from_rank and chunk.n > 1:
        _merge_rank_files(args, chunk)
    stats.seconds = time.perf_counter() - start
    return stats


def _answer(task: Task, args: argparse.Namespace, chunk: Chunk, pending: list[Item], answers: AnswerFile,
            errors: ErrorLog, stats: RunStats) -> None:
    """Load the model and answer `pending`, writing each answer (or error) as it comes."""
    if any(item.videos for item in pending):
        check_takes_video(args.model_path)
    device = local_device(args.device, chunk)
    loaded = load_model(args, device)
    model = loaded.model
    if task.model_text is not None:
        pending = [dataclasses.replace(it, text=task.model_text(it.text, model.config, args)) for it in pending]
    model_id = get_model_name_from_path(args.model_path)
    gen_kwargs = generation_kwargs(args)
    torch.manual_seed(args.seed)
    num_workers = args.num_workers if args.num_workers is not None else (task.num_workers if model.device.type == "cuda" else 0)
    dataset = PromptDataset(pending, loaded, loaded.conv_mode(args.conv_mode, model_id))
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=num_workers, collate_fn=_single)
    with logging_redirect_tqdm(), tqdm(total=len(pending), disable=not chunk.is_first, desc="answering") as bar:
        for window in windows(loader, args.batch_size):
            window = [refuse_too_long(prepared, model) for prepared in window]
            answered = answer_window(loaded, window, args.batch_size, gen_kwargs)
            # Written in question order, so the answers file is the same at every batch size.
            for prepared in window:
                item = pending[prepared.index]
                if prepared.error is not None:
                    errors.add(item, prepared.error)
                else:
                    answers.write(answer_line(item, answered[prepared.index], model_id, answers.settings))
                    stats.add(answered[prepared.index])
                bar.update()


def refuse_too_long(prepared: Prepared, model) -> Prepared:
    """The item with `error` set when its spliced prompt is longer than the model's context
    (`tokenizer_model_max_length`): LLaVA would cut the sequence there, losing the question after the image,
    so the question is skipped and recorded (docs/Evaluation.md, "Prompts longer than the context")."""
    limit = getattr(model.config, "tokenizer_model_max_length", None)
    if prepared.error is not None or limit is None or prepared.inputs.sequence_length <= limit:
        return prepared
    inputs = prepared.inputs
    return dataclasses.replace(prepared, error=(
        f"{TOO_LONG}: the prompt is {inputs.sequence_length} tokens ({sum(inputs.image_tokens)} of them image "
        f"tokens), more than the model's tokenizer_model_max_length of {limit}; it would be cut, losing the question"))


# Questions are grouped by length within a window of this many batches; a window's answers are written
# together, so a stopped run loses at most one window.
BATCHES_PER_WINDOW = 4


def windows(prepared: Iterable, batch_size: int) -> Iterator[list]:
    """Consecutive windows of `BATCHES_PER_WINDOW` batches of `prepared` items (the last one shorter)."""
    size = batch_size * BATCHES_PER_WINDOW
    window = []
    for item in prepared:
        window.append(item)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def answer_window(loaded: LoadedModel, window: Sequence[Prepared], batch_size: int, gen_kwargs: dict
                  ) -> dict[int, Generation]:
    """Answer a window's readable items in batches of prompts of similar length: {item index: Generation}."""
    ready = sorted((p for p in window if p.error is None), key=lambda p: p.inputs.sequence_length)
    answered = {}
    for start in range(0, len(ready), batch_size):
        batch = ready[start : start + batch_size]
        for prepared, answer in zip(batch, generate_answers(loaded, [p.inputs for p in batch], gen_kwargs)):
            answered[prepared.index] = answer
    return answered


def answer_line(item: Item, answer: Generation, model_id: str, settings: str) -> dict[str, Any]:
    """LLaVA's answer line, plus the image tokens the pruning kept and the settings fingerprint."""
    metadata = {
        "image_tokens_kept": answer.kept_image_tokens,
        "image_tokens": answer.image_tokens,
        "settings_id": settings,
    }
    return {**item.record, "text": answer.text, "answer_id": shortuuid.uuid(), "model_id": model_id, "metadata": metadata}


def _merge_rank_files(args: argparse.Namespace, chunk: Chunk) -> None:
    """Under torchrun: once every rank is done, rank 0 concatenates the rank files in rank order."""
    answers = os.path.expanduser(args.answers_file)
    parts = [chunk_answers_path(answers, chunk.n, k) for k in range(chunk.n)]
    if not wait_for_all_ranks():
        logger.info("no launcher rendezvous (MASTER_ADDR): merge %s ... in rank order into %s yourself", parts[0], answers)
    elif chunk.k == 0:
        merge_chunks(parts, answers)
        logger.info("merged %d rank files into %s", chunk.n, answers)


def main(task: Task, argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser(task).parse_args(argv)
    try:
        stats = run(task, args)
    except (FileNotFoundError, ValueError, OutputError) as exc:  # bad input or output: one clear line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(stats.summary())
    return 0
