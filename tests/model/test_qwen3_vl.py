"""Qwen3-VL's DeepStack under pruning, on a tiny seeded model (features of tower blocks 0, 1, 2 added to the image
tokens' hidden states after text layers 0, 1, 2, as the 8B adds blocks 8, 16, 24 after layers 0-2).

The reference is transformers' own `Qwen3VLForConditionalGeneration` run unpruned, with the dropped tokens hidden
from every layer from K on by the attention mask: there, every token keeps its position, the library's DeepStack
adds each feature to the token it belongs to, and a dropped token can no longer reach a kept one, which is what
pruning at K means. The pruned model must give the kept tokens the same logits. What Qwen3-VL shares with Qwen2-VL
and Qwen2.5-VL (kept sets, attention rows, batches, loading) is tested in test_qwen_vl.py over all three.
"""

import pytest
import torch
from transformers import Qwen3VLForConditionalGeneration, Qwen3VLMoeForConditionalGeneration

from llava.model import PruningRecord
from llava.model.pruning import make_dart_config
from llava.model.tiny_qwen import SPECIAL_IDS, build_tiny_qwen_model, patch_values

IMAGE, VIDEO = SPECIAL_IDS["<|image_pad|>"], SPECIAL_IDS["<|video_pad|>"]
START, END = SPECIAL_IDS["<|vision_start|>"], SPECIAL_IDS["<|vision_end|>"]
IM_START, IM_END = SPECIAL_IDS["<|im_start|>"], SPECIAL_IDS["<|im_end|>"]
DEEPSTACK_LAYERS = (0, 1, 2)  # the tiny model's: one per tower block


