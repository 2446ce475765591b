"""CDPruner (Zhang et al., "Beyond Attention or Similarity: Maximizing Conditional Diversity for Token Pruning in
MLLMs", NeurIPS 2025, arXiv 2506.10967), as a reducer before the language model.

As the official code does for LLaVA (`LlavaMetaForCausalLM.encode_images` in its `llava/model/llava_arch.py`,
`CLIPVisionTower.load_text_tower` / `forward` in its `clip_encoder.py`):
1. similarity: cosine similarity of the image's projected tokens (normalised in their dtype, then float32);
2. relevance to the instruction: the tower's select-layer patches through its `post_layernorm` and the CLIP
   checkpoint's `visual_projection` (float32), against the instruction embedded by the text half of the same
   CLIP checkpoint (`CLIPTextModelWithProjection`, float32, its tokenizer; the text untruncated, zero-padded to
   whole 77-token segments, one embedding per segment); relevance = min-max of minus the cosine averaged over
   the segments: (r - min + 1e-6) / (max - min) (the official negation: CLIP's patch tokens are inversely
   aligned with text); no `theta` (the official code leaves it commented out);
3. kernel L = diag(relevance) S diag(relevance); its MAP by the fast greedy algorithm with Cholesky updates:
   pick argmax of the residual d_j^2, e = (L_j - c_j . C) / d_j, d^2 -= e^2, T times;
4. the T picked tokens in their order in the image.

The instruction is the question of the image's prompt, as the official evaluation passes it (`texts=question`,
the question file's text: no image token, no conversation template): the caller sets it per sample in
`PruningRecord.instructions`; without it CDPruner refuses to run.

T is the count DART keeps with the same settings (`dart_kept_count`). The kernel's rank is at most the feature
width: once the picked tokens span every remaining one, the residuals are rounding noise, or negative, and the
official code then picks by noise (or NaN). We stop the greedy pass when the best residual is at most
`EXHAUSTED` times the first pick's and fill the rest by relevance (the kernel's diagonal), highest first.
Each image must be one crop of the tower (LLaVA-1.5): the official LLaVA-1.6 code keeps T per crop with one
relevance range over all crops, which the shared budget (one count per image) does not express.
"""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, CLIPTextModelWithProjection, CLIPVisionModelWithProjection

from llava.model.pruning.config import PruningSettings, dart_kept_count
from llava.model.pruning.methods import PruningInput, PruningMethod, ReducedImage, VisionInputs, register_method

# A residual this small relative to the first pick's is below float32 rounding of the kernel: the picks span it.
EXHAUSTED = 1e-6

_TEXT_HALVES: dict[tuple[str, str], tuple] = {}


