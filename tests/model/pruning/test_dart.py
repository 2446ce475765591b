"""DART selection against hand-computed kept sets and a literal re-implementation of the reference loop."""

import math

import pytest
import torch
import torch.nn.functional as F

from llava.model.pruning import DARTConfig, keep_indices
from llava.model.pruning.dart import select_image_tokens


def cfg(**kw):
    return DARTConfig(**{"K": 2, "max_num_trunction": 128, "pivot_image_token": 4, "pivot_text_token": 4, **kw})


def reference_selection(normed, keys, start, length, c: DARTConfig, llava_next=False):
    """docs/DART.md's steps written out the slow, obvious way: Python lists and one cosine call per pivot."""
    norms = keys.abs().sum(-1)
    image_pivots = (norms[start : start + length].topk(min(c.pivot_image_token, length)).indices + start).tolist()
    text_len = normed.shape[0] - start - length
    text_pivots = (norms[start + length :].topk(min(c.pivot_text_token, text_len)).indices + start + length).tolist()
    if llava_next:
        total = min(c.retain_token_num_for_llava_next, length - c.pivot_image_token)
    elif c.max_num_trunction is not None:
        total = c.max_num_trunction
    else:
        total = length * (1 - c.reduction_ratio)
    per_pivot = int(total // (c.pivot_image_token + c.pivot_text_token))
    candidates = [i for i in range(start, start + length) if i not in image_pivots]
    kept = list(image_pivots)
    for p in set(image_pivots + text_pivots):
        if not candidates:
            break
        sims = F.cosine_similarity(normed[p][None, :], normed[candidates], dim=-1)
        chosen = (-sims).topk(min(per_pivot, len(candidates))).indices.tolist()
        picked = [candidates[i] for i in chosen]
        kept += picked
        candidates = [i for i in candidates if i not in picked]
    return sorted(kept)


def crafted_inputs():
    """12 tokens: text [0,2), image [2,8), text [8,12). Pivots: image 4, text 10 (largest key norms).

    Normed states (cosine only cares about directions):
      pivot 10 = e1, pivot 4 = e2, token 6 = -(e1+e2) (least similar to both),
      token 3 = -0.6 e1 + 0.8 e3 (second least similar to 10), token 7 = -0.6 e2 + 0.8 e4 (to 4),
      tokens 2, 5 point roughly along +e1+e2 (similar to both pivots; 2 a little less so).
    """
    normed = torch.zeros(12, 4)
    normed[:, 0] = 1.0  # text tokens and anything unset: along e1
    normed[10] = torch.tensor([1.0, 0, 0, 0])
    normed[4] = torch.tensor([0, 1.0, 0, 0])
    normed[6] = torch.tensor([-1.0, -1.0, 0, 0])
    normed[3] = torch.tensor([-0.6, 0, 0.8, 0])
    normed[7] = torch.tensor([0, -0.6, 0, 0.8])
    normed[2] = torch.tensor([1.0, 1.0, 0.3, 0])
    normed[5] = torch.tensor([1.0, 1.0, 0, 0.1])
    keys = torch.ones(12, 3)
    keys[4] *= 5  # image pivot
    keys[10] *= 5  # text pivot
    return normed, keys


def test_crafted_selection_follows_set_iteration_order():
    normed, keys = crafted_inputs()
    c = cfg(pivot_image_token=1, pivot_text_token=1, max_num_trunction=2)  # T = 2 // 2 = 1 per pivot
    # Python iterates set([4, 10]) as 10, then 4 (10 lands in slot 2 of an 8-slot table).
    assert list({4, 10}) == [10, 4]
    # 10 takes 6 (cos -0.707); then 4, with 6 gone, takes 7 (cos -0.6). Iterating [4, 10] would give 3 instead.
    assert select_image_tokens(normed, keys, (2, 6), c).tolist() == [4, 6, 7]
    assert keep_indices(normed, keys, (2, 6), c).tolist() == [0, 1, 4, 6, 7, 8, 9, 10, 11]


def test_crafted_selection_with_two_per_pivot():
    normed, keys = crafted_inputs()
    c = cfg(pivot_image_token=1, pivot_text_token=1, max_num_trunction=4)  # T = 2
    # 10 takes 6 and 3 (cos -0.707, -0.6); 4 then takes 7 (-0.6) and 2 (cos 1/sqrt(2.09) = 0.692 < 0.705 for 5).
    assert select_image_tokens(normed, keys, (2, 6), c).tolist() == [2, 3, 4, 6, 7]


@pytest.mark.parametrize(
    "kw, m, llava_next, expected",
    [
        ({"max_num_trunction": 128}, 576, False, 16),  # 128 // 8
        ({"max_num_trunction": 64}, 576, False, 8),
        ({"max_num_trunction": None, "reduction_ratio": 0.778}, 576, False, math.floor(576 * 0.222 / 8)),  # 15
        ({"max_num_trunction": None, "reduction_ratio": 0.0}, 576, False, 72),
        ({"retain_token_num_for_llava_next": 320}, 2000, True, 40),  # min(320, 2000 - 4) // 8
        ({"retain_token_num_for_llava_next": 320}, 100, True, 12),  # min(320, 96) // 8
        ({"max_num_trunction": 5}, 576, False, 0),
    ],
)
def test_budget_per_pivot(kw, m, llava_next, expected):
    assert cfg(**kw).budget_per_pivot(m, llava_next=llava_next) == expected


def random_state(seed, length, dim=16, key_dim=24):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(length, dim, generator=g), torch.randn(length, key_dim, generator=g)


def test_default_settings_keep_132_image_tokens_and_all_text():
    start, m, text = 35, 576, 40
    normed, keys = random_state(0, start + m + text)
    keep = keep_indices(normed, keys, (start, m), cfg())
    image = keep[(keep >= start) & (keep < start + m)]
    assert image.numel() == 4 + 8 * 16 == 132
    assert keep.numel() == start + 132 + text
    assert torch.equal(keep, keep.sort().values) and keep.unique().numel() == keep.numel()
    assert torch.equal(keep[:start], torch.arange(start)) and torch.equal(keep[-text:], torch.arange(start + m, start + m + text))
    image_pivots = keys[start : start + m].abs().sum(-1).topk(4).indices + start
    assert set(image_pivots.tolist()) <= set(image.tolist())


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "kw, llava_next",
    [
        ({}, False),
        ({"max_num_trunction": 64}, False),
        ({"max_num_trunction": None, "reduction_ratio": 0.5}, False),
        ({"pivot_image_token": 2, "pivot_text_token": 6}, False),
        ({"retain_token_num_for_llava_next": 100}, True),
    ],
)
def test_matches_literal_reference_on_random_inputs(seed, kw, llava_next):
    start, m, text = 7, 150, 12
    normed, keys = random_state(seed, start + m + text)
    c = cfg(**kw)
    got = select_image_tokens(normed, keys, (start, m), c, llava_next=llava_next).tolist()
    assert got == reference_selection(normed, keys, start, m, c, llava_next=llava_next)