def prompt(image=(8, 12), video=None, seed=0):
    """An image block (h, w patches), then optionally a video (t, h, w) as Qwen3-VL lays it out (a block per
    temporal patch after its timestamp's text), then the question: the model's keyword arguments."""
    g = torch.Generator().manual_seed(seed)
    h, w = image
    ids = [IM_START, 110, 111, START] + [IMAGE] * (h * w // 4) + [END]
    kwargs = {"pixel_values": torch.randn(h * w, patch_values("qwen3_vl"), generator=g),
              "image_grid_thw": torch.tensor([[1, h, w]])}
    if video is not None:
        t, vh, vw = video
        for step in range(t):
            ids += [140 + step, START] + [VIDEO] * (vh * vw // 4) + [END]
        kwargs["pixel_values_videos"] = torch.randn(t * vh * vw, patch_values("qwen3_vl"), generator=g)
        kwargs["video_grid_thw"] = torch.tensor([[t, vh, vw]])
    ids = torch.tensor(ids + [120, 121, 122, IM_END, IM_START, 130])
    types = torch.where(ids == IMAGE, 1, torch.where(ids == VIDEO, 2, 0))
    return {"input_ids": ids[None], "mm_token_type_ids": types[None], "attention_mask": torch.ones_like(ids)[None],
            **kwargs}


@pytest.fixture(scope="module")
def model():
    return build_tiny_qwen_model("qwen3_vl", seed=4, attn_implementation="eager")


@pytest.fixture(scope="module")
def library(model):
    twin = Qwen3VLForConditionalGeneration(model.config).eval()
    twin.load_state_dict(model.state_dict())
    return twin


def forced_kept(inputs, keep_every=3):
    """A kept set: every text token, and every `keep_every`-th token of each vision span."""
    ids = inputs["input_ids"][0]
    vision = (ids == IMAGE) | (ids == VIDEO)
    index = torch.arange(ids.numel())
    return index[~vision | (vision.cumsum(0) % keep_every == 1)]


def masked_library_logits(library, inputs, kept, K):
    """The library's logits with the tokens outside `kept` hidden from layers K.. by the attention mask (each token
    still sees itself, so no row is empty; the dropped rows are never compared)."""
    length = inputs["input_ids"].shape[1]
    visible = torch.zeros(length, dtype=torch.bool)
    visible[kept] = True
    allowed = torch.ones(length, length).tril().bool() & (visible[None, :] | torch.eye(length, dtype=torch.bool))
    mask = torch.zeros(1, 1, length, length).masked_fill(~allowed, torch.finfo(torch.float32).min)

    def hide_dropped(module, args, kwargs):
        return args, {**kwargs, "attention_mask": mask}

    hooks = [layer.register_forward_pre_hook(hide_dropped, with_kwargs=True)
             for layer in library.model.language_model.layers[K:]]
    try:
        with torch.no_grad():
            return library(**inputs).logits
    finally:
        for hook in hooks:
            hook.remove()


def pruned_logits(model, inputs, kept, K):
    record = PruningRecord(dart_config=make_dart_config(K=K, max_num_trunction=None), forced_keep=kept)
    with torch.no_grad():
        logits = model(**inputs, pruning_record=record).logits
    assert torch.equal(record.kept_positions(0), kept)
    return logits


@pytest.mark.parametrize("K", [1, 2, 3])  # before, at and after the last DeepStack injection (after layer 2)
@pytest.mark.parametrize("with_video", [False, True])
def test_deepstack_reaches_the_kept_tokens_as_it_would_unpruned(model, library, K, with_video):
    inputs = prompt(video=(2, 4, 8) if with_video else None, seed=K)
    kept = forced_kept(inputs)
    ours = pruned_logits(model, inputs, kept, K)
    reference = masked_library_logits(library, inputs, kept, K)
    torch.testing.assert_close(ours[0], reference[0, kept], rtol=0, atol=1e-5)


def _zero_deepstack_feature(model, token: int):
    """Zero every DeepStack feature of the `token`-th vision token (row-major over the image's merged tokens)."""

    def zero(module, args, output):
        for feature in output.deepstack_features:
            feature[token] = 0
        return output

    return model.model.visual.register_forward_hook(zero)


def test_a_dropped_tokens_deepstack_feature_changes_nothing_and_a_kept_ones_changes_what_follows_it(model):
    K = 1  # the injections after layers 1 and 2 land on the pruned sequence
    inputs = prompt(seed=5)
    kept = forced_kept(inputs)
    start = int((inputs["input_ids"][0] == IMAGE).nonzero()[0])
    baseline = pruned_logits(model, inputs, kept, K)

    dropped = 1  # vision token 1 of the image: not kept (every third from token 0 is)
    assert start + dropped not in kept.tolist()
    hook = _zero_deepstack_feature(model, dropped)
    try:
        unchanged = pruned_logits(model, inputs, kept, K)
    finally:
        hook.remove()
    torch.testing.assert_close(unchanged, baseline, rtol=0, atol=0)

    kept_token = 6  # kept; its features also feed layers 1 and 2 after pruning
    position = kept.tolist().index(start + kept_token)
    hook = _zero_deepstack_feature(model, kept_token)
    try:
        changed = pruned_logits(model, inputs, kept, K)
    finally:
        hook.remove()
    torch.testing.assert_close(changed[:, :position], baseline[:, :position], rtol=0, atol=0)  # causal: before it
    assert (changed[0, position:] - baseline[0, position:]).abs().amax(-1).min() > 0  # it and every later token


def test_the_moe_variant_follows_deepstack_alike():
    """Qwen3-VL-MoE (every layer's MLP a mixture of experts): unpruned it is the library's class, and pruned at
    K = 2 it equals the library with the dropped tokens hidden, on an image and a video."""
    moe = build_tiny_qwen_model("qwen3_vl_moe", seed=6, attn_implementation="eager")
    twin = Qwen3VLMoeForConditionalGeneration(moe.config).eval()
    twin.load_state_dict(moe.state_dict())
    inputs = prompt(video=(2, 4, 8), seed=8)
    with torch.no_grad():
        unpruned = moe(**inputs, pruning_record=PruningRecord(dart_config=None)).logits
        torch.testing.assert_close(unpruned, twin(**inputs).logits, rtol=0, atol=1e-5)
    kept = forced_kept(inputs)
    torch.testing.assert_close(pruned_logits(moe, inputs, kept, 2)[0],
                               masked_library_logits(twin, inputs, kept, 2)[0, kept], rtol=0, atol=1e-5)


@pytest.mark.parametrize("K", [1, 3])  # test_qwen_vl.py checks K = 2 for every Qwen family
def test_cached_decoding_equals_a_full_forward_with_the_kept_set_forced(model, K):
    inputs = prompt(video=(2, 4, 8), seed=6)
    record = PruningRecord(dart_config=make_dart_config(K=K, reduction_ratio=0.5, max_num_trunction=None))
    steps = 4
    with torch.no_grad():
        out = model.generate(**inputs, pruning_record=record, max_new_tokens=steps, min_new_tokens=steps,
                             do_sample=False, return_dict_in_generate=True, output_logits=True)
        step_logits = torch.stack(out.logits, 1)
        full_ids = out.sequences[:, :-1]
        types = torch.cat([inputs["mm_token_type_ids"], torch.zeros(1, steps - 1, dtype=torch.long)], 1)
        forced = PruningRecord(dart_config=record.dart_config, forced_keep=record.kept_positions(0))
        full = model(**{**inputs, "input_ids": full_ids, "mm_token_type_ids": types,
                        "attention_mask": torch.ones_like(full_ids)}, pruning_record=forced).logits
    assert record.pruned
    torch.testing.assert_close(full[:, -steps:], step_logits, rtol=0, atol=1e-4)


def test_an_image_and_a_video_in_one_prompt_are_pruned_span_by_span(model):
    """The image is one span; the video one span per temporal patch (its timestamps' text between them). Each
    keeps 4 + 8 * int(m * (1 - ratio) / 8) tokens, the Qwen budget rule."""
    inputs = prompt(image=(8, 16), video=(3, 8, 8), seed=7)
    record = PruningRecord(dart_config=make_dart_config(reduction_ratio=0.5, max_num_trunction=None))
    with torch.no_grad():
        model.generate(**inputs, pruning_record=record, max_new_tokens=1, do_sample=False)
    assert [count for _, count in record.image_spans[0]] == [32, 16, 16, 16]
    assert [len(p) for p in record.kept_image_positions(0)] == [4 + 8 * 2, 12, 12, 12]


# -- videos through the family, on the released layout ---------------------------------------------------------


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    from llava.model.families import load_model
    from llava.model.released_layouts import build_released_checkpoint

    path = build_released_checkpoint("Qwen/Qwen3-VL-8B-Instruct", tmp_path_factory.mktemp("qwen3-vl"), seed=5)
    return path, load_model(str(path), device="cpu", attn_implementation="eager")


def clip(num_frames, size=(96, 64), fps=2.0, seed=0):
    import numpy as np
    from PIL import Image

    from llava.model.families import Video

    rng = np.random.default_rng(seed)
    frames = [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(num_frames)]
    return Video(frames, [i / fps for i in range(num_frames)], fps)


def test_a_video_and_an_image_through_the_family_answer_as_the_library_and_prune_per_frame_pair(released):
    from PIL import Image

    path, loaded = released
    image = Image.new("RGB", (128, 96), (200, 40, 40))
    inputs = loaded.question_inputs("What happens?", [image], None, videos=[clip(4)])
    text = loaded.tokenizer.decode(inputs.input_ids)
    # Each pair of frames is its own block after its timestamp (the mean time of its two frames).
    assert text.startswith("<|im_start|>user\n<0.2 seconds><|vision_start|><|video_pad|>")
    assert "<|vision_end|><1.2 seconds><|vision_start|><|video_pad|>" in text
    kwargs = loaded.generate_inputs([inputs])
    library = Qwen3VLForConditionalGeneration.from_pretrained(str(path), dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    with torch.no_grad():
        ours = loaded.model(**kwargs, pruning_record=PruningRecord(dart_config=None)).logits
        theirs = library(**kwargs).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)

    record = PruningRecord(dart_config=make_dart_config(reduction_ratio=0.5, max_num_trunction=None))
    with torch.no_grad():
        loaded.model.generate(**kwargs, pruning_record=record, max_new_tokens=1, do_sample=False)
    # 96 x 64 frames: 3 x 2 merged tokens, two frame pairs; the 128 x 96 image: 4 x 3 tokens.
    assert [count for _, count in record.image_spans[0]] == [6, 6, 12]
    # T = int(m * 0.5 / 8) = 0 for every span: each keeps its 4 image pivots.
    assert [len(p) for p in record.kept_image_positions(0)] == [4, 4, 4]


def test_a_ragged_batch_of_a_video_and_an_image_prompt_equals_single_runs(released):
    from PIL import Image

    _, loaded = released
    prompts = [loaded.question_inputs("What happens?", [], None, videos=[clip(4, size=(160, 128), seed=1)]),
               loaded.question_inputs("Describe the picture.", [Image.new("RGB", (192, 160), (20, 90, 200))], None)]
    settings = make_dart_config(reduction_ratio=0.5, max_num_trunction=None)

    def run(batch):
        record = PruningRecord(dart_config=settings)
        kwargs = loaded.generate_inputs(batch)
        with torch.no_grad():
            out = loaded.model.generate(**kwargs, pruning_record=record, max_new_tokens=3, min_new_tokens=3,
                                        do_sample=False)
        return out[:, kwargs["input_ids"].shape[1]:].tolist(), record

    tokens, record = run(prompts)
    assert record.keep_valid is not None  # the rows keep different numbers of tokens
    for b, prompt_inputs in enumerate(prompts):
        single_tokens, single = run([prompt_inputs])
        assert tokens[b] == single_tokens[0]
        assert [p.tolist() for p in record.kept_image_positions(b)] == \
            [p.tolist() for p in single.kept_image_positions(0)]


def test_the_demo_overlay_grid_follows_the_32_pixel_merged_tokens(released):
    """The serving overlay draws each image's merged-token grid: 16-pixel patches merged 2 x 2, so a 200 x 120
    image (resized to 192 x 128) is 4 rows of 6 tokens; the most an image can have is the pixel bound over 32²."""
    from PIL import Image

    _, loaded = released
    inputs = loaded.question_inputs("What is it?", [Image.new("RGB", (200, 120))], None)
    assert loaded.family.image_grids(loaded, inputs) == [[4, 6]] and inputs.image_tokens == [24]
    details = loaded.family.describe_images(loaded)
    assert details["image_tokens"] == loaded.processor.image_processor.size["longest_edge"] // (32 * 32) == 64


def test_unpruned_sdpa_equals_the_library_on_an_image_and_a_video():
    ours = build_tiny_qwen_model("qwen3_vl", seed=4, attn_implementation="sdpa")
    twin = Qwen3VLForConditionalGeneration(ours.config).eval()
    twin.load_state_dict(ours.state_dict())
    inputs = prompt(video=(2, 4, 8), seed=9)
    with torch.no_grad():
        torch.testing.assert_close(ours(**inputs, pruning_record=PruningRecord(dart_config=None)).logits,
                                   twin(**inputs).logits, rtol=0, atol=1e-5)
