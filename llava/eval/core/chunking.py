"""Which slice of a question file one worker answers, and where its answers go.

LLaVA splits the questions into `--num-chunks` contiguous chunks of ceil(n / chunks) questions and worker
`--chunk-idx` answers one of them; the benchmark scripts concatenate the chunk files in chunk order, which
gives back the unchunked order. We keep exactly that split, so chunk files of either codebase line up.
Under torchrun / accelerate launch (RANK and WORLD_SIZE set, no chunk flags) the chunk is the rank's.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")

# A rank that finishes early waits for the others at the end of a torchrun run; a long benchmark on
# unevenly fast GPUs can take hours, so the default (30 min) collective timeout is too short.
RANK_WAIT_TIMEOUT = timedelta(hours=12)


def split_list(items: Sequence[T], n: int) -> list[Sequence[T]]:
    """LLaVA's split: contiguous chunks of ceil(len / n) items (10 items, n=3 -> 4, 4, 2).

    There can be fewer than n chunks (10 items, n=6 -> five chunks of 2); see `get_chunk`.
    """
    if n < 1:
        raise ValueError(f"--num-chunks must be >= 1, got {n}")
    size = math.ceil(len(items) / n)
    return [items[i : i + size] for i in range(0, len(items), size)] if size else []


def get_chunk(items: Sequence[T], n: int, k: int) -> Sequence[T]:
    """Chunk k of `split_list(items, n)`; empty where the ceil split leaves chunk k without items
    (LLaVA raises IndexError there, which would fail a multi-GPU run for a short question file)."""
    if not 0 <= k < n:
        raise ValueError(f"--chunk-idx must be in 0..{n - 1}, got {k}")
    chunks = split_list(items, n)
    return chunks[k] if k < len(chunks) else items[:0]


@dataclasses.dataclass(frozen=True)
class Chunk:
    """This worker's chunk: index `k` of `n`; `from_rank` when it came from RANK / WORLD_SIZE."""

    n: int = 1
    k: int = 0
    from_rank: bool = False

    @property
    def is_first(self) -> bool:
        """Chunk 0 plays "rank 0": it alone shows a progress bar."""
        return self.k == 0


def resolve_chunk(num_chunks: int | None, chunk_idx: int | None, env: Mapping[str, str] = os.environ) -> Chunk:
    """The chunk flags if either is given (defaults 1 and 0, as in LLaVA), else the launcher's rank."""
    if num_chunks is not None or chunk_idx is not None:
        chunk = Chunk(num_chunks if num_chunks is not None else 1, chunk_idx if chunk_idx is not None else 0)
    elif "RANK" in env and "WORLD_SIZE" in env:
        chunk = Chunk(int(env["WORLD_SIZE"]), int(env["RANK"]), from_rank=True)
    else:
        chunk = Chunk()
    if chunk.n < 1 or not 0 <= chunk.k < chunk.n:
        source = "RANK / WORLD_SIZE" if chunk.from_rank else "--chunk-idx / --num-chunks"
        raise ValueError(f"chunk {chunk.k} of {chunk.n} is out of range (from {source})")
    return chunk


def chunk_answers_path(answers_file: str, n: int, k: int) -> str:
    """`answers/x.jsonl` -> `answers/x.chunks/{n}_{k}.jsonl` (LLaVA's chunk file names, in a folder of their own
    so that scorers reading `answers/*.jsonl` never see them). scripts/eval_lib.sh uses the same layout."""
    return os.path.join(answers_file.removesuffix(".jsonl") + ".chunks", f"{n}_{k}.jsonl")


_CHUNK_NAME = re.compile(r"\d+_\d+\.jsonl")


def merged_answers_path(path: str) -> str | None:
    """The answers file a chunk file laid out by `chunk_answers_path` is merged into (`answers/x.chunks/2_0.jsonl`
    -> `answers/x.jsonl`); None for any other path."""
    folder, name = os.path.split(path)
    if not folder.endswith(".chunks") or not _CHUNK_NAME.fullmatch(name):
        return None
    return folder.removesuffix(".chunks") + ".jsonl"


def local_device(device: str, chunk: Chunk, env: Mapping[str, str] = os.environ) -> str:
    """Under a launcher every rank sees all GPUs: a plain "cuda" becomes the rank's own `cuda:LOCAL_RANK`."""
    if device == "cuda" and chunk.from_rank and "LOCAL_RANK" in env:
        return f"cuda:{int(env['LOCAL_RANK'])}"
    return device


def wait_for_all_ranks(env: Mapping[str, str] = os.environ) -> bool:
    """Block until every rank got here; False when there is no launcher rendezvous (MASTER_ADDR) to use.

    A CPU-only gloo group suffices: nothing but this barrier is communicated.
    """
    if "MASTER_ADDR" not in env or "MASTER_PORT" not in env:
        return False
    import torch.distributed as dist

    if not dist.is_available():
        return False
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", timeout=RANK_WAIT_TIMEOUT)
    try:
        dist.barrier()
    finally:
        if created:
            dist.destroy_process_group()
    return True