def relevance_scores(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """(n,) the official relevance of each patch embedding (n, E) to the instruction's segments (M, E)."""
    image_embeds = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
    text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
    relevance = (-(image_embeds @ text_embeds.T)).mean(dim=-1)
    return (relevance - relevance.min() + 1e-6) / (relevance.max() - relevance.min())


def conditional_kernel(features: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """(n, n) float32 kernel from the projected tokens (n, D) and their relevance (n,)."""
    normed = (features / features.norm(dim=-1, keepdim=True)).float()
    similarity = normed @ normed.T
    return relevance.unsqueeze(1) * similarity * relevance.unsqueeze(0)


def greedy_map(kernel: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of `count` rows of the (n, n) kernel in the order fast greedy MAP inference picks them; once the
    kernel's rank is exhausted, the rest by its diagonal, largest first."""
    n = kernel.shape[0]
    count = min(count, n)
    # The official batched shapes (batch 1), so that the products reduce in the same order.
    kernel = kernel.unsqueeze(0)
    cis = torch.zeros((count, 1, n), device=kernel.device)
    di2s = torch.diagonal(kernel, dim1=1, dim2=2).clone()
    quality = di2s[0].clone()
    picked = torch.empty(count, dtype=torch.long, device=kernel.device)
    rows = torch.arange(1, device=kernel.device)
    first_gain = None
    for i in range(count):
        j = torch.argmax(di2s, dim=-1)
        gain = float(di2s[0, j[0]])  # a number, not a view of di2s, which changes below
        first_gain = gain if first_gain is None else first_gain
        if not gain > EXHAUSTED * first_gain:  # also NaN
            free = torch.ones(n, dtype=torch.bool, device=kernel.device)
            free[picked[:i]] = False
            rest = torch.nonzero(free).squeeze(1)
            picked[i:] = rest[quality[rest].argsort(descending=True, stable=True)[: count - i]]
            break
        picked[i] = j[0]
        eis = (kernel[rows, j] - torch.einsum("tb,tbn->bn", cis[:i, rows, j], cis[:i])) \
            / torch.sqrt(di2s[rows, j]).unsqueeze(-1)
        cis[i, :, :] = eis
        di2s -= torch.square(eis)
        di2s[rows, j] = -float("inf")
    return picked


def text_half(vision_tower) -> tuple:
    """(tokenizer, text model with projection, visual projection) of the tower's CLIP checkpoint, in float32 on
    the tower's device, loaded once per checkpoint and device (as the official `load_text_tower`). A tower that
    carries its own (`clip_text_half`, e.g. the prefill benchmark's stand-in) gives that."""
    own = getattr(vision_tower, "clip_text_half", None)
    if own is not None:
        return own
    name, device = vision_tower.vision_tower_name, vision_tower.device
    key = (str(name), str(device))
    if key not in _TEXT_HALVES:
        text, info = CLIPTextModelWithProjection.from_pretrained(name, dtype=torch.float32, output_loading_info=True)
        vision, vision_info = CLIPVisionModelWithProjection.from_pretrained(name, dtype=torch.float32,
                                                                            output_loading_info=True)
        # Random weights for a half the checkpoint lacks would rank at random without a word: refuse instead.
        missing = [k for k in info["missing_keys"] if "position_ids" not in k]
        missing += [k for k in vision_info["missing_keys"] if k.startswith("visual_projection")]
        if missing:
            raise ValueError(f"CDPruner embeds the instruction with the text half of the vision tower's CLIP "
                             f"checkpoint {name!r}, which lacks {sorted(missing)[:4]}")
        projection = vision.visual_projection.to(device).requires_grad_(False)
        del vision
        _TEXT_HALVES[key] = (AutoTokenizer.from_pretrained(name), text.to(device).eval().requires_grad_(False),
                             projection)
    return _TEXT_HALVES[key]


@torch.no_grad()
def instruction_embeds(tokenizer, text_model, instruction: str) -> torch.Tensor:
    """(M, E) the instruction's embeddings, one per 77-token segment, as the official tower computes them."""
    width = text_model.config.max_position_embeddings
    tokens = tokenizer(text=instruction, return_tensors="pt")
    segments = (tokens["input_ids"].shape[1] - 1) // width + 1
    padding = width * segments - tokens["input_ids"].shape[1]
    device = text_model.device
    tokens = {k: torch.cat([v, v.new_zeros((v.shape[0], padding))], dim=1).reshape(-1, width).to(device)
              for k, v in tokens.items()}
    return text_model(**tokens).text_embeds


@torch.no_grad()
def reduce(inputs: VisionInputs, cfg: PruningSettings) -> ReducedImage:
    if inputs.tower_features is None or inputs.grid is None:
        raise ValueError("CDPruner needs each image as one crop of the vision tower (LLaVA-1.5's 'pad' or square "
                         "images); this image's tokens are several crops merged (anyres)")
    features = inputs.features
    count = dart_kept_count(features.shape[0], cfg, llava_next=inputs.llava_next)
    if count >= features.shape[0]:
        return ReducedImage(features, kept_patches=torch.arange(features.shape[0], device=features.device))
    if inputs.instruction is None:
        raise ValueError("CDPruner prunes for the instruction: give each sample's question in "
                         "PruningRecord(instructions=[...])")
    tokenizer, text_model, projection = text_half(inputs.vision_tower)
    clip = inputs.vision_tower.vision_tower
    post_layernorm = clip.post_layernorm if hasattr(clip, "post_layernorm") else clip.vision_model.post_layernorm
    patches = inputs.tower_features.to(inputs.vision_tower.dtype)
    image_embeds = projection(post_layernorm(patches).float())
    relevance = relevance_scores(image_embeds, instruction_embeds(tokenizer, text_model, inputs.instruction))
    kept = greedy_map(conditional_kernel(features, relevance), count).sort().values
    return ReducedImage(features[kept], kept_patches=kept)


METHOD = register_method(PruningMethod(
    name="cdpruner",
    reduce=reduce,
    one_crop=True,
    # For the tower's select-layer patches (their [CLS] attention is not read).
    inputs=frozenset({PruningInput.VISION_CLS_ATTENTION}),
    summary="before the language model, the MAP of a DPP over the image's tokens conditioned on the instruction "
            "(arXiv 2506.10967)",
))
