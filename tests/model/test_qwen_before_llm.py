"""DivPrune and pooling before the language model on Qwen2-VL, Qwen2.5-VL and Qwen3-VL (tiny seeded models): the
kept merged tokens are the method's rule on the library's own image features, the reduced prompt's logits are the
library's forward on hand-built shortened inputs with hand-gathered 3-D positions, cached decoding equals a full
forward of the same reduced prompt, a ragged batch equals single runs, Qwen3-VL's DeepStack features follow the
kept tokens, and VisionZip (no [CLS] token in the Qwen ViT) is refused clearly."""

import pytest
import torch
import torch.nn.functional as F
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration, Qwen3VLForConditionalGeneration

from llava.model import PruningRecord
from llava.model.pruning import make_dart_config
from llava.model.pruning.divprune import max_min_diverse
from llava.model.tiny_qwen import FAMILIES, SPECIAL_IDS, build_tiny_qwen_model, patch_values

LIBRARY_CLASSES = {"qwen2_vl": Qwen2VLForConditionalGeneration, "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
                   "qwen3_vl": Qwen3VLForConditionalGeneration}
IMAGE, START, END = SPECIAL_IDS["<|image_pad|>"], SPECIAL_IDS["<|vision_start|>"], SPECIAL_IDS["<|vision_end|>"]
IM_START, IM_END, PAD = SPECIAL_IDS["<|im_start|>"], SPECIAL_IDS["<|im_end|>"], SPECIAL_IDS["<|endoftext|>"]
RATIO = 0.6
METHODS = ["divprune", "pooling"]


