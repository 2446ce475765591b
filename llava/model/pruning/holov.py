"""HoloV (Zou et al., "Don't Just Chase 'Highlighted Tokens' in MLLMs: Revisiting Visual Holistic Context
Retention", NeurIPS 2025, arXiv 2510.02912), as a reducer before the language model.

As the official code does (github.com/obananas/HoloV, `llava/model/utils.py` `HoloV`, called from
`llava_arch.py` `prepare_inputs_labels_for_multimodal` with num_patches=16, on the projected features and the
vision tower's [CLS] attention over the patches at the select layer, averaged over the heads):
1. the image's n tokens (row-major) are cut into 16 consecutive chunks ("patches") of n // 16 tokens, the first
   n % 16 chunks one token longer;
2. in a chunk of c > 1 tokens, with S the cosine similarities of its projected tokens (norm + 1e-6) and the
   diagonal zeroed: mean_i = sum_j S_ij / (c - 1), var_i = sum_j (S_ij - mean_i)^2 / (c - 1) (the zeroed
   diagonal included); a = 1000 * attention; token score = a + 0.09 * var * mean|a| / (mean|var| + 1e-6);
   the chunk's score is the mean of its tokens' (a chunk of one token scores its attention);
3. each chunk gets floor(T * score / (sum of scores + 1e-6)) tokens, then the chunks with the largest weights
   one more each until T are allotted;
4. a chunk allotted at least its size keeps all its tokens, in order; another keeps its top-attention tokens
   in descending attention order (torch.topk's order), as the official code concatenates them;
5. fewer than T tokens (a chunk allotted more than its size) are padded with zero vectors up to T, as the
   official code does; more are cut to T.
T is the count DART keeps with the same settings (the official scripts hard-code 64).

Differences: the [CLS] attention is computed in float32 and summed over the heads by the tower
(`SelectLayerOutputs`); it is divided here by the head count (the tower's width over its head size) for the
official head mean; it and the scores are computed in float32 where the official code runs in the model's
half precision, so near-ties may order differently. LLaVA-1.6 (anyres)
images are refused: the official code applies the same rule to the base crop and the unpadded crops
concatenated without newline tokens, which this engine's merged features (with newlines) are not.
The official Qwen2.5-VL variant (`qwen-model-HoloV/`) is not implemented.
"""

from __future__ import annotations

import torch

from llava.model.pruning.config import PruningSettings, dart_kept_count
from llava.model.pruning.methods import PruningInput, PruningMethod, ReducedImage, VisionInputs, register_method

NUM_PATCHES = 16
ALPHA = 0.09
EPS = 1e-6


def chunk_bounds(count: int, chunks: int = NUM_PATCHES) -> list[tuple[int, int]]:
    """[start, end) of each non-empty chunk: count // chunks tokens, the first count % chunks one more."""
    size, remainder = divmod(count, chunks)
    bounds, start = [], 0
    for index in range(chunks):
        end = start + size + (1 if index < remainder else 0)
        if end > start:
            bounds.append((start, end))
        start = end
    return bounds


def chunk_score(tokens: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """One chunk's score: the mean of its tokens' attention plus scaled similarity variance."""
    size = tokens.shape[0]
    if size <= 1:
        return attention.mean()
    normalized = tokens / (tokens.norm(dim=1, keepdim=True) + EPS)
    similarity = (normalized @ normalized.T) * (1 - torch.eye(size, device=tokens.device, dtype=tokens.dtype))
    mean = similarity.sum(dim=1) / (size - 1)
    variance = ((similarity - mean.unsqueeze(1)) ** 2).sum(dim=1) / (size - 1)
    scaled = attention * 1e3
    variance = variance * (scaled.abs().mean() / (variance.abs().mean() + EPS))
    return (scaled + ALPHA * variance).mean()


def allot(scores: torch.Tensor, total: int) -> torch.Tensor:
    """Tokens per chunk: floors of the weighted share, the remainder to the largest weights, one each."""
    weights = scores / (scores.sum() + EPS)
    allotted = (weights * total).floor().long()
    remaining = total - int(allotted.sum())
    if remaining > 0:
        allotted[weights.topk(min(remaining, weights.numel())).indices] += 1
    return allotted


def holov_tokens(features: torch.Tensor, attention: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The T tokens HoloV gives one image, and the offsets of the patches they are (-1 for zero padding)."""
    bounds = chunk_bounds(features.shape[0])
    scores = torch.stack([chunk_score(features[s:e], attention[s:e]) for s, e in bounds])
    picked = []
    for (start, end), count in zip(bounds, allot(scores, total).tolist()):
        if count <= 0:
            continue
        if count >= end - start:
            picked.append(torch.arange(start, end, device=features.device))
        else:
            picked.append(attention[start:end].topk(count).indices + start)
    offsets = torch.cat(picked)[:total] if picked else torch.zeros(0, dtype=torch.long, device=features.device)
    tokens = features[offsets]
    if offsets.numel() < total:
        missing = total - offsets.numel()
        tokens = torch.cat([tokens, tokens.new_zeros(missing, features.shape[1])])
        offsets = torch.cat([offsets, offsets.new_full((missing,), -1)])
    return tokens, offsets


def reduce(inputs: VisionInputs, cfg: PruningSettings) -> ReducedImage:
    if inputs.cls_attention is None or inputs.grid is None:
        raise ValueError("HoloV needs each image as one crop of the vision tower (LLaVA-1.5's 'pad' or square "
                         "images); this image's tokens are several crops merged (anyres)")
    features = inputs.features
    total = dart_kept_count(features.shape[0], cfg, llava_next=inputs.llava_next)
    heads = inputs.tower_features.shape[-1] // inputs.tower_keys.shape[-1]
    attention = inputs.cls_attention.float() / heads  # the official mean over the heads
    tokens, offsets = holov_tokens(features.float(), attention, total)
    # The tokens are in the official order (not ascending), so they are not reported as a subset of patches.
    return ReducedImage(tokens.to(features.dtype))


METHOD = register_method(PruningMethod(
    name="holov",
    reduce=reduce,
    one_crop=True,
    inputs=frozenset({PruningInput.VISION_CLS_ATTENTION}),
    summary="before the language model, a token budget spread over 16 chunks of the image by attention and "
            "similarity variance, top [CLS] attention within each (arXiv 2510.02912)",
))
