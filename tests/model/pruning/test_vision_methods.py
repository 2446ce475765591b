"""The methods that reduce the image features before the language model (VisionZip, DivPrune, pooling): their
rules against hand-computed results, their inputs against the vision tower's eager attention, and, through
generate, that the language model sees exactly the reduced image, batches like single runs and says what it kept."""

import math

import pytest
import torch
import torch.nn.functional as F
from test_engine import generate_batch, generate_single, scene, single_runs, strip_eos
from test_engine import prompt as vicuna_prompt

from llava.mm_utils import process_images
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.pruning import VisionInputs, make_dart_config, parse_dart_config
from llava.model.pruning.divprune import max_min_diverse
from llava.model.pruning.pooling import average_pool, pooled_shape
from llava.model.pruning.visionzip import contextual_tokens, split_budget
from llava.model.pruning import visionzip

BEFORE_LLM = ["visionzip", "divprune", "pooling"]


def unit_vectors(degrees):
    radians = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([radians.cos(), radians.sin()], dim=1)


# -- the rules, by hand --------------------------------------------------------------------------------------

def test_divprune_picks_greedily_the_token_farthest_from_those_already_picked():
    """Directions at 0, 5, 90, 175, 200, 270 degrees. The nearest other direction is 85 degrees away for 90
    (the most isolated: picked first); then 270 is farthest from 90; then 0 (90 degrees from both) beats 5 and
    175 (85 degrees from 90); then 175 (85 degrees from 90) beats 200 (70 from 270) and 5 (5 from 0)."""
    points = unit_vectors([0, 5, 90, 175, 200, 270])
    assert max_min_diverse(points, 3).tolist() == [2, 5, 0]
    assert max_min_diverse(points, 4).tolist() == [2, 5, 0, 3]
    assert max_min_diverse(points, 10).sort().values.tolist() == list(range(6))  # never one twice


def test_divprune_never_picks_a_duplicate_of_a_picked_token_before_a_new_one():
    points = unit_vectors([0, 0, 0, 90])
    assert sorted(max_min_diverse(points, 2).tolist()) in ([0, 3], [1, 3], [2, 3])


def test_pooling_averages_blocks_of_the_grid_row_major():
    grid = torch.arange(16, dtype=torch.float32).reshape(16, 1)  # a 4 x 4 grid holding 0..15 row-major
    pooled = average_pool(grid, (4, 4), (2, 2))
    assert pooled.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    assert [pooled_shape(n, (24, 24)) for n in (132, 64, 60, 12, 1)] == [(11, 12), (8, 8), (7, 8), (3, 4), (1, 1)]
    assert pooled_shape(100, (4, 30)) == (4, 25)  # never more rows than the grid has


def test_visionzip_splits_the_budget_as_the_release_does():
    assert [split_budget(n) for n in (64, 128, 192)] == [(54, 10), (108, 20), (162, 30)]


def test_visionzip_contextual_tokens_merge_into_the_most_similar_evenly_spaced_target():
    """Five remaining patches, two contextual tokens: step 5 // 2 = 2, so patches 0 and 2 are the targets;
    patch 1's key points like target 0's, patches 3 and 4 like target 2's. Each contextual token is its target
    plus the mean of what merged into it."""
    features = torch.tensor([[1.0, 0], [10, 0], [0, 1], [0, 20], [0, 40]])
    keys = unit_vectors([0, 10, 90, 80, 100]).float()
    tokens = contextual_tokens(features, keys, 2)
    torch.testing.assert_close(tokens, torch.tensor([[1.0 + 10, 0], [0, 1 + (20 + 40) / 2]]))


def test_visionzip_keeps_cls_and_the_most_attended_patches_in_order_then_the_contextual_ones():
    """12 patches and a budget of 1 + 8 * 1 = 9 tokens (pivots 1 + 7, max_num_trunction 8): 8 dominant
    ([CLS] and the 7 patches [CLS] attends to most) and 1 contextual, merged from the 5 others."""
    cfg = parse_dart_config(make_dart_config(pivot_image_token=1, pivot_text_token=7, max_num_trunction=8))
    patches = torch.arange(12, dtype=torch.float32).unsqueeze(1) * torch.tensor([[1.0, -1.0]])
    attention = torch.tensor([0.2, 0.01, 0.3, 0.02, 0.1, 0.15, 0.03, 0.04, 0.05, 0.06, 0.01, 0.03])
    top = [0, 2, 4, 5, 7, 8, 9]  # the 7 largest, in image order
    inputs = VisionInputs(torch.zeros(12, 3), (3, 4), project=lambda x: x * 2, tower_features=patches,
                          tower_cls=torch.tensor([100.0, 100.0]), cls_attention=attention,
                          tower_keys=torch.randn(13, 4))
    reduced = visionzip.reduce(inputs, cfg)
    rest = [i for i in range(12) if i not in top]  # 1, 3, 6, 10, 11: one target (the first), all merged into it
    contextual = patches[rest[0]] + patches[rest[1:]].mean(0)
    expected = torch.cat([torch.tensor([[100.0, 100.0]]), patches[top], contextual[None]]) * 2
    torch.testing.assert_close(reduced.features, expected)
    assert reduced.kept_patches is None