def prompt(family, grids, after=(120, 121, 122, 123), seed=0):
    """ids, token types, pixels, grids of a chat-shaped prompt with one image per (h, w) patch grid."""
    g = torch.Generator().manual_seed(seed)
    ids = [IM_START, 110, 111]
    for h, w in grids:
        ids += [START] + [IMAGE] * (h * w // 4) + [END]
    ids = torch.tensor(ids + [*after, IM_END, IM_START, 130])
    pixels = torch.randn(sum(h * w for h, w in grids), patch_values(family), generator=g)
    return ids, (ids == IMAGE).long(), pixels, torch.tensor([(1, h, w) for h, w in grids])


def inputs_of(ids, types, pixels, grids):
    return {"input_ids": ids[None], "mm_token_type_ids": types[None], "attention_mask": torch.ones_like(ids)[None],
            "pixel_values": pixels, "image_grid_thw": grids}


def left_padded(prompts):
    longest = max(p[0].numel() for p in prompts)
    ids, types, mask = (torch.full((len(prompts), longest), PAD), torch.zeros(len(prompts), longest, dtype=torch.long),
                        torch.zeros(len(prompts), longest, dtype=torch.long))
    for b, (row, row_types, _, _) in enumerate(prompts):
        start = longest - row.numel()
        ids[b, start:], types[b, start:], mask[b, start:] = row, row_types, 1
    return {"input_ids": ids, "mm_token_type_ids": types, "attention_mask": mask,
            "pixel_values": torch.cat([p[2] for p in prompts]), "image_grid_thw": torch.cat([p[3] for p in prompts])}


def settings(method):
    return make_dart_config(method=method, reduction_ratio=RATIO, max_num_trunction=None)


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture(scope="module")
def models(family):
    model = build_tiny_qwen_model(family, seed=1)
    library = LIBRARY_CLASSES[family](model.config).eval()
    library.load_state_dict(model.state_dict())
    return model, library


def budget(m):
    """What DART keeps of m merged tokens on Qwen (the ratio alone, 4 image + 4 text pivots)."""
    return min(m, 4 + 8 * int(m * (1 - RATIO) / 8))


def pool(x, grid, count):
    """(m, C) row-major tokens of a (rows, cols) grid average-pooled to h x w = floor(sqrt(count)) x ...: (h*w, C)."""
    h = int(count ** 0.5)
    w = count // h
    return F.adaptive_avg_pool2d(x.T.reshape(1, -1, *grid).double(), (h, w)).reshape(x.shape[1], -1).T


def expected_image(method, features, grid, reduction):
    """The method's rule on one image's library features: (its tokens, its kept offsets or None)."""
    if method == "divprune":
        kept = max_min_diverse(features, budget(features.shape[0])).sort().values
        return features[kept], kept
    return pool(features, grid, budget(features.shape[0])).to(features.dtype), None


def hand_built(family, library, method, ids, types, pixels, grids, kept_override=None):
    """One prompt (no padding) shortened by hand: ids, 3-D positions gathered (kept) or window means rounded half up
    (pooled) from the library's get_rope_index on the full prompt, and the library's own image outputs reduced by
    hand. Returns the library forward's kwargs and the per-image kept offsets."""
    with torch.no_grad():
        encoded = library.model.get_image_features(pixels, grids, return_dict=True)
        full, _ = library.model.get_rope_index(ids[None], mm_token_type_ids=types[None], image_grid_thw=grids)
    full = full[:, 0]
    deepstack = getattr(encoded, "deepstack_features", None)
    out_ids, out_pos, feats, levels, kept_all = [], [], [], [[] for _ in deepstack or ()], []
    cursor, image_starts = 0, (types.diff(prepend=torch.zeros(1, dtype=types.dtype)) == 1).nonzero().flatten().tolist()
    for i, start in enumerate(image_starts):
        m = encoded.pooler_output[i].shape[0]
        grid = (int(grids[i, 1]) // 2, int(grids[i, 2]) // 2)
        tokens, kept = expected_image(method, encoded.pooler_output[i], grid, None)
        if kept_override is not None:
            kept = kept_override[i]
            tokens = encoded.pooler_output[i][kept]
        out_ids.append(ids[cursor:start])
        out_pos.append(full[:, cursor:start])
        if kept is not None:
            out_pos.append(full[:, start + kept])
        else:
            out_pos.append(torch.floor(pool(full[:, start:start + m].T.double(), grid, budget(m)) + 0.5).long().T)
        out_ids.append(torch.full((tokens.shape[0],), IMAGE))
        feats.append(tokens)
        for level, level_features in zip(levels, deepstack or ()):
            own = level_features[i]
            level.append(own[kept] if kept is not None else pool(own, grid, budget(m)).to(own.dtype))
        kept_all.append(kept)
        cursor = start + m
    out_ids.append(ids[cursor:])
    out_pos.append(full[:, cursor:])
    short = torch.cat(out_ids)
    outputs = {"pooler_output": tuple(feats)}
    if deepstack is not None:
        outputs["deepstack_features"] = [tuple(level) for level in levels]
    kwargs = {"input_ids": short[None], "attention_mask": torch.ones_like(short)[None],
              "mm_token_type_ids": (short == IMAGE).long()[None], "position_ids": torch.cat(out_pos, 1)[:, None],
              "mm_encoder_outputs": {"image": type(encoded)(**outputs)}}
    return kwargs, kept_all


@pytest.mark.parametrize("method", METHODS)
def test_kept_tokens_are_the_methods_rule_on_the_librarys_image_features(family, models, method):
    model, library = models
    ids, types, pixels, grids = prompt(family, [(16, 16), (8, 12)], seed=1)
    record = PruningRecord(dart_config=settings(method))
    with torch.no_grad():
        reduced = model.reduced_prompt(ids[None], None, types[None], pixels, grids, record)
        features = library.model.get_image_features(pixels, grids, return_dict=True).pooler_output
    for i, (image, reduction) in enumerate(zip(reduced.encoder_outputs.pooler_output, record.image_reductions[0])):
        grid = (int(grids[i, 1]) // 2, int(grids[i, 2]) // 2)
        tokens, kept = expected_image(method, features[i], grid, reduction)
        assert reduction.original_tokens == features[i].shape[0]
        if kept is None:
            assert reduction.kept_patches is None
        else:
            assert torch.equal(reduction.kept_patches, kept) and kept.numel() == budget(features[i].shape[0])
        torch.testing.assert_close(image, tokens, rtol=0, atol=1e-6)
    # Each image's run of <|image_pad|> is as long as its reduced tokens.
    assert int((reduced.input_ids == IMAGE).sum()) == sum(t.shape[0] for t in reduced.encoder_outputs.pooler_output)
    assert record.num_kept_image_tokens() < 64 + 24


@pytest.mark.parametrize("method", METHODS)
def test_reduced_prompt_logits_equal_the_library_on_hand_built_inputs(family, models, method):
    model, library = models
    ids, types, pixels, grids = prompt(family, [(12, 16), (8, 8)], seed=2)
    record = PruningRecord(dart_config=settings(method))
    with torch.no_grad():
        reduced = model.reduced_prompt(ids[None], None, types[None], pixels, grids, record)
        ours = model(**reduced.model_inputs(), pruning_record=record).logits
        kwargs, _ = hand_built(family, library, method, ids, types, pixels, grids)
        theirs = library(**kwargs).logits
    assert torch.equal(reduced.position_ids[1:], kwargs["position_ids"])
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_deepstack_features_of_the_kept_tokens_reach_them():
    """Qwen3-VL's alone (DeepStack)."""
    family = "qwen3_vl"
    model = build_tiny_qwen_model(family, seed=1)
    library = LIBRARY_CLASSES[family](model.config).eval()
    library.load_state_dict(model.state_dict())
    ids, types, pixels, grids = prompt(family, [(12, 16)], seed=3)
    record = PruningRecord(dart_config=settings("divprune"))
    with torch.no_grad():
        reduced = model.reduced_prompt(ids[None], None, types[None], pixels, grids, record)
        ours = model(**reduced.model_inputs(), pruning_record=record).logits
        kwargs, kept = hand_built(family, library, "divprune", ids, types, pixels, grids)
        encoded = kwargs["mm_encoder_outputs"]["image"]
        # One kept token's DeepStack features zeroed: its position and every later one change.
        encoded.deepstack_features = [(level[0].clone().index_fill_(0, torch.tensor([3]), 0.0),)
                                      for level in encoded.deepstack_features]
        zeroed = library(**kwargs).logits
    image_start = int((kwargs["input_ids"][0] == IMAGE).nonzero()[0])
    assert not torch.allclose(ours[:, image_start + 3:], zeroed[:, image_start + 3:], atol=1e-4)
    torch.testing.assert_close(ours[:, : image_start + 3], zeroed[:, : image_start + 3], rtol=0, atol=1e-5)
    for level, own in zip(reduced.encoder_outputs.deepstack_features, encoded.deepstack_features):
        assert level[0].shape[0] == kept[0].numel()


@pytest.mark.parametrize("method", METHODS)
def test_cached_decoding_equals_a_full_forward_of_the_reduced_prompt(family, models, method):
    model, _ = models
    ids, types, pixels, grids = prompt(family, [(12, 16)], seed=4)
    inputs = inputs_of(ids, types, pixels, grids)
    record, steps = PruningRecord(dart_config=settings(method)), 4
    with torch.no_grad():
        out = model.generate(**inputs, pruning_record=record, max_new_tokens=steps, min_new_tokens=steps,
                             do_sample=False, return_dict_in_generate=True, output_logits=True)
        step_logits = torch.stack(out.logits, 1)
        again = PruningRecord(dart_config=settings(method))
        reduced = model.reduced_prompt(ids[None], None, types[None], pixels, grids, again)
        new = out.sequences[:, ids.numel():]
        full = reduced.model_inputs()
        length = full["input_ids"].shape[1]
        full["input_ids"] = torch.cat([full["input_ids"], new[:, :-1]], 1)
        full["attention_mask"] = torch.ones_like(full["input_ids"])
        full["mm_token_type_ids"] = torch.cat([full["mm_token_type_ids"], torch.zeros_like(new[:, :-1])], 1)
        last = full["position_ids"][:, :, -1:]
        full["position_ids"] = torch.cat([full["position_ids"], last + torch.arange(1, steps)], 2)
        logits = model(**full, pruning_record=again).logits
    assert torch.equal(out.sequences[:, : ids.numel()], ids[None])  # the caller's prompt, then the new tokens
    assert length < ids.numel()
    torch.testing.assert_close(logits[:, -steps:], step_logits, rtol=0, atol=1e-4)
    # The cached rope_deltas continue from the full prompt: next position = shortened length + delta.
    assert int(model.model.rope_deltas[0, 0]) + length == int(last[1:].max()) + 1


@pytest.mark.parametrize("method", METHODS)
def test_a_ragged_batch_equals_single_runs(family, models, method):
    model, _ = models
    prompts = [prompt(family, [(8, 12)], after=(120,), seed=5),
               prompt(family, [(16, 10)], after=(120, 121, 122, 123, 124), seed=6),
               prompt(family, [(6, 6), (10, 8)], seed=7)]
    singles = []
    for p in prompts:
        record = PruningRecord(dart_config=settings(method))
        with torch.no_grad():
            tokens = model.generate(**inputs_of(*p), pruning_record=record, max_new_tokens=4, min_new_tokens=4,
                                    do_sample=False)
        singles.append((tokens[0, p[0].numel():].tolist(), record))
    batch = left_padded(prompts)
    record = PruningRecord(dart_config=settings(method))
    with torch.no_grad():
        out = model.generate(**batch, pruning_record=record, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert torch.equal(out[:, : batch["input_ids"].shape[1]], batch["input_ids"])
    for b, (tokens, single) in enumerate(singles):
        assert out[b, batch["input_ids"].shape[1]:].tolist() == tokens
        ours, alone = record.image_reductions[b], single.image_reductions[0]
        assert [r.original_tokens for r in ours] == [r.original_tokens for r in alone]
        assert [None if r.kept_patches is None else r.kept_patches.tolist() for r in ours] == \
            [None if r.kept_patches is None else r.kept_patches.tolist() for r in alone]


def test_visionzip_is_refused_clearly(family, models):
    model, _ = models
    inputs = inputs_of(*prompt(family, [(8, 12)]))
    with pytest.raises(ValueError, match=r"'visionzip' reads the vision tower's \[CLS\] token .*has no \[CLS\] token"):
        model.generate(**inputs, pruning_record=PruningRecord(dart_config=settings("visionzip")), max_new_tokens=1)


def test_unreduced_features_in_forward_are_refused_with_where_they_run(family, models):
    model, _ = models
    with pytest.raises(ValueError, match="reached it unreduced: on Qwen-VL models they run in `generate`"):
        model(**inputs_of(*prompt(family, [(8, 12)])), pruning_record=PruningRecord(dart_config=settings("pooling")))
