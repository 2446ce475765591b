"""DART: Duplication-Aware Reduction of Tokens (arXiv 2502.11494), as a pure selection function.

Given the state of one sample just before decoder layer K, keep a few "pivot" tokens and, for each pivot,
the image tokens least similar to it (the least duplicated ones); drop the other image tokens.
The step numbers below are those of docs/DART.md ("What is computed"). The DART release's hints about the
prompt (the span in DART_config, LLaVA-1.6's `config.text_length`) are checked here too (`check_release_hints`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llava.model.pruning.config import PruningSettings
from llava.model.pruning.methods import PruningInput, PruningMethod, SpanInputs, SplicedSample, register_method


def select_pivots(key_norms: torch.Tensor, positions: torch.Tensor, count: int) -> list[int]:
    """The `count` absolute positions among `positions` with the largest key L1 norm.

    Returned in descending order of norm, as `torch.topk` gives them; the order matters because the
    reference iterates a Python set built from these lists.
    """
    count = min(count, positions.numel())
    if count == 0:
        return []
    return positions[key_norms[positions].topk(count).indices].tolist()


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(P, D) x (M, D) -> (P, M) cosine similarities in float32.

    Same values as `F.cosine_similarity` up to rounding, but one matmul instead of a (P, M, D) broadcast,
    which at D = 4096 would dominate the selection time.
    """
    a = F.normalize(a.float(), dim=-1, eps=eps)
    b = F.normalize(b.float(), dim=-1, eps=eps)
    return a @ b.T


def select_image_tokens(
    normed: torch.Tensor,
    keys: torch.Tensor,
    image_span: tuple[int, int],
    cfg: PruningSettings,
    llava_next: bool = False,
    text_positions: torch.Tensor | None = None,
    padding: int = 0,
) -> torch.Tensor:
    """Indices of the image tokens DART keeps for one image of one sample, ascending.

    normed: (L, D) hidden states after layer K-1, passed through the model's final RMSNorm.
    keys:   (L, H*d) key states of layer K-1 after RoPE, heads concatenated. Repeating grouped KV heads
            scales every L1 norm by the same factor, so un-repeated keys give the same pivots.
    image_span: (s, m): the m image tokens occupy [s, s+m); the text after them is [s+m, L).
    llava_next: use the LLaVA-1.6 budget (m = L - text_length, M = min(retain, m - pivot_image_token)).
    text_positions: where text pivots may be taken; default `[s+m, L)`, the reference's choice.
    padding: left padding before the sample's first token. The pivots are visited in the order of a Python
        set of their positions, which depends on the values, so the order is taken on the positions the
        sample has alone (minus the padding): a padded sample in a batch selects what it selects alone.
    """
    start, length = image_span
    end = start + length
    device = normed.device
    key_norms = keys.float().abs().sum(dim=-1)
    if text_positions is None:
        text_positions = torch.arange(end, normed.shape[0], device=device)

    # Step 1: pivots. Image pivots are kept; text pivots only steer the selection.
    image_pivots = select_pivots(key_norms, torch.arange(start, end, device=device), cfg.pivot_image_token)
    text_pivots = select_pivots(key_norms, text_positions.to(device), cfg.pivot_text_token)

    # Step 2: per-pivot budget.
    per_pivot = cfg.budget_per_pivot(length, llava_next=llava_next)

    # Step 3: candidates are the non-pivot image tokens. One similarity matrix gives every pivot's
    # row; taken tokens are masked out instead of re-gathering the candidate list.
    # The reference's iteration order, on purpose: a set of the (unpadded) positions.
    pivots = [p + padding for p in set(p - padding for p in image_pivots + text_pivots)]
    available = torch.ones(length, dtype=torch.bool, device=device)
    if image_pivots:
        available[torch.tensor(image_pivots, device=device) - start] = False
    selected: list[torch.Tensor] = []
    if pivots and per_pivot > 0:
        similarity = cosine_similarity_matrix(normed[pivots], normed[start:end])
        remaining = length - len(image_pivots)  # counted on the host: no device sync per pivot
        for row in range(len(pivots)):
            take = min(per_pivot, remaining)
            if take == 0:
                break
            remaining -= take
            # Lowest similarity first: the reference takes topk of the negated similarity.
            score = (-similarity[row]).masked_fill(~available, float("-inf"))
            chosen = score.topk(take).indices
            available[chosen] = False
            selected.append(chosen)

    # Step 4: kept image tokens = image pivots + everything selected.
    kept = torch.tensor(image_pivots, dtype=torch.long, device=device)
    if selected:
        kept = torch.cat([kept, torch.cat(selected) + start])
    return kept.sort().values


def select(inputs: SpanInputs, cfg: PruningSettings) -> torch.Tensor:
    return select_image_tokens(inputs.normed, inputs.keys, inputs.span, cfg, inputs.llava_next, inputs.text_positions,
                               inputs.padding)


def check_release_hints(sample: SplicedSample, cfg: PruningSettings) -> tuple[str, ...]:
    """Where the DART release's hints disagree with the splice, one message each; the splice wins.

    Its scripts give the image's span in DART_config (`image_token_start_index`, `image_token_length`) and, for
    LLaVA-1.6, the prompt's text token count in `config.text_length`; we take the span from where the image
    features were spliced in, so a hint can only be wrong, which is worth saying. The methods that prune
    inside the language model with the same DART_config take the same check.
    """
    if not sample.spans:
        return ()
    messages = []
    start, count = sample.spans[0]
    declared = (cfg.image_token_start_index, cfg.image_token_length)
    if (declared[0] is not None and declared[0] != start) or (declared[1] is not None and declared[1] != count):
        messages.append(
            f"DART_config gives image_token_start_index={declared[0]}, image_token_length={declared[1]} but the "
            f"image features were spliced at start={start}, length={count}; using the spliced span"
        )
    text_length = getattr(sample.model_config, "text_length", None)
    text_tokens = sample.tokens - sum(n for _, n in sample.spans)
    if text_length is not None and text_length != text_tokens:
        messages.append(
            f"config.text_length={text_length} but the prompt has {text_tokens} text tokens around the "
            "spliced image(s); using the spliced span"
        )
    return tuple(messages)


METHOD = register_method(PruningMethod(
    name="dart",
    select=select,
    inputs=frozenset({PruningInput.NORMED, PruningInput.KEYS}),
    summary="pivots by key norm, then the image tokens least similar to each pivot (arXiv 2502.11494)",
    check_splice=check_release_hints,
))
