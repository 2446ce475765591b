"""Videos through the Qwen2-VL and Qwen2.5-VL families without torchvision, on tiny checkpoints in the released
layout: the pixel values and grids are the library's rule computed independently, unpruned logits are
transformers' own classes', DART prunes each video and image span on its own by the ratio budget, ragged batches
mixing videos and images equal single runs, and a family without videos refuses them."""

import ast
import importlib.util
import math
import types

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as library_smart_resize

from llava.model import PruningRecord
from llava.model.families import LoadedModel, PromptError, Video, load_model
from llava.model.families.llava import LlavaFamily
from llava.model.families.qwen_video import (
    QWEN3_RULE,
    VideoFeatures,
    VideoPreprocessing,
    _frame_array,
    encode_with_videos,
    expand_video_tokens,
    frame_size,
    group_times,
    patchify,
    preprocess_video,
    smart_resize,
    smart_resize_video,
    video_placeholder,
)
from llava.model.language_model.pruned_generation import vision_spans
from llava.model.pruning import make_dart_config, parse_dart_config
from llava.model.pruning.dart import select_image_tokens
from llava.model.released_layouts import build_released_checkpoint

REPOS = {"qwen2_vl": "Qwen/Qwen2-VL-7B-Instruct", "qwen2_5_vl": "Qwen/Qwen2.5-VL-7B-Instruct"}
LIBRARY_CLASSES = {"qwen2_vl": Qwen2VLForConditionalGeneration, "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration}


def noise(width, height, seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def video(num_frames=5, size=(160, 120), fps=1.0, seed=0):
    frames = [noise(*size, seed=seed * 100 + i) for i in range(num_frames)]
    return Video(frames, [i / fps for i in range(num_frames)], fps, source=f"noise-{seed}")


def library_function(module: str, name: str, owner: str | None = None):
    """A function of a transformers module that cannot be imported here (its module imports torchvision), compiled
    from the installed library's own source: `owner`'s method, or a module-level function."""
    tree = ast.parse(open(importlib.util.find_spec(module).origin, encoding="utf-8").read())
    body = tree.body
    if owner is not None:
        (cls,) = [node for node in body if isinstance(node, ast.ClassDef) and node.name == owner]
        body = cls.body
    (function,) = [node for node in body if isinstance(node, ast.FunctionDef) and node.name == name]
    namespace = {"torch": torch, "math": math}
    exec(compile(ast.Module(body=[function], type_ignores=[]), module, "exec"), namespace)
    return namespace[name]


@pytest.fixture(scope="module", params=list(REPOS))
def family(request):
    return request.param


@pytest.fixture(scope="module")
def checkpoint(family, tmp_path_factory):
    return build_released_checkpoint(REPOS[family], tmp_path_factory.mktemp(family), seed=4)


@pytest.fixture(scope="module")
def loaded(checkpoint):
    return {attn: load_model(str(checkpoint), device="cpu", attn_implementation=attn) for attn in ("eager", "sdpa")}


@pytest.fixture(scope="module")
def library(family, checkpoint):
    return {attn: LIBRARY_CLASSES[family].from_pretrained(str(checkpoint), attn_implementation=attn,
                                                     dtype=torch.float32).eval()
            for attn in ("eager", "sdpa")}


# -- pixel values and grids --------------------------------------------------------------------------------


def test_a_video_of_identical_frames_is_the_image_processors_frame_twice_per_temporal_patch(family, checkpoint):
    settings = VideoPreprocessing.from_checkpoint(str(checkpoint), family)
    frame = noise(230, 150, seed=1)
    image = Qwen2VLImageProcessorPil.from_pretrained(str(checkpoint))(images=[frame], return_tensors="pt")
    features = preprocess_video(Video([frame] * 4, [0.0, 0.5, 1.0, 1.5], 2.0), settings)
    _, h, w = image["image_grid_thw"][0].tolist()
    assert features.grid_thw == (2, h, w)
    # The image processor repeats its one frame over the temporal patch: a still video's patches are its patches.
    assert torch.equal(features.pixel_values, torch.cat([image["pixel_values"]] * 2))


def test_an_odd_frame_count_is_padded_with_the_last_frame_and_grouped_in_order(family, checkpoint):
    """By hand: each frame alone through the image processor gives its (C, patch, patch) per patch, in the
    layout's patch order; a video patch of group g stacks frames 2g and 2g + 1 (the third frame twice)."""
    settings = VideoPreprocessing.from_checkpoint(str(checkpoint), family)
    frames = [noise(100, 70, seed=10 + i) for i in range(3)]
    processor = Qwen2VLImageProcessorPil.from_pretrained(str(checkpoint))
    per_frame = []
    for frame in frames:
        out = processor(images=[frame], return_tensors="pt")
        per_frame.append(out["pixel_values"].reshape(-1, 3, 2, 14, 14)[:, :, 0])  # (patches, C, 14, 14)
    features = preprocess_video(Video(frames, [0.0, 1.0, 2.0], 1.0), settings)
    # 100 x 70 -> 112 x 56 (multiples of 28): 4 x 8 patches; 3 frames -> 2 temporal patches.
    assert features.grid_thw == (2, 4, 8) and features.tokens(2) == 16
    groups = [(0, 1), (2, 2)]
    expected = torch.cat([torch.stack([per_frame[a], per_frame[b]], dim=2).flatten(1) for a, b in groups])
    assert torch.equal(features.pixel_values, expected)


@pytest.mark.parametrize("num_frames", [2, 3, 5])
def test_the_layout_is_the_library_video_processors_patchify(family, checkpoint, num_frames):
    """The torchvision processor's own `patchify` (padding and flattening) on the same resized, normalised frames."""
    library_patchify = library_function("transformers.models.qwen2_vl.video_processing_qwen2_vl", "patchify",
                                        "Qwen2VLVideoProcessor")
    settings = VideoPreprocessing.from_checkpoint(str(checkpoint), family)
    frames = [noise(160, 120, seed=20 + i) for i in range(num_frames)]
    size = frame_size(settings, num_frames, 120, 160)
    stacked = np.stack([_frame_array(frame, settings, size) for frame in frames])
    ours, grid = patchify(stacked, 14, 2, 2)
    theirs, *their_grid = library_patchify(None, torch.from_numpy(stacked)[None], patch_size=14, merge_size=2,
                                           temporal_patch_size=2)
    assert grid == tuple(their_grid) == ((num_frames + 1) // 2, 8, 12)
    assert torch.equal(torch.from_numpy(ours), theirs[0])
    assert torch.equal(preprocess_video(Video(frames, list(range(num_frames)), 1.0), settings).pixel_values, theirs[0])


def test_frame_sizing_is_the_librarys_smart_resize(family, checkpoint):
    for height, width in [(70, 100), (1080, 1920), (20, 30), (480, 360), (5000, 40)]:
        for low, high in [(3136, 50176), (128 * 28 * 28, 768 * 28 * 28)]:
            assert smart_resize(height, width, 28, low, high) == library_smart_resize(height, width, 28, low, high)


def test_the_released_checkpoints_take_their_preprocessor_config_for_videos(family, checkpoint):
    """No video_preprocessor_config.json in the released layout: the library's video processor reads
    preprocessor_config.json, so videos take the image bounds."""
    settings = VideoPreprocessing.from_checkpoint(str(checkpoint), family)
    image = Qwen2VLImageProcessorPil.from_pretrained(str(checkpoint))
    assert (settings.min_pixels, settings.max_pixels) == (image.size["shortest_edge"], image.size["longest_edge"])
    assert settings.temporal_spacing == (family == "qwen2_5_vl")
    # A video_preprocessor_config.json wins over it, as in the library.
    (checkpoint / "video_preprocessor_config.json").write_text('{"size": {"shortest_edge": 100, "longest_edge": 9999}}')
    try:
        settings = VideoPreprocessing.from_checkpoint(str(checkpoint), family)
        assert (settings.min_pixels, settings.max_pixels) == (100, 9999)
    finally:
        (checkpoint / "video_preprocessor_config.json").unlink()


def test_qwen3_vl_dates_each_temporal_patch_and_bounds_the_whole_video():
    settings = VideoPreprocessing.for_model_type("qwen3_vl")
    assert settings.rule == QWEN3_RULE and settings.patch_size == 16 and not settings.temporal_spacing
    assert group_times([0.0, 0.5, 1.0, 1.5, 2.0], 2) == [0.25, 1.25, 2.0]
    features = VideoFeatures(torch.zeros(3 * 4 * 6, 1), (3, 4, 6), [0.25, 1.25, 2.0], 2.0)
    frame = "<|vision_start|>" + "<|video_pad|>" * 6 + "<|vision_end|>"
    assert video_placeholder(features, settings, "<|video_pad|>") == \
        f"<0.2 seconds>{frame}<1.2 seconds>{frame}<2.0 seconds>{frame}"
    # The dated runs take the template's whole start / video / end (Qwen2-VL's rule keeps them around its tokens).
    template = "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Why?<|im_end|>\n"
    assert expand_video_tokens(template, [features], settings, "<|video_pad|>") == \
        f"<|im_start|>user\n<0.2 seconds>{frame}<1.2 seconds>{frame}<2.0 seconds>{frame}Why?<|im_end|>\n"
    qwen2 = VideoPreprocessing.for_model_type("qwen2_vl")
    assert expand_video_tokens(template, [features], qwen2, "<|video_pad|>") == \
        "<|im_start|>user\n<|vision_start|>" + "<|video_pad|>" * 18 + "<|vision_end|>Why?<|im_end|>\n"
    # The library's own rules: its processor's timestamps, its video smart_resize.
    library_times = Qwen3VLProcessor._calculate_timestamps(None, [0, 3, 6, 9, 12], 6.0, 2)
    assert group_times([0.0, 0.5, 1.0, 1.5, 2.0], 2) == library_times
    library_resize = library_function("transformers.models.qwen3_vl.video_processing_qwen3_vl", "smart_resize")
    for frames, height, width in [(8, 480, 640), (3, 20, 50), (64, 1080, 1920), (2, 100, 100), (5, 33, 700)]:
        for low, high in [(4096, 8 * 64 * 32 * 32), (128 * 32 * 32, 32 * 32 * 768), (10**6, 10**8)]:
            assert smart_resize_video(frames, height, width, 2, 32, low, high) == \
                library_resize(frames, height, width, 2, 32, low, high)
    # 8 frames of 640 x 480 within 8 * 64 * 32 * 32 pixels: sqrt(8 * 640 * 480 / 524288) = 2.165..., so
    # 480 / 2.165 / 32 -> 6 and 640 / 2.165 / 32 -> 9 merged patches of 32 pixels.
    assert smart_resize_video(8, 480, 640, 2, 32, 4096, 8 * 64 * 32 * 32) == (192, 288)
    with pytest.raises(PromptError, match="at least 2 frames"):
        smart_resize_video(1, 480, 640, 2, 32, 4096, 10**7)


def test_the_prompt_and_the_model_inputs(family, loaded):
    model = loaded["sdpa"]
    clip = video(num_frames=5, fps=2.0)
    inputs = model.question_inputs("What happens?", [], None, videos=[clip])
    config = model.model.config
    t, h, w = inputs.image_inputs["video_grid_thw"][0].tolist()
    # 160 x 120 -> 168 x 112: 12 x 8 patches; 5 frames -> 3 temporal patches; 3 * 96 / 4 = 72 tokens.
    assert (t, h, w) == (3, 8, 12) and inputs.image_tokens == [72]
    assert int((inputs.input_ids == config.video_token_id).sum()) == 72
    assert torch.equal(inputs.token_inputs["mm_token_type_ids"], (inputs.input_ids == config.video_token_id).long() * 2)
    assert "<|vision_start|><|video_pad|><|vision_end|>What happens?" in inputs.text
    assert inputs.image_inputs["pixel_values_videos"].shape == (3 * 8 * 12, 3 * 2 * 14 * 14)
    if family == "qwen2_5_vl":
        assert inputs.image_inputs["second_per_grid_ts"].tolist() == [1.0]  # 2 frames a patch at 2 fps
    else:
        assert "second_per_grid_ts" not in inputs.image_inputs
    with pytest.raises(PromptError, match="differ in size"):
        model.question_inputs("?", [], None, videos=[Video([noise(50, 50, 0), noise(60, 50, 0)], [0, 1], 1.0)])


def test_without_videos_the_encoding_is_the_processors(family, loaded):
    """The video path encodes through the processor's parts (its `__call__` refuses video tokens): on a prompt
    with images alone it gives what the processor's call gives."""
    model = loaded["sdpa"]
    images = [noise(200, 120, seed=11), noise(90, 150, seed=12)]
    inputs = model.question_inputs("Compare them.", images, None)
    encoded = encode_with_videos(inputs.text, images, [], model.processor, model.processor.video_preprocessing)
    assert torch.equal(encoded.input_ids, inputs.input_ids)
    assert torch.equal(encoded.token_types, inputs.token_inputs["mm_token_type_ids"])
    assert encoded.visual_tokens == inputs.image_tokens
    for key in ("pixel_values", "image_grid_thw"):
        assert torch.equal(encoded.image_inputs[key], inputs.image_inputs[key])


# -- the model -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_unpruned_logits_on_a_video_prompt_equal_the_library_class(family, loaded, library, attn):
    model = loaded[attn]
    inputs = model.question_inputs("What happens?", [noise(200, 120, seed=3)], None, videos=[video(fps=1.0)])
    kwargs = model.generate_inputs([inputs])
    with torch.no_grad():
        ours = model.model(**kwargs, pruning_record=PruningRecord(dart_config=None)).logits
        theirs = library[attn](**kwargs).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    if family == "qwen2_5_vl":  # the temporal spacing reaches the positions: 1 fps is not the default spacing
        with torch.no_grad():
            spaced = {**kwargs, "second_per_grid_ts": kwargs["second_per_grid_ts"] * 3}
            assert not torch.allclose(library[attn](**spaced).logits, theirs, atol=1e-4)


def reference_kept(model, kwargs, cfg):
    """The reference rule from an unpruned forward, span by span: DART within [s, s + m) with text pivots among
    the non-visual tokens from the span's end to the prompt's end (one prompt, no padding)."""
    config = model.config
    with torch.no_grad():
        plain = model(**kwargs, pruning_record=PruningRecord(dart_config=None), use_cache=True,
                      output_hidden_states=True)
    normed = model.model.language_model.norm(plain.hidden_states[cfg.K])
    keys = plain.past_key_values.layers[cfg.K - 1].keys.transpose(1, 2).flatten(2)
    ids = kwargs["input_ids"]
    (spans,) = vision_spans(ids, (config.image_token_id, config.video_token_id))
    text = torch.ones(ids.shape[1], dtype=torch.bool)
    for start, count in spans:
        text[start:start + count] = False
    kept = []
    for start, count in spans:
        after = torch.arange(start + count, ids.shape[1])
        after = after[text[start + count:]]
        kept.append(select_image_tokens(normed[0], keys[0], (start, count), cfg, False, after, 0) - start)
    return spans, kept


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_dart_prunes_the_video_and_the_image_each_by_its_own_ratio_budget(family, loaded, attn):
    model = loaded[attn]
    inputs = model.question_inputs("Which one moves?", [noise(200, 120, seed=5)], None, videos=[video(seed=2)])
    kwargs = model.generate_inputs([inputs])
    settings = make_dart_config(K=2, reduction_ratio=0.25, max_num_trunction=None)
    record = PruningRecord(dart_config=settings)
    with torch.no_grad():
        model.model.generate(**kwargs, pruning_record=record, max_new_tokens=2, do_sample=False)
    assert inputs.image_tokens == [72, 28]  # the video (first in the prompt), then the image (200 x 120 -> 7 x 4)
    assert [count for _, count in record.image_spans[0]] == [72, 28]
    # T = int(m * (1 - 0.25) / 8) per span: 72 -> 6, 28 -> 2; kept = 4 image pivots + 8 pivots * T.
    kept = record.kept_image_positions(0)
    assert [len(p) for p in kept] == [4 + 8 * 6, 4 + 8 * 2]
    spans, expected = reference_kept(model.model, kwargs, parse_dart_config(settings))
    assert spans == record.image_spans[0]
    assert [p.tolist() for p in kept] == [p.sort().values.tolist() for p in expected]


def test_a_ragged_batch_of_video_and_image_prompts_equals_single_runs(family, loaded):
    model = loaded["sdpa"]
    prompts = [
        model.question_inputs("What happens?", [], None, videos=[video(num_frames=4, fps=1.0, seed=6)]),
        model.question_inputs("Describe the picture in a few words.", [noise(140, 100, seed=7)], None),
        model.question_inputs("And here?", [noise(90, 120, seed=8)], None,
                              videos=[video(num_frames=3, size=(120, 90), fps=4.0, seed=9)]),
    ]
    settings = make_dart_config(reduction_ratio=0.5, max_num_trunction=None)

    def run(batch):
        record = PruningRecord(dart_config=settings)
        kwargs = model.generate_inputs(batch)
        with torch.no_grad():
            out = model.model.generate(**kwargs, pruning_record=record, max_new_tokens=4, min_new_tokens=4,
                                       do_sample=False)
        return out[:, kwargs["input_ids"].shape[1]:].tolist(), record

    singles = [run([p]) for p in prompts]
    tokens, record = run(prompts)
    for b, (single_tokens, single_record) in enumerate(singles):
        assert tokens[b] == single_tokens[0]
        assert [p.tolist() for p in record.kept_image_positions(b)] == \
            [p.tolist() for p in single_record.kept_image_positions(0)]


# -- families without videos ---------------------------------------------------------------------------------


def test_a_family_without_videos_refuses_them():
    assert not LlavaFamily.takes_video
    loaded = LoadedModel(family=LlavaFamily(), tokenizer=None, context_len=2048, processor=None,
                         model=types.SimpleNamespace(config=types.SimpleNamespace(model_type="llava_llama")))
    with pytest.raises(PromptError, match="llava_llama models do not take videos"):
        loaded.question_inputs("What happens?", [], None, videos=[video(num_frames=2)])
