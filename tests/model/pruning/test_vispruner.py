"""VisPruner: its selection against hand-computed cases and a literal transcription of the official batched loop,
its sensitivity to the [CLS] attention order, the attention it reads against the tower's eager attention, and
through generate, the documented count."""

import math

import pytest
import torch
from test_engine import generate_single, scene
from test_engine import prompt as vicuna_prompt

from llava.mm_utils import process_images
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.pruning import VisionInputs, make_dart_config, parse_dart_config
from llava.model.pruning.vispruner import reduce, select_tokens


def directions(degrees):
    radians = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([radians.cos(), radians.sin()], dim=1)


# Ten patches; 0-3 are the most attended. Of the rest, in attention order 4, 5, 6, 7, 8, 9, one round (6 left,
# 4 wanted: drop 2) pairs a = 4, 6, 8 with b = 5, 7, 9.
ANGLES = [0, 0, 0, 0, 0, 2, 90, 180, 91, 270]


def test_one_round_drops_the_evens_most_similar_to_an_odd():
    """a's best cosines to b: 4 (0 deg) to 5 (2 deg) cos 2; 6 (90) to 5 cos 88; 8 (91) to 5 cos 89. The two
    highest, 4 and 6, go; 8 and all of b stay: 4 important + 4 diverse."""
    attention = torch.arange(10, 0, -1, dtype=torch.float64)[None]
    kept = select_tokens(attention, directions(ANGLES), 8, 0.5)
    assert kept.tolist() == [0, 1, 2, 3, 8, 5, 7, 9]


def test_the_attention_order_decides_who_meets_in_a_round():
    """Patches 6 and 5 swap places in the order by one rounding of their attention: now a = 4, 5, 8 and b = 6, 7,
    9. 8 (91) meets 6 (90): cos 1; 5 (2) to 6: cos 88; 4 (0) to 6 or 9: cos 90. 8 and 5 go: 4 and 6 stay."""
    attention = torch.arange(10, 0, -1, dtype=torch.float32)
    attention[6] = torch.nextafter(attention[5], torch.tensor(math.inf))
    kept = select_tokens(attention[None], directions(ANGLES).float(), 8, 0.5)
    assert kept.tolist() == [0, 1, 2, 3, 4, 6, 7, 9]


def official_batched(attentions, features, count, ratio):
    """The official `encode_images` selection, transcribed: attentions (B, H, N), features (B, N, C)."""
    batch = features.shape[0]
    important = int(count * ratio)
    diverse = count - important
    order = attentions.mean(dim=1).argsort(dim=-1, descending=True, stable=True)
    important_idx, residual = order[:, :important], order[:, important:]
    normed = features / features.norm(dim=-1, keepdim=True)
    while diverse > 0:
        r_all = residual.shape[1]
        r = min(8, r_all - diverse)
        if r <= 0:
            break
        tokens = normed[torch.arange(batch).unsqueeze(-1).expand(-1, r_all), residual]
        a, b = tokens[..., ::2, :], tokens[..., 1::2, :]
        scores = (a @ b.transpose(-1, -2)).max(dim=-1).values
        distinct = scores.argsort(dim=-1, descending=True, stable=True)[:, r:]
        residual = torch.cat([residual[..., ::2][torch.arange(batch).unsqueeze(-1).expand(-1, r_all // 2 - r),
                                                 distinct], residual[..., 1::2]], dim=-1)
    selected = torch.cat([important_idx, residual], dim=-1) if diverse > 0 else important_idx
    return selected


@pytest.mark.parametrize("count, ratio", [(20, 0.5), (36, 0.5), (40, 0.25), (20, 1.0)])
def test_the_selection_is_the_official_batched_loop(count, ratio):
    g = torch.Generator().manual_seed(count)
    attentions = torch.rand(3, 4, 64, generator=g).softmax(-1)
    features = torch.randn(3, 64, 16, generator=g)
    expected = official_batched(attentions, features, count, ratio)
    for b in range(3):
        assert select_tokens(attentions[b], features[b], count, ratio).tolist() == expected[b].tolist()


def test_where_the_official_indexing_fails_it_still_keeps_the_count():
    """Few diverse tokens wanted: a holds fewer than the 8 to drop, then an odd count is left."""
    g = torch.Generator().manual_seed(1)
    kept = select_tokens(torch.rand(2, 12, generator=g), torch.randn(12, 4, generator=g), 4, 0.5)
    assert kept.numel() == 4 and kept.unique().numel() == 4


def test_reduce_keeps_darts_count_in_image_order_and_refuses_merged_crops():
    cfg = parse_dart_config(make_dart_config(method="vispruner", pivot_image_token=4, pivot_text_token=4,
                                             max_num_trunction=0))  # 4 tokens, as DART
    g = torch.Generator().manual_seed(0)
    patches, heads = torch.randn(16, 4, generator=g), torch.rand(2, 16, generator=g)
    projected = torch.randn(16, 6, generator=g)
    reduced = reduce(VisionInputs(projected, (4, 4), tower_features=patches, head_attention=heads), cfg)
    kept = select_tokens(heads, patches, 4, 0.5).sort().values
    assert torch.equal(reduced.kept_patches, kept) and torch.equal(reduced.features, projected[kept])
    with pytest.raises(ValueError, match="one crop"):
        reduce(VisionInputs(projected, None), cfg)


# -- through the model -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def llava(tiny_ckpt):
    tokenizer, model, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu")
    ids = vicuna_prompt(tokenizer, "<image>\nWhat colour is the square?")
    return tokenizer, model, processor, ids, process_images([scene(7)], processor, model.config)


def test_the_head_attention_is_the_eager_attention_bit_for_bit(llava):
    """With the tower eager, as the official (transformers 4.37, eager CLIP) ran it, the per-head [CLS] row we
    rank by is exactly `output_attentions`' row of the layer that outputs the select features."""
    _, model, _, _, images = llava
    tower = model.get_vision_tower()
    implementation = tower.vision_tower.config._attn_implementation
    tower.vision_tower.set_attn_implementation("eager")
    try:
        ours = tower.forward_with_cls_attention(images)
        with torch.no_grad():
            eager = tower.vision_tower(images, output_attentions=True, output_hidden_states=True)
    finally:
        tower.vision_tower.set_attn_implementation(implementation)
    assert torch.equal(ours.head_attention, eager.attentions[tower.select_layer][:, :, 0, 1:])


def test_generate_sees_the_selected_patches_and_keeps_darts_count(llava):
    _, model, _, ids, images = llava
    settings = make_dart_config(method="vispruner", max_num_trunction=32)  # 4 + 8 * 4 = 36 tokens, as DART
    record = PruningRecord(dart_config=settings)
    generate_single(model, ids, images, record, max_new_tokens=3)
    assert (record.num_kept_image_tokens(), record.num_image_tokens()) == (36, 576)
    select = model.get_vision_tower().forward_with_cls_attention(images)
    expected = select_tokens(select.head_attention[0], select.patches[0], 36, 0.5).sort().values
    (kept,) = record.kept_image_positions()
    assert torch.equal(kept, expected)
    by_ratio = PruningRecord(dart_config=make_dart_config(method="vispruner", max_num_trunction=32,
                                                          vispruner_important_ratio=1.0))
    generate_single(model, ids, images, by_ratio, max_new_tokens=1)
    (top,) = by_ratio.kept_image_positions()
    assert torch.equal(top, select.head_attention[0].mean(0).argsort(descending=True, stable=True)[:36].sort().values)
