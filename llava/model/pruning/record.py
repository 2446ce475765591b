"""`PruningRecord`: the pruning state of one generate / forward call, settings in and kept tokens out.

The record rides along the generate kwargs, so the prefill fills it and every decoding step of the same call
reads it back; concurrent calls never share state and `model.config` is never written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from llava.model.pruning.config import PruningSettings

ImageSpan = tuple[int, int]  # (start, length) of one image's tokens in the spliced sequence


class _UseModelConfig:
    """Type of `USE_MODEL_CONFIG`; one instance, so `record.dart_config is USE_MODEL_CONFIG` is the test."""

    def __repr__(self) -> str:
        return "USE_MODEL_CONFIG"


# PruningRecord.dart_config's default: "not set for this call, read model.config.DART_config at prefill".
# Distinct from None, which means "no pruning for this call" (as DART_config = None does model-wide).
USE_MODEL_CONFIG = _UseModelConfig()


@dataclasses.dataclass(frozen=True)
class PrunedStage:
    """What one pruning stage kept: layers from `layer` on (up to the next stage) see the `keep` tokens.

    keep: (B, L') absolute positions in the prefill sequence, ascending per row, left-padded when rows keep
        different numbers of tokens; keep_valid: (B, L') bool marking the real entries, or None if none is padding.
    position_shift: (B,) when the stage renumbered the kept tokens' positions (PyramidDrop, SparseVLM as
        released): how many real prefill tokens were dropped up to this stage less the tokens inserted, which a
        decoding step's position loses in the stage's layers; None when the kept tokens keep their original
        positions.
    inserted: (B, L') bool marking the entries that are not prefill tokens but tokens a method inserted (this
        stage or an earlier one; SparseVLM's recycled clusters), or None if there are none. Such an entry's `keep`
        is the prefill position of its image's last token, so rows stay non-decreasing, an inserted token falls
        in its image's span and gathering the prefill's padding mask or labels through `keep` reads that token's.
    """

    layer: int
    keep: torch.Tensor
    keep_valid: torch.Tensor | None = None
    position_shift: torch.Tensor | None = None
    inserted: torch.Tensor | None = None


@dataclasses.dataclass(frozen=True)
class ImageReduction:
    """What a method before the language model (VisionZip, DivPrune, pooling) made of one image: it had
    `original_tokens` tokens and its span holds what the method left; `kept_patches` are the offsets of
    the tokens kept when they are a subset of the image's (ascending), None when they were pooled or merged."""

    original_tokens: int
    kept_patches: torch.Tensor | None = None


@dataclasses.dataclass
class PruningRecord:
    """Pruning state of one call. Users read the helpers (or `keep`) afterwards.

    keep: (B, L') absolute positions, in the prefill sequence, of the tokens the last layers see (after the
        last pruning stage). Each row is ascending; when samples keep different numbers of tokens the shorter
        rows are left-padded and `keep_valid` marks the real entries (None when no row is padded).
    keep_valid: (B, L') bool, False on the padding of ragged rows, or None.
    layer: the first pruning layer K (layers >= K see fewer tokens). keep, keep_valid and layer are read off
    stages: every stage, in layer order (one for DART), filled at prefill.
    forced_keep: if set before the call, used instead of running the pruning method: a (B, L') tensor, a
        (L',) tensor for every row, or one tensor per row (rows may differ in length). Positions past a row's
        last forced position (e.g. generated tokens in a longer sequence) are kept too.
    dart_config: this call's pruning settings, read at prefill: a `PruningSettings` or a `DART_config` dict
        (validated against the model's depth then; a bad key raises PruningConfigError, a ValueError),
        None for "no pruning in this call", or `USE_MODEL_CONFIG` (the default) for `model.config.DART_config`.
    prefill_length: the length L of the prefill sequence (padding included).
    image_spans: per sample, the (start, length) of each image in the prefill sequence.
    selection_seconds: time the selection took at prefill (method and bookkeeping, not the layers); for a
        method before the language model, the reduction's time (the vision tower's not included).
    image_reductions: per sample, per image, what a method before the language model did (None: no such
        method ran); filled when the images are spliced, so `image_spans` then hold the reduced lengths.
    instructions: set before the call, per sample, the instruction (the question) its images are pruned for, by
        a method conditioned on it (CDPruner); None: not given.
    """

    stages: list[PrunedStage] = dataclasses.field(default_factory=list)
    prefill_length: int | None = None
    image_spans: list[list[ImageSpan]] | None = None
    selection_seconds: float = 0.0
    forced_keep: torch.Tensor | Sequence[torch.Tensor] | None = None
    dart_config: PruningSettings | Mapping[str, Any] | None | _UseModelConfig = USE_MODEL_CONFIG
    image_reductions: list[list[ImageReduction]] | None = None
    instructions: Sequence[str] | None = None

    def start_prefill(self, length: int) -> None:
        """Forget what an earlier call using this record kept (its settings and forced_keep stay, and so do
        the image reductions of this call's splice, which come before it)."""
        self.stages = []
        if self.image_reductions is None:
            self.selection_seconds = 0.0
        self.prefill_length = length

    @property
    def keep(self) -> torch.Tensor | None:
        return self.stages[-1].keep if self.stages else None

    @property
    def keep_valid(self) -> torch.Tensor | None:
        return self.stages[-1].keep_valid if self.stages else None

    @property
    def layer(self) -> int | None:
        return self.stages[0].layer if self.stages else None

    @property
    def pruned(self) -> bool:
        """Whether the language model saw fewer image tokens than the images have (at some layer)."""
        return self.keep is not None or self.image_reductions is not None

    @property
    def batch_size(self) -> int:
        if self.keep is not None:
            return self.keep.shape[0]
        return len(self.image_spans or [[]])

    def kept_positions(self, sample: int = 0) -> torch.Tensor:
        """Absolute positions of sample's prefill tokens that the last layers see, ascending, without padding
        (and without the tokens a method inserted: `num_inserted_tokens`)."""
        if self.keep is None:
            raise ValueError("nothing was pruned in this call: every position was kept")
        row = self.keep[sample].cpu()
        real = torch.ones_like(row, dtype=torch.bool)
        if self.keep_valid is not None:
            real = real & self.keep_valid[sample].cpu().bool()
        if self.stages[-1].inserted is not None:
            real = real & ~self.stages[-1].inserted[sample].cpu()
        return row[real]

    def num_inserted_tokens(self, sample: int = 0) -> int:
        """Tokens of `sample` the last layers see that a method inserted (not prefill tokens)."""
        stage = self.stages[-1] if self.stages else None
        if stage is None or stage.inserted is None:
            return 0
        inserted = stage.inserted[sample].cpu()
        if stage.keep_valid is not None:
            inserted = inserted & stage.keep_valid[sample].cpu().bool()
        return int(inserted.sum())

    def kept_image_positions(self, sample: int = 0) -> list[torch.Tensor | None]:
        """Per image of `sample`: the kept tokens' offsets inside that image (patch indices, row-major);
        None for an image whose tokens a method before the language model pooled or merged."""
        if self.image_reductions is not None:
            return [r.kept_patches.cpu() if r.kept_patches is not None else None
                    for r in self.image_reductions[sample]]
        spans = (self.image_spans or [[]])[sample]
        if self.keep is None:
            return [torch.arange(length) for _, length in spans]
        keep = self.kept_positions(sample)
        return [keep[(keep >= start) & (keep < start + length)] - start for start, length in spans]

    def num_kept_image_tokens(self, sample: int = 0) -> int:
        """Image tokens of `sample` the last layers see, the inserted ones included (every method inserting
        tokens inserts them into an image, and SparseVLM counts its recycled tokens so)."""
        spans = (self.image_spans or [[]])[sample]
        if self.keep is None:
            return sum(length for _, length in spans)
        keep = self.kept_positions(sample)
        kept = sum(int(((keep >= start) & (keep < start + length)).sum()) for start, length in spans)
        return kept + self.num_inserted_tokens(sample)

    def num_image_tokens(self, sample: int = 0) -> int:
        """Image tokens of `sample` before any pruning."""
        if self.image_reductions is not None:
            return sum(r.original_tokens for r in self.image_reductions[sample])
        return sum(length for _, length in (self.image_spans or [[]])[sample])