# -- through the model -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def llava(tiny_ckpt):
    tokenizer, model, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu", attn_implementation="sdpa")
    ids = vicuna_prompt(tokenizer, "<image>\nWhat colour is the square?")
    return tokenizer, model, processor, ids, process_images([scene(7)], processor, model.config)


def test_the_cls_attention_and_keys_are_those_of_the_select_layer_under_eager_attention(tiny_ckpt):
    _, model, processor, _ = load_pretrained_model(str(tiny_ckpt), None, device="cpu")
    tower = model.get_vision_tower()
    pixels = process_images([scene(3), scene(4)], processor, model.config)
    ours = tower.forward_with_cls_attention(pixels)
    torch.testing.assert_close(ours.patches, tower(pixels), rtol=0, atol=0)
    tower.vision_tower.set_attn_implementation("eager")
    layer_index = tower.select_layer % (len(tower.vision_tower.encoder.layers) + 1) - 1
    captured = {}
    k_proj = tower.vision_tower.encoder.layers[layer_index].self_attn.k_proj
    handle = k_proj.register_forward_hook(lambda module, args, out: captured.setdefault("keys", out))
    with torch.no_grad():
        eager = tower.vision_tower(pixels, output_attentions=True, output_hidden_states=True)
    handle.remove()
    heads = tower.config.num_attention_heads
    torch.testing.assert_close(ours.cls_attention, eager.attentions[layer_index][:, :, 0, 1:].sum(1), rtol=0, atol=1e-6)
    expected_keys = captured["keys"].view(2, -1, heads, tower.config.hidden_size // heads).mean(2)
    torch.testing.assert_close(ours.keys, expected_keys, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.cls, eager.hidden_states[tower.select_layer][:, 0], rtol=0, atol=1e-6)


def expected_image(model, images, method, budget):
    """The image's tokens as each method's paper defines them, computed from the unreduced features."""
    tower = model.get_vision_tower()
    features = model.encode_images(images)[0]
    side = tower.num_patches_per_side
    if method == "divprune":
        return features[max_min_diverse(features, budget).sort().values]
    if method == "pooling":  # the budget 36 is a 6 x 6 grid: 4 x 4 blocks of the 24 x 24 one
        grid = features.T.reshape(1, -1, side, side)
        return F.avg_pool2d(grid, side // 6).reshape(features.shape[1], -1).T
    select = tower.forward_with_cls_attention(images)
    dominant, contextual = split_budget(budget)
    top = select.cls_attention[0].topk(dominant - 1).indices.sort().values
    rest = torch.ones(side * side, dtype=torch.bool)
    rest[top] = False
    merged = contextual_tokens(select.patches[0][rest], select.keys[0][1:][rest], contextual)
    return model.project_features(torch.cat([select.cls[0][None], select.patches[0][top], merged]))


@pytest.mark.parametrize("method", BEFORE_LLM)
def test_the_language_model_sees_exactly_the_reduced_image(llava, method):
    """generate / forward with the method == an unpruned run on the prompt spliced by hand with the image's
    expected tokens in place of its 576; the record says 36 of 576 were kept."""
    tokenizer, model, _, ids, images = llava
    settings = make_dart_config(method=method, max_num_trunction=32)  # 4 + 8 * 4 = 36 tokens
    full = model.prepare_multimodal_inputs(ids[None], images)
    (start, count), = full.image_spans[0]
    with torch.no_grad():
        replacement = expected_image(model, images, method, 36)
    embeds = torch.cat([full.inputs_embeds[:, :start], replacement[None], full.inputs_embeds[:, start + count:]], 1)
    with torch.no_grad():
        by_hand = model(inputs_embeds=embeds, pruning_record=PruningRecord(dart_config=None)).logits
        record = PruningRecord(dart_config=settings)
        reduced = model(ids[None], images=images, pruning_record=record).logits
        tokens_by_hand = model.generate(inputs_embeds=embeds, pruning_record=PruningRecord(dart_config=None),
                                        max_new_tokens=6, do_sample=False)[0].tolist()
    torch.testing.assert_close(reduced, by_hand, rtol=0, atol=1e-5)
    generated = PruningRecord(dart_config=settings)
    assert generate_single(model, ids, images, generated, max_new_tokens=6) == tokens_by_hand
    for rec in (record, generated):
        assert rec.image_spans == [[(start, 36)]] and rec.pruned and rec.keep is None
        assert (rec.num_kept_image_tokens(), rec.num_image_tokens()) == (36, 576)
        (kept,) = rec.kept_image_positions()
        if method == "divprune":
            assert torch.equal(kept, max_min_diverse(model.encode_images(images)[0], 36).sort().values)
        else:
            assert kept is None  # pooled or merged: no patch of the image is "the" kept one


@pytest.mark.parametrize("method", BEFORE_LLM)
def test_a_ragged_batch_equals_single_runs(llava, method):
    tokenizer, model, processor, _, _ = llava
    one = lambda img: process_images([img], processor, model.config)  # noqa: E731
    requests = [
        (vicuna_prompt(tokenizer, "<image>\nColour?"), one(scene(1))),
        (vicuna_prompt(tokenizer, "<image>\nWhat colour is the big square in the middle of this picture?"), one(scene(2))),
        (vicuna_prompt(tokenizer, "Which colour do you get when you mix red and white paint?"), None),
        (vicuna_prompt(tokenizer, "<image>\n<image>\nAre these the same?"),
         process_images([scene(3), scene(4)], processor, model.config)),
    ]
    settings = make_dart_config(method=method, max_num_trunction=48)
    singles = single_runs(model, requests, settings, max_new_tokens=5)
    batch_record = PruningRecord(dart_config=settings)
    batched = generate_batch(model, requests, batch_record, max_new_tokens=5)
    for b, (tokens, record) in enumerate(singles):
        assert strip_eos(batched[b], tokenizer.eos_token_id) == strip_eos(tokens, tokenizer.eos_token_id)
        assert batch_record.num_kept_image_tokens(b) == record.num_kept_image_tokens()
        assert batch_record.num_image_tokens(b) == record.num_image_tokens()
    kept = 4 + 8 * 6 if method != "pooling" else 7 * 7
    assert [batch_record.num_kept_image_tokens(b) for b in range(4)] == [kept, kept, 0, 2 * kept]
    assert [batch_record.num_image_tokens(b) for b in range(4)] == [576, 576, 0, 1152]


def test_a_record_reused_for_an_unpruned_call_forgets_the_reduction(llava):
    _, model, _, ids, images = llava
    record = PruningRecord(dart_config=make_dart_config(method="divprune"))
    generate_single(model, ids, images, record, max_new_tokens=2)
    assert record.num_kept_image_tokens() == 132
    record.dart_config = None
    generate_single(model, ids, images, record, max_new_tokens=2)
    assert not record.pruned and (record.num_kept_image_tokens(), record.num_image_tokens()) == (576, 576)


def test_pre_spliced_embeddings_that_were_not_reduced_are_a_clear_error(llava):
    _, model, _, ids, images = llava
    spliced = model.prepare_multimodal_inputs(ids[None], images)  # no record: not reduced
    record = PruningRecord(dart_config=make_dart_config(method="visionzip"))
    with pytest.raises(ValueError, match="'visionzip' reduces the image features before the language model"):
        model.generate(inputs_embeds=spliced.inputs_embeds, image_spans=spliced.image_spans, pruning_record=record,
                       max_new_tokens=2)


@pytest.mark.parametrize("method, works", [("divprune", True), ("pooling", False), ("visionzip", False)])
def test_on_llava_next_divprune_reduces_the_merged_image_and_the_grid_methods_say_why_not(
        tmp_path, to_llava_next, method, works):
    from llava.model.tiny_checkpoint import build_tiny_checkpoint

    path = to_llava_next(build_tiny_checkpoint(tmp_path / "next", seed=0))
    tokenizer, model, processor, _ = load_pretrained_model(str(path), None, device="cpu")
    model.config.DART_config = make_dart_config(method=method, retain_token_num_for_llava_next=96)
    ids = vicuna_prompt(tokenizer, "<image>\nColour?")
    image = scene(5, size=(500, 300))
    pixels = process_images([image], processor, model.config)
    record = PruningRecord()
    if works:
        generate_single(model, ids, pixels, record, max_new_tokens=2, image_sizes=[image.size])
        assert record.num_kept_image_tokens() == 4 + 8 * 12  # M = min(96, m - 4) = 96: T = 12 per pivot
        assert record.num_image_tokens() > 576
    else:
        with pytest.raises(ValueError, match="one crop"):
            generate_single(model, ids, pixels, record, max_new_tokens=2, image_sizes=[image.size])