def test_budget_larger_than_candidates_keeps_every_image_token():
    normed, keys = random_state(1, 5 + 10 + 5)
    keep = keep_indices(normed, keys, (5, 10), cfg())  # T = 16 per pivot, only 6 candidates
    assert keep.tolist() == list(range(20))


def test_no_image_is_a_no_op():
    normed, keys = random_state(2, 30)
    assert keep_indices(normed, keys, (30, 0), cfg()).tolist() == list(range(30))


def test_short_text_uses_fewer_text_pivots_but_the_configured_budget():
    start, m = 3, 100
    normed, keys = random_state(3, start + m + 2)  # only 2 text tokens for 4 text pivots
    kept = select_image_tokens(normed, keys, (start, m), cfg(max_num_trunction=48))
    # 4 image pivots + (4 + 2 pivots actually present) * (48 // 8 = 6) selected
    assert kept.numel() == 4 + 6 * 6
    assert kept.tolist() == reference_selection(normed, keys, start, m, cfg(max_num_trunction=48))


def test_image_at_end_of_prompt_has_no_text_pivots():
    start, m = 4, 50
    normed, keys = random_state(4, start + m)
    kept = select_image_tokens(normed, keys, (start, m), cfg(max_num_trunction=16))
    assert kept.numel() == 4 + 4 * 2
