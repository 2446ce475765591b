"""Methods that reduce the image before the language model (DivPrune, pooling) on Qwen2-VL, Qwen2.5-VL and Qwen3-VL.

What a method sees: one image's merged tokens, the 2x2-merged grid the language model gets (`image_grid_thw` (1, h, w)
-> (h/2) x (w/2) tokens, row-major), as `VisionInputs(features, grid=(h/2, w/2))`, the features the library's
`get_image_features` returns for that image. Its budget is the count DART keeps of that image's m tokens under the
Qwen rule (the reduction ratio alone: 4 + 8 * int(m * (1 - r) / 8) with the default pivots), since the settings go
through `QwenVLBackend.adapt_settings` as DART's do.

At prefill (`reduce_qwen_prompt`), per prompt and per image on its own:
- the 3-D M-RoPE positions are computed on the full prompt with the library's `get_rope_index`; a kept token keeps
  its own column, so RoPE sees what it would see unpruned; text keeps its positions too;
- a pooled token (a reducer that merges tokens returns no kept offsets) gets the mean of the positions of the tokens
  it pools, each of (t, h, w) rounded half up: the same reducer is applied to the positions, which for average
  pooling is the mean over its window. This holds for reducers whose merge does not depend on the features (average
  pooling); a merge that does would need its own rule;
- Qwen3-VL's DeepStack features follow: a kept token gets its own, a pooled token its window's pooled the same way
  (the same reducer on each DeepStack level), and the library builds `visual_pos_masks` from the shortened ids;
- each image's run of `<|image_pad|>` is shortened to the kept count, rows are left-padded.
The library's forward then gets the shortened `input_ids`, `mm_token_type_ids`, mask, the gathered positions and
the reduced features as `mm_encoder_outputs` (it scatters them and runs DeepStack itself). Decoding continues from
the last prompt position as unpruned (generate extends the given positions by one per step), and `rope_deltas` is
set so that the library's own fallback (positions from the cache length) gives the same positions.

VisionZip is refused: its dominant tokens are the ones the vision tower's [CLS] token attends to most, and the Qwen
ViT has no [CLS] token. The VisionZip authors later published a Qwen2.5-VL variant built on the attention inside
that ViT; its code is not in the snapshot of the official repository read here, so its rule is not restated.
"""

from __future__ import annotations

import dataclasses

import torch

from llava.model.language_model.pruned_generation import vision_spans
from llava.model.pruning.methods import PruningInput, PruningMethod, VisionInputs, reduce_images
from llava.model.pruning.record import ImageReduction, PruningRecord

# Why VisionZip (or any method that declares the tower's [CLS] inputs, VISION_CLS_ATTENTION) does not run here.
NO_CLS_REFUSAL = ("pruning method {name!r} reads the vision tower's [CLS] token (its attention over the patches at the "
                  "select layer), and the Qwen2-VL / Qwen2.5-VL / Qwen3-VL vision tower has no [CLS] token: it does "
                  "not run on these models (divprune and pooling do)")


