"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL with DART, on tiny seeded models: unpruned == transformers' own classes, the
kept set == the reference's rule computed independently, cached decoding == a full forward with the kept set
forced, eager == sdpa, ragged batches == single runs, every image and video span pruned on its own. What only
Qwen3-VL has (DeepStack) is tested in test_qwen3_vl.py."""

import importlib.util
import logging

import pytest
import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration, Qwen3VLForConditionalGeneration

from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.language_model.pruned_generation import vision_spans
from llava.model.language_model.qwen_vl import QWEN_CLASSES
from llava.model.pruning import make_dart_config, parse_dart_config
from llava.model.pruning.backends import QwenVLBackend
from llava.model.pruning.dart import select_image_tokens
from llava.model.pruning.engine import _reported
from llava.model.tiny_qwen import (
    FAMILIES,
    SPECIAL_IDS,
    build_tiny_qwen_checkpoint,
    build_tiny_qwen_model,
    patch_values,
    tiny_qwen_config,
)

LIBRARY_CLASSES = {"qwen2_vl": Qwen2VLForConditionalGeneration, "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
                   "qwen3_vl": Qwen3VLForConditionalGeneration}
IMAGE, VIDEO = SPECIAL_IDS["<|image_pad|>"], SPECIAL_IDS["<|video_pad|>"]
START, END = SPECIAL_IDS["<|vision_start|>"], SPECIAL_IDS["<|vision_end|>"]
IM_START, IM_END = SPECIAL_IDS["<|im_start|>"], SPECIAL_IDS["<|im_end|>"]


def prompt(family, grids, before=(110, 111, 112), after=(120, 121, 122, 123), seed=0, video=False):
    """A chat-shaped prompt of `family` with one vision block per (t, h, w) patch grid: ids, token types, pixels,
    grids. A Qwen3-VL video is one block per temporal patch, each after its timestamp's text (a token here)."""
    g = torch.Generator().manual_seed(seed)
    ids = [IM_START, *before]
    for t, h, w in grids:
        if video and family == "qwen3_vl":
            for step in range(t):
                ids += [140 + step, START] + [VIDEO] * (h * w // 4) + [END]
        else:
            ids += [START] + [VIDEO if video else IMAGE] * (t * h * w // 4) + [END]
    ids += [*after, IM_END, IM_START, 130]
    ids = torch.tensor(ids)
    types = torch.where(ids == IMAGE, 1, torch.where(ids == VIDEO, 2, 0))
    pixels = torch.randn(sum(t * h * w for t, h, w in grids), patch_values(family), generator=g)
    return ids, types, pixels, torch.tensor(grids)


def inputs_of(ids, types, pixels, grids, video=False):
    kind = "video" if video else "image"
    return {"input_ids": ids[None], "mm_token_type_ids": types[None], "attention_mask": torch.ones_like(ids)[None],
            ("pixel_values_videos" if video else "pixel_values"): pixels, f"{kind}_grid_thw": grids}


def left_padded(prompts):
    """A batch of prompt() results, left-padded."""
    longest = max(p[0].numel() for p in prompts)
    ids = torch.full((len(prompts), longest), SPECIAL_IDS["<|endoftext|>"])
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for b, (row, row_types, _, _) in enumerate(prompts):
        ids[b, longest - row.numel():], types[b, longest - row.numel():] = row, row_types
        mask[b, longest - row.numel():] = 1
    return {"input_ids": ids, "mm_token_type_ids": types, "attention_mask": mask,
            "pixel_values": torch.cat([p[2] for p in prompts]), "image_grid_thw": torch.cat([p[3] for p in prompts])}


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture(scope="module")
def models(family):
    return {attn: build_tiny_qwen_model(family, seed=1, attn_implementation=attn) for attn in ("eager", "sdpa")}


def greedy(model, inputs, record, steps=5, **kwargs):
    with torch.no_grad():
        out = model.generate(**inputs, pruning_record=record, max_new_tokens=steps, min_new_tokens=steps,
                             do_sample=False, **kwargs)
    return out


def reference_kept(model, inputs, cfg):
    """The reference's rule from an unpruned forward: per image span [s, s+m), DART with text pivots among the
    tokens from <|vision_end|> to the end of the prompt; text and the other tokens kept. It reads layer K's
    input (for Qwen3-VL, after the DeepStack injections before it)."""
    text_model = model.model.language_model
    captured = {}
    hook = text_model.layers[cfg.K].register_forward_pre_hook(lambda module, args: captured.setdefault("x", args[0]))
    try:
        with torch.no_grad():
            plain = model(**inputs, pruning_record=PruningRecord(dart_config=None), use_cache=True)
    finally:
        hook.remove()
    normed = text_model.norm(captured["x"])
    keys = plain.past_key_values.layers[cfg.K - 1].keys.transpose(1, 2).flatten(2)
    rows = []
    for b, spans in enumerate(vision_spans(inputs["input_ids"], (IMAGE, VIDEO))):
        length = inputs["input_ids"].shape[1]
        real = inputs["attention_mask"][b].bool()
        keep = real.clone()
        for start, count in spans:
            keep[start : start + count] = False
        kept = [keep.nonzero().flatten()]
        padding = int(real.long().argmax())
        for start, count in spans:
            after = torch.arange(start + count, length)
            after = after[keep[start + count :]]  # from <|vision_end|> on, not other images' tokens
            kept.append(select_image_tokens(normed[b], keys[b], (start, count), cfg, False, after, padding))
        rows.append(torch.cat(kept).sort().values)
    return rows


def library_twin(family, model, config=None):
    """transformers' own class of `family` with `model`'s weights (under `config`, default model's)."""
    library = LIBRARY_CLASSES[family](config or model.config).eval()
    library.load_state_dict(model.state_dict())
    return library


def assert_unpruned_logits_equal(model, library, inputs):
    with torch.no_grad():
        ours = model(**inputs, pruning_record=PruningRecord(dart_config=None)).logits
        theirs = library(**inputs).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    return theirs


def test_unpruned_logits_equal_the_library_class(family, models):
    for model in models.values():
        assert_unpruned_logits_equal(model, library_twin(family, model), inputs_of(*prompt(family, [(1, 8, 12)])))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_single_image_kept_set_is_the_reference_rule(family, models, attn):
    model = models[attn]
    inputs = inputs_of(*prompt(family, [(1, 34, 46)]))  # 391 image tokens, as in the DART release's example
    settings = make_dart_config(K=2, reduction_ratio=0.778, max_num_trunction=None)
    record = PruningRecord(dart_config=settings)
    greedy(model, inputs, record, steps=2)
    (start, count), = record.image_spans[0]
    assert count == 391 and inputs["input_ids"][0, start + count] == END
    assert record.num_kept_image_tokens() == 84  # T = int(391 * 0.222 / 8) = 10: 4 + 8 * 10
    expected, = reference_kept(model, inputs, parse_dart_config(settings))
    assert torch.equal(record.kept_positions(0), expected)


def test_a_small_image_at_a_high_ratio_keeps_only_its_pivots(family, models):
    inputs = inputs_of(*prompt(family, [(1, 16, 16)]))  # 64 tokens; T = int(64 * 0.111 / 8) = 0
    record = PruningRecord(dart_config=make_dart_config(reduction_ratio=0.889, max_num_trunction=None))
    greedy(models["sdpa"], inputs, record, steps=1)
    assert record.num_kept_image_tokens() == 4


@pytest.mark.parametrize("method", ["fastv", "pdrop"])
def test_attention_methods_keep_the_most_attended_tokens_of_eager_attention_under_m_rope(family, models, method):
    """FastV (after layer K-1 = 1) and a one-stage PyramidDrop (before layer 2, by layer 2's own attention):
    the kept set is the top of the last prompt token's head-averaged attention in that layer of an unpruned
    eager forward (the 3-D positions through M-RoPE), under eager and sdpa alike."""
    inputs = inputs_of(*prompt(family, [(1, 12, 16)], seed=2))  # 48 image tokens
    extra = {"pdrop_layers": [2], "pdrop_ratios": [0.25]} if method == "pdrop" else {}
    settings = make_dart_config(method=method, K=2, reduction_ratio=0.75, max_num_trunction=None, **extra)
    with torch.no_grad():
        plain = models["eager"](**inputs, pruning_record=PruningRecord(dart_config=None), output_attentions=True)
    (start, count), = vision_spans(inputs["input_ids"], (IMAGE, VIDEO))[0]
    kept_count = 4 + 8 * int(48 * 0.25 / 8) if method == "fastv" else int(48 * 0.25)  # DART's budget; int(m * r)
    layer = 1 if method == "fastv" else 2
    scores = plain.attentions[layer][0, :, -1, start:start + count].mean(0)
    expected = scores.topk(kept_count).indices.sort().values
    for attn, model in models.items():
        record = PruningRecord(dart_config=settings)
        greedy(model, inputs, record, steps=2)
        (kept,) = record.kept_image_positions()
        assert torch.equal(kept, expected), attn


@pytest.mark.parametrize("method", ["visionzip", "divprune", "pooling"])
def test_a_method_before_the_language_model_runs_or_is_refused_clearly(family, models, method):
    """DivPrune and pooling reduce the images in generate (tests/model/test_qwen_before_llm.py); VisionZip needs a
    [CLS] token, which the Qwen ViT has not."""
    inputs = inputs_of(*prompt(family, [(1, 8, 12)]))
    record = PruningRecord(dart_config=make_dart_config(method=method))
    if method == "visionzip":
        with pytest.raises(ValueError, match=r"'visionzip' reads the vision tower's \[CLS\] token .* has no \[CLS\] token"):
            greedy(models["sdpa"], inputs, record, steps=1)
        return
    greedy(models["sdpa"], inputs, record, steps=1)
    assert record.image_reductions[0][0].original_tokens == 24 and record.num_kept_image_tokens() < 24


def test_max_num_trunction_is_ignored_like_the_reference_and_said_once(family, models, caplog):
    _reported.clear()
    inputs = inputs_of(*prompt(family, [(1, 16, 16)]))
    kept = []
    with caplog.at_level(logging.WARNING, logger="llava.model.pruning.engine"):
        for budget in (None, 8, 200):
            record = PruningRecord(dart_config=make_dart_config(reduction_ratio=0.5, max_num_trunction=budget))
            greedy(models["sdpa"], inputs, record, steps=1)
            kept.append(record.kept_positions(0))
    assert torch.equal(kept[0], kept[1]) and torch.equal(kept[0], kept[2])
    assert caplog.text.count("is ignored on Qwen2-VL / Qwen2.5-VL") == 2
    settings = QwenVLBackend(models["sdpa"].model.language_model).adapt_settings(
        parse_dart_config(make_dart_config(max_num_trunction=128)))
    assert settings.max_num_trunction is None and settings.budget_per_pivot(64) == int(64 * (1 - 0.778) / 8)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_cached_decoding_equals_a_full_forward_with_the_kept_set_forced(family, models, attn):
    model = models[attn]
    ids, types, pixels, grids = prompt(family, [(1, 12, 16)], seed=3)
    inputs = inputs_of(ids, types, pixels, grids)
    record = PruningRecord(dart_config=make_dart_config(K=2, reduction_ratio=0.7, max_num_trunction=None))
    steps = 5
    with torch.no_grad():
        out = model.generate(**inputs, pruning_record=record, max_new_tokens=steps, min_new_tokens=steps,
                             do_sample=False, return_dict_in_generate=True, output_logits=True)
        step_logits = torch.stack(out.logits, 1)
        # One forward over prompt + generated tokens (its 3-D positions from the library's get_rope_index), no cache.
        full_ids = out.sequences[:, :-1]
        full_types = torch.cat([types[None], torch.zeros(1, steps - 1, dtype=types.dtype)], 1)
        forced = PruningRecord(dart_config=record.dart_config, forced_keep=record.kept_positions(0))
        full = model(input_ids=full_ids, mm_token_type_ids=full_types, attention_mask=torch.ones_like(full_ids),
                     pixel_values=pixels, image_grid_thw=grids, pruning_record=forced).logits
    assert record.pruned and record.num_kept_image_tokens() < 48
    # The pruned forward returns the kept positions only: the last `steps` are the prompt end + generated tokens.
    torch.testing.assert_close(full[:, -steps:], step_logits, rtol=0, atol=1e-4)


def test_eager_and_sdpa_keep_the_same_tokens_and_answer_alike(family, models):
    inputs = inputs_of(*prompt(family, [(1, 12, 20)], seed=4))
    settings = make_dart_config(reduction_ratio=0.778, max_num_trunction=None)
    records = {attn: PruningRecord(dart_config=settings) for attn in models}
    tokens = {attn: greedy(model, inputs, records[attn]).tolist() for attn, model in models.items()}
    assert torch.equal(records["eager"].keep, records["sdpa"].keep)
    assert tokens["eager"] == tokens["sdpa"]


def test_a_ragged_batch_equals_single_runs(family, models):
    model = models["sdpa"]
    prompts = [prompt(family, [(1, 8, 12)], after=(120,), seed=5), prompt(family, [(1, 16, 10)], after=(120, 121, 122, 123, 124, 125), seed=6),
               prompt(family, [(1, 6, 6), (1, 10, 8)], seed=7)]
    settings = make_dart_config(reduction_ratio=0.6, max_num_trunction=None)
    singles = []
    for p in prompts:
        record = PruningRecord(dart_config=settings)
        singles.append((greedy(model, inputs_of(*p), record)[0, p[0].numel():].tolist(), record))
    batch = left_padded(prompts)
    record = PruningRecord(dart_config=settings)
    out = greedy(model, batch, record)[:, batch["input_ids"].shape[1]:]
    assert record.keep_valid is not None  # rows keep different numbers of tokens
    expected = reference_kept(model, batch, parse_dart_config(settings))
    for b, (tokens, single) in enumerate(singles):
        assert out[b].tolist() == tokens
        assert torch.equal(record.kept_positions(b), expected[b])
        assert [p.tolist() for p in record.kept_image_positions(b)] == [p.tolist() for p in single.kept_image_positions(0)]


def test_two_images_and_a_video_are_pruned_span_by_span(family, models):
    model = models["sdpa"]
    settings = make_dart_config(reduction_ratio=0.5, max_num_trunction=None)
    record = PruningRecord(dart_config=settings)
    greedy(model, inputs_of(*prompt(family, [(1, 8, 8), (1, 8, 16)], seed=8)), record, steps=1)
    # 16 tokens: T = int(16 * 0.5 / 8) = 1, 4 + 8; 32 tokens: T = 2, 4 + 16.
    assert [len(p) for p in record.kept_image_positions(0)] == [12, 20]

    video = PruningRecord(dart_config=settings)
    greedy(model, inputs_of(*prompt(family, [(2, 8, 8)], seed=9, video=True), video=True), video, steps=1)
    if family == "qwen3_vl":  # a span per temporal patch (timestamps between): 16 tokens each, 12 kept each
        assert [count for _, count in video.image_spans[0]] == [16, 16]
        assert [len(p) for p in video.kept_image_positions(0)] == [12, 12]
    else:
        (start, count), = video.image_spans[0]
        assert count == 32 and video.num_kept_image_tokens() == 20


def test_settings_are_read_from_the_config_or_its_text_config(family):
    model = build_tiny_qwen_model(family, seed=2)
    inputs = inputs_of(*prompt(family, [(1, 8, 12)]))
    for config in (model.config, model.config.text_config):
        model.config.DART_config = model.config.text_config.DART_config = None
        config.DART_config = make_dart_config(reduction_ratio=0.5, max_num_trunction=None)
        greedy(model, inputs, None, steps=1)
        assert model.last_pruning_record.num_kept_image_tokens() == 12
    model.config.DART_config = make_dart_config(K=9)
    with pytest.raises(ValueError, match=r"DART_config\['K'\]=9 must be in 1..3"):
        greedy(model, inputs, None, steps=1)


def test_the_dart_releases_own_qwen_settings_are_accepted_unchanged(family):
    """The DART release's Qwen wrappers write `Sparse` and no `retain_token_num_for_llava_next` (Qwen2-VL on the
    config, Qwen2.5-VL on its text_config); pruning follows them, and `Sparse: false` switches it off."""
    model = build_tiny_qwen_model(family, seed=2)
    inputs = inputs_of(*prompt(family, [(1, 8, 12)]))
    release = {"Sparse": True, "K": 2, "image_token_start_index": 0, "image_token_length": 0,
               "max_num_trunction": 128, "reduction_ratio": 0.5, "pivot_image_token": 4, "pivot_text_token": 4}
    where = model.config if family == "qwen2_vl" else model.config.text_config
    where.DART_config = release
    greedy(model, inputs, None, steps=1)
    assert model.last_pruning_record.num_kept_image_tokens() == 4 + 8 * int(24 * 0.5 / 8)
    where.DART_config = {**release, "Sparse": False}
    greedy(model, inputs, None, steps=1)
    assert model.last_pruning_record.num_kept_image_tokens() == 24  # unpruned
    where.DART_config = {**release, "image_token_lenght": 0}
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['image_token_lenght'\]"):
        greedy(model, inputs, None, steps=1)


# -- loading a checkpoint in the hub layout ----------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(family, tmp_path_factory):
    return build_tiny_qwen_checkpoint(tmp_path_factory.mktemp(family), family, seed=3)


def chat(processor, question, images):
    messages = [{"role": "user", "content": [{"type": "image"}] * len(images) + [{"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(text=[text], images=images, return_tensors="pt")


def test_load_pretrained_model_loads_the_checkpoint_with_its_processor(family, checkpoint):
    tokenizer, model, processor, context_len = load_pretrained_model(str(checkpoint), None, device="cpu")
    assert type(model).__name__.endswith("WithPruning") and model.dtype == torch.float32
    assert processor.tokenizer is tokenizer and context_len == 4096
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == model.config.image_token_id
    inputs = chat(processor, "What colour is the square?", [Image.new("RGB", (200, 120), (200, 30, 30))])
    # 200 x 120 at 14-pixel patches merged 2 x 2: the processor resizes to 196 x 112 -> 7 x 4 = 28 tokens;
    # Qwen3-VL's 16-pixel patches: 192 x 128 -> 6 x 4 = 24.
    image_tokens = 24 if family == "qwen3_vl" else 28
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == image_tokens
    library = LIBRARY_CLASSES[family].from_pretrained(str(checkpoint)).eval()
    with torch.no_grad():
        ours = model(**inputs, pruning_record=PruningRecord(dart_config=None)).logits
        theirs = library(**inputs).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    model.config.DART_config = make_dart_config(reduction_ratio=0.5, max_num_trunction=None)
    with torch.no_grad():
        model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert model.last_pruning_record.num_kept_image_tokens() == 4 + 8 * int(image_tokens * 0.5 / 8)


def test_pixel_bounds_are_settable(family, checkpoint):
    _, model, processor, _ = load_pretrained_model(str(checkpoint), None, device="cpu", max_pixels=8 * 28 * 28)
    inputs = chat(processor, "Colour?", [Image.new("RGB", (400, 400))])
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) <= 8


def test_without_torchvision_the_processor_refuses_videos_clearly(family, checkpoint):
    _, _, processor, _ = load_pretrained_model(str(checkpoint), None, device="cpu")
    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: the library's own processor, with videos, is used")
    with pytest.raises(RuntimeError, match="without its video part"):
        processor(text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[torch.zeros(2, 3, 56, 56)])


def test_an_unreachable_hub_id_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    # huggingface_hub reads HF_HUB_OFFLINE once, at import: without its constant this waits out network retries.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="hub is unreachable|not a local directory"):
        load_pretrained_model("Qwen/No-Such-Model-For-Tests", None, device="cpu")


@pytest.mark.parametrize("sliding_family", ["qwen2_vl", "qwen2_5_vl"])  # Qwen3-VL's text model has no window
def test_sliding_window_layers_run_unpruned_as_the_library_and_refuse_pruning(sliding_family):
    """The text model's forward is the library's, sliding-window layers included; pruning them is refused
    before any layer runs (a window over a pruned cache would count kept tokens, not positions)."""
    family = sliding_family
    config = tiny_qwen_config(family, "eager")
    config.text_config.use_sliding_window, config.text_config.sliding_window = True, 6
    config.text_config.layer_types = ["sliding_attention"] * config.text_config.num_hidden_layers
    torch.manual_seed(2)
    model = QWEN_CLASSES[family](config).eval()
    inputs = inputs_of(*prompt(family, [(1, 8, 12)]))
    windowed = assert_unpruned_logits_equal(model, library_twin(family, model), inputs)
    with torch.no_grad():
        unwindowed = library_twin(family, model, tiny_qwen_config(family, "eager"))
        assert not torch.allclose(unwindowed(**inputs).logits, windowed, atol=1e-3)  # the window bites
        with pytest.raises(ValueError, match="sliding-window layers"):
            model(**inputs, pruning_record=PruningRecord(dart_config=make_dart_config(reduction_ratio=0.5)))