@dataclasses.dataclass
class ReducedQwenPrompt:
    """A batch whose images a method before the language model reduced, as the library's forward takes it."""

    input_ids: torch.Tensor  # (B, L') each image's run of <|image_pad|> shortened to its kept count, left-padded
    attention_mask: torch.Tensor  # (B, L')
    mm_token_type_ids: torch.Tensor  # (B, L')
    position_ids: torch.Tensor  # (4, B, L'): the rows' own text positions, then the full prompt's 3-D ones gathered
    rope_deltas: torch.Tensor  # (B, 1): next position minus the shortened row's length, as the library caches it
    encoder_outputs: object  # the library's image feature output, holding the reduced features per image
    reductions: list[list[ImageReduction]]  # per row, per image

    def model_inputs(self) -> dict:
        """The keyword arguments of the library's forward (or generate) for this prompt."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "mm_token_type_ids": self.mm_token_type_ids, "position_ids": self.position_ids,
                "mm_encoder_outputs": {"image": self.encoder_outputs}}


# Methods refused on these models for a reason of their own (checked before the [CLS] rule).
REFUSED_ON_QWEN = {
    "cdpruner": "pruning method 'cdpruner' embeds the instruction with the text half of the vision tower's CLIP "
                "checkpoint (its official LLaVA code), and the Qwen2-VL / Qwen2.5-VL / Qwen3-VL vision tower is no "
                "CLIP: there is no text half to load; its Qwen variant is not implemented (divprune and pooling run)",
}


def check_runs_on_qwen(method: PruningMethod) -> None:
    if method.name in REFUSED_ON_QWEN:
        raise ValueError(REFUSED_ON_QWEN[method.name])
    if PruningInput.VISION_CLS_ATTENTION in method.inputs:
        raise ValueError(NO_CLS_REFUSAL.format(name=method.name))


def merged_grids(image_grid_thw: torch.Tensor, merge: int) -> list[tuple[int, int] | None]:
    """Per image, the (rows, cols) of its merged tokens; None for a grid of several temporal patches."""
    return [(h // merge, w // merge) if t == 1 else None for t, h, w in image_grid_thw.tolist()]


def pooled_positions(method: PruningMethod, settings, positions: torch.Tensor, grid) -> torch.Tensor:
    """(3, n') positions of an image's merged tokens: the (3, m) `positions` put through the same reducer (the mean
    over each pooling window), rounded half up."""
    mean = method.reduce(VisionInputs(positions.T.double(), grid), settings).features
    return torch.floor(mean + 0.5).long().T.to(positions.dtype)


def reduce_qwen_prompt(model, input_ids, attention_mask, mm_token_type_ids, pixel_values, image_grid_thw,
                       method: PruningMethod, settings, record: PruningRecord) -> ReducedQwenPrompt:
    """The batch with every image reduced by `method` (see the module docstring); fills the record's
    `image_reductions` and `selection_seconds`. `model`: a Qwen generation class (its `.model` the library's)."""
    check_runs_on_qwen(method)
    if mm_token_type_ids is None:
        raise ValueError("reducing the images of a Qwen-VL prompt needs `mm_token_type_ids` (the processor returns it "
                         "beside input_ids): the 3-D positions are computed from it")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    mask = attention_mask.bool()
    encoded = model.model.get_image_features(pixel_values, image_grid_thw, return_dict=True)
    features = list(encoded.pooler_output)
    deepstack = getattr(encoded, "deepstack_features", None)
    grids = merged_grids(image_grid_thw, model.config.vision_config.spatial_merge_size)
    reduced, reductions, seconds = reduce_images([(f, g, None) for f, g in zip(features, grids)], method, settings,
                                                 False, None)
    positions, deltas = model.model.get_rope_index(input_ids, mm_token_type_ids=mm_token_type_ids,
                                                   image_grid_thw=image_grid_thw, attention_mask=attention_mask)
    image_type = 1  # the processor's mm_token_type_ids: text 0, image 1, video 2
    reduced_deepstack = [[] for _ in deepstack] if deepstack is not None else None
    rows, row_reductions, next_image = [], [], 0
    for b in range(input_ids.shape[0]):
        ids, types, pos = input_ids[b][mask[b]], mm_token_type_ids[b][mask[b]], positions[:, b][:, mask[b]]
        pieces, cursor = [], 0
        runs = vision_spans(types[None], (image_type,))[0]
        for image, (start, count) in enumerate(runs, start=next_image):
            if image >= len(features) or count != features[image].shape[0]:
                have = features[image].shape[0] if image < len(features) else "no"
                raise ValueError(f"an image has {count} image tokens in the prompt but {have} features")
            kept = reductions[image].kept_patches
            if kept is not None:
                image_pos = pos[:, start + kept.to(pos.device)]
            else:
                image_pos = pooled_positions(method, settings, pos[:, start : start + count], grids[image])
            for level, level_features in enumerate(deepstack or ()):
                own = level_features[image]
                reduced_deepstack[level].append(
                    own[kept.to(own.device)] if kept is not None
                    else method.reduce(VisionInputs(own, grids[image]), settings).features)
            n = reduced[image].shape[0]
            if image_pos.shape[1] != n:
                raise RuntimeError(f"{method.name!r} made {n} tokens of an image but {image_pos.shape[1]} positions")
            pieces.append((ids[cursor:start], types[cursor:start], pos[:, cursor:start]))
            pieces.append((ids.new_full((n,), int(ids[start])), types.new_full((n,), image_type), image_pos))
            cursor = start + count
        pieces.append((ids[cursor:], types[cursor:], pos[:, cursor:]))
        rows.append(tuple(torch.cat(part, dim=-1) for part in zip(*pieces)))
        row_reductions.append(reductions[next_image : next_image + len(runs)])
        next_image += len(runs)
    if next_image != len(features):
        raise ValueError(f"the prompts have {next_image} images but {len(features)} were given")
    record.image_reductions = row_reductions
    record.selection_seconds = seconds
    outputs = {"pooler_output": tuple(reduced)}
    if deepstack is not None:
        outputs["deepstack_features"] = [tuple(level) for level in reduced_deepstack]
    short = _left_padded(rows, input_ids, attention_mask)
    removed = mask.sum(1) - short[1].sum(1)
    return ReducedQwenPrompt(*short, rope_deltas=deltas + removed.to(deltas.device).view(-1, 1),
                             encoder_outputs=type(encoded)(**outputs), reductions=row_reductions)


def _left_padded(rows, input_ids, attention_mask):
    """(ids, mask, token types, (4, B, L') positions) of the shortened rows, left-padded as the input was: padding
    with the input's own padding id, position 0 and type 0, as the library's get_rope_index leaves padding."""
    longest = max(ids.numel() for ids, _, _ in rows)
    padding = input_ids[~attention_mask.bool()]
    pad = int(padding[0]) if padding.numel() else 0
    batch = len(rows)
    ids = input_ids.new_full((batch, longest), pad)
    mask = attention_mask.new_zeros((batch, longest))
    types = rows[0][1].new_zeros((batch, longest))
    pos = rows[0][2].new_zeros((3, batch, longest))
    for b, (row_ids, row_types, row_pos) in enumerate(rows):
        offset = longest - row_ids.numel()
        ids[b, offset:], types[b, offset:], pos[:, b, offset:], mask[b, offset:] = row_ids, row_types, row_pos, 1
    # The text positions the library's generate puts first (used for the mask, not for RoPE): each row's own count.
    text = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0).to(pos.dtype)
    return ids, mask, types, torch.cat([text[None], pos], dim=0)


def generate_reduced(model, library_generate, args, kwargs, method: PruningMethod, settings, record: PruningRecord):
    """`library_generate` on the prompt with its images reduced; returns the caller's prompt, then the new tokens."""
    from llava.model.language_model.llava_hf import _with_prompt

    check_runs_on_qwen(method)
    if kwargs.get("pixel_values_videos") is not None:
        raise ValueError(f"pruning method {method.name!r} reduces images before the language model; on Qwen-VL "
                         "models it does not reduce videos yet: use a method inside the language model (e.g. dart)")
    input_ids = args[0] if args else kwargs.get("input_ids")
    if kwargs.get("pixel_values") is None or input_ids is None:
        return library_generate(*args, pruning_record=record, **kwargs)
    kwargs.pop("input_ids", None)
    reduced = reduce_qwen_prompt(model, input_ids, kwargs.pop("attention_mask", None),
                                 kwargs.pop("mm_token_type_ids", None), kwargs.pop("pixel_values"),
                                 kwargs.pop("image_grid_thw", None), method, settings, record)
    # Positions are given, so generate does not compute (and cache) rope_deltas itself: cache the full prompt's.
    model.model.rope_deltas = reduced.rope_deltas
    output = library_generate(*args[1:], pruning_record=record, **reduced.model_inputs(), **kwargs)
    return _with_prompt(output, input_ids, reduced.input_ids.shape[1])
