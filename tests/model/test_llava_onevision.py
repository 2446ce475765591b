"""LLaVA-OneVision (llava-hf/llava-onevision-qwen2-7b-ov-hf's layout, tiny): it loads strictly through the family
registry and into transformers' own class; unpruned, our class gives the library's logits for images and videos,
eager and sdpa; DART prunes every image and video span on its own with the ratio budget; a ragged batch answers as
its prompts alone; video frames are resized and normalised as the library's video processor does; the methods
before the language model that cannot run here are refused with their reason."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LlavaOnevisionForConditionalGeneration

from llava.model import PruningRecord
from llava.model.families import Video, load_model
from llava.model.families.llava_onevision import pooled_frame_tokens, video_pixels
from llava.model.language_model.llava_onevision import BeforeLLMRefused
from llava.model.language_model.pruned_generation import vision_spans
from llava.model.pruning import make_dart_config, parse_dart_config
from llava.model.pruning.dart import select_image_tokens
from llava.model.released_layouts import build_released_checkpoint, read_checkpoint_tensors

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = "llava-hf/llava-onevision-qwen2-7b-ov-hf"


def picture(seed, size):
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(size[1], size[0], 3, generator=g) * 255).to(torch.uint8).numpy())


def clip(seed, frames=3):
    return Video([picture(seed + i, (320, 240)) for i in range(frames)], [float(i) for i in range(frames)], 1.0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_released_checkpoint(REPO, tmp_path_factory.mktemp("onevision") / "ov")


@pytest.fixture(scope="module")
def loaded(checkpoint):
    cache = {}

    def get(attn="sdpa"):
        if attn not in cache:
            cache[attn] = load_model(str(checkpoint), None, device="cpu", attn_implementation=attn)
        return cache[attn]

    return get


def greedy(loaded, batch, settings, steps=4):
    record = PruningRecord(dart_config=settings)
    with torch.no_grad():
        out = loaded.model.generate(**loaded.generate_inputs(batch), pruning_record=record, max_new_tokens=steps,
                                    min_new_tokens=steps, do_sample=False)
    return out[:, -steps:], record


# -- the released layout -------------------------------------------------------------------------------------


def test_it_loads_strictly_and_into_the_library_class(checkpoint, loaded):
    ours = loaded()
    assert ours.family.name == "llava_onevision"
    on_disk = read_checkpoint_tensors(checkpoint)
    assert {"image_newline", "language_model.lm_head.weight", "language_model.model.embed_tokens.weight",
            "multi_modal_projector.linear_1.weight", "vision_tower.vision_model.encoder.layers.1.mlp.fc2.weight"} <= set(on_disk)
    assert all(t.dtype == torch.float16 for t in on_disk.values())
    state = ours.model.state_dict()
    assert torch.equal(state["model.image_newline"], on_disk["image_newline"].float())
    assert torch.equal(state["lm_head.weight"], on_disk["language_model.lm_head.weight"].float())  # not tied
    _, info = LlavaOnevisionForConditionalGeneration.from_pretrained(checkpoint, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


def test_the_config_and_tokens_are_the_releases(checkpoint, loaded):
    config = json.loads((checkpoint / "config.json").read_text())
    assert (config["vision_feature_select_strategy"], config["vision_feature_layer"]) == ("full", -1)
    assert config["vision_aspect_ratio"] == "anyres_max_9" and len(config["image_grid_pinpoints"]) == 36
    assert config["vision_config"]["model_type"] == "siglip_vision_model"
    assert (config["vision_config"]["image_size"], config["vision_config"]["patch_size"]) == (384, 14)
    assert config["text_config"]["model_type"] == "qwen2" and config["tie_word_embeddings"] is False
    tokenizer = loaded().tokenizer
    # <image> and <video> right after Qwen2's tokens (151646, 151647 in the release), the vocabulary padded past them.
    assert tokenizer.convert_tokens_to_ids(["<image>", "<video>"]) == [len(tokenizer) - 2, len(tokenizer) - 1]
    assert (config["image_token_index"], config["video_token_index"]) == (len(tokenizer) - 2, len(tokenizer) - 1)
    assert config["text_config"]["vocab_size"] % 64 == 0 and config["text_config"]["vocab_size"] > len(tokenizer)
    processor = json.loads((checkpoint / "processor_config.json").read_text())
    assert processor["num_image_tokens"] == 729 and processor["vision_feature_select_strategy"] == "full"
    text = loaded().question_inputs("What is it?", [picture(0, (300, 200))], None).text
    assert text == "<|im_start|>user\n<image>\nWhat is it?<|im_end|>\n<|im_start|>assistant\n"  # no system prompt


# -- unpruned == the library ----------------------------------------------------------------------------------


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_unpruned_logits_are_the_library_classs_for_images_and_video(checkpoint, loaded, attn):
    ours = loaded(attn)
    library = LlavaOnevisionForConditionalGeneration.from_pretrained(checkpoint, attn_implementation=attn,
                                                                     dtype=torch.float32).eval()
    for inputs in (ours.question_inputs("What is it?", [picture(1, (500, 300))], None),
                   ours.question_inputs("And this?", [picture(2, (300, 200))], None, videos=[clip(3)])):
        kwargs = ours.generate_inputs([inputs])
        with torch.no_grad():
            expected = library(**kwargs).logits
            got = ours.model(**kwargs, pruning_record=PruningRecord(dart_config=None)).logits
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


# -- pruning ---------------------------------------------------------------------------------------------------


def test_dart_prunes_each_image_and_video_span_with_the_ratio_budget(loaded, caplog):
    ours = loaded()
    inputs = ours.question_inputs("Describe both.", [picture(4, (500, 300))], None, videos=[clip(5)])
    ratio = 0.778
    _, record = greedy(ours, [inputs], make_dart_config(K=2, reduction_ratio=ratio))
    _, ignored = greedy(ours, [inputs], make_dart_config(K=2, reduction_ratio=ratio, max_num_trunction=32))
    spans = record.image_spans[0]
    video_tokens = 3 * pooled_frame_tokens(ours.model.config) + 1
    assert [m for _, m in spans] == inputs.image_tokens and spans[1][1] == video_tokens == 3 * 196 + 1
    kept = record.kept_image_positions(0)
    for (start, m), positions in zip(spans, kept):
        assert len(positions) == 4 + 8 * int(m * (1 - ratio) / 8)  # pivots 4 + 4: T = int(m (1 - r) / 8)
        assert bool(((positions >= 0) & (positions < m)).all())  # offsets in the span
    assert all(torch.equal(a, b) for a, b in zip(kept, ignored.kept_image_positions(0)))  # max_num_trunction ignored
    assert "max_num_trunction=32 is ignored on LLaVA-OneVision" in caplog.text


def test_the_kept_set_is_dart_on_each_span_computed_from_an_unpruned_forward(loaded):
    """Per span [s, s + m) (the image, then the video): DART on layer K's input with the keys of layer K - 1 and
    text pivots among the non-visual tokens after the span, budget T = int(m * (1 - r) / 8)."""
    ours = loaded("eager")
    inputs = ours.question_inputs("Describe both.", [picture(14, (400, 300))], None, videos=[clip(15, 2)])
    kwargs = ours.generate_inputs([inputs])
    settings = make_dart_config(K=2, reduction_ratio=0.778, max_num_trunction=None)
    cfg = parse_dart_config(settings)
    text_model = ours.model.model.language_model
    captured = {}
    hook = text_model.layers[cfg.K].register_forward_pre_hook(lambda module, args: captured.setdefault("x", args[0]))
    try:
        with torch.no_grad():
            plain = ours.model(**kwargs, pruning_record=PruningRecord(dart_config=None), use_cache=True)
    finally:
        hook.remove()
    normed = text_model.norm(captured["x"])[0]
    keys = plain.past_key_values.layers[cfg.K - 1].keys.transpose(1, 2).flatten(2)[0]
    config = ours.model.config
    ids = kwargs["input_ids"]
    (spans,) = vision_spans(ids, (config.image_token_id, config.video_token_id))
    text = torch.ones(ids.shape[1], dtype=torch.bool)
    for start, count in spans:
        text[start:start + count] = False
    expected = []
    for start, count in spans:
        after = torch.arange(start + count, ids.shape[1])[text[start + count:]]
        expected.append((select_image_tokens(normed, keys, (start, count), cfg, False, after, 0) - start).sort().values)
    _, record = greedy(ours, [inputs], settings, steps=1)
    assert record.image_spans[0] == spans and len(spans) == 2
    assert [p.tolist() for p in record.kept_image_positions(0)] == [p.tolist() for p in expected]


def test_two_images_are_two_spans_each_with_its_own_budget(loaded):
    """Several images in one prompt: one view each (27 x 27 and a newline per row, as the processor and the model
    agree for multi-image prompts), each its own span with T = int(m * (1 - r) / 8)."""
    ours = loaded()
    inputs = ours.question_inputs("Compare them.", [picture(16, (300, 200)), picture(17, (200, 300))], None)
    _, record = greedy(ours, [inputs], make_dart_config(K=2, reduction_ratio=0.5, max_num_trunction=None), steps=1)
    counts = [m for _, m in record.image_spans[0]]
    assert counts == inputs.image_tokens and len(counts) == 2
    assert [len(p) for p in record.kept_image_positions(0)] == [4 + 8 * int(m * 0.5 / 8) for m in counts]


def test_a_ragged_batch_answers_as_its_prompts_alone(loaded):
    ours = loaded()
    prompts = [ours.question_inputs("What is it?", [picture(6, (500, 300))], None),
               ours.question_inputs("Describe the colours in detail, please.", [picture(7, (300, 500))], None)]
    settings = make_dart_config(K=2, reduction_ratio=0.778)
    together, record = greedy(ours, prompts, settings)
    for b, prompt in enumerate(prompts):
        alone, single = greedy(ours, [prompt], settings)
        assert together[b].tolist() == alone[0].tolist()
        assert [len(k) for k in record.kept_image_positions(b)] == [len(k) for k in single.kept_image_positions(0)]


@pytest.mark.parametrize("method", ["fastv", "random"])
def test_in_llm_methods_prune_every_span(loaded, method):
    ours = loaded()
    inputs = ours.question_inputs("Describe both.", [picture(8, (300, 200))], None, videos=[clip(9, 2)])
    _, record = greedy(ours, [inputs], make_dart_config(K=2, method=method, reduction_ratio=0.778, seed=1), steps=2)
    assert record.pruned and record.num_kept_image_tokens(0) < record.num_image_tokens(0)


def test_methods_before_the_language_model(loaded):
    ours = loaded()
    image = ours.question_inputs("What is it?", [picture(10, (300, 200))], None)
    with pytest.raises(BeforeLLMRefused, match=r"no \[CLS\] token"):
        greedy(ours, [image], make_dart_config(K=2, method="visionzip", reduction_ratio=0.778))
    with pytest.raises(BeforeLLMRefused, match="no single grid"):
        greedy(ours, [image], make_dart_config(K=2, method="pooling", reduction_ratio=0.778))
    with pytest.raises(BeforeLLMRefused, match="videos are pruned inside it only"):
        video = ours.question_inputs("And this?", [], None, videos=[clip(11, 2)])
        greedy(ours, [video], make_dart_config(K=2, method="divprune", reduction_ratio=0.778))
    _, record = greedy(ours, [image], make_dart_config(K=2, method="divprune", reduction_ratio=0.778), steps=2)
    (reduction,) = record.image_reductions[0]
    m = image.image_tokens[0]
    assert reduction.original_tokens == m and len(reduction.kept_patches) == 4 + 8 * int(m * (1 - 0.778) / 8)


# -- video pixels ---------------------------------------------------------------------------------------------


def test_video_frames_are_resized_and_normalised_as_the_library_does(loaded):
    processor = loaded().processor
    flat = Image.new("RGB", (320, 240), (255, 0, 51))
    pixels = video_pixels([flat, flat], processor.image_processor)
    assert pixels.shape == (2, 3, 384, 384)
    # rescale 1/255, then (x - 0.5) / 0.5 (SigLIP's mean and std), per channel.
    for channel, value in enumerate((255, 0, 51)):
        torch.testing.assert_close(pixels[:, channel], torch.full((2, 384, 384), (value / 255 - 0.5) / 0.5),
                                   rtol=0, atol=1e-6)
    frame = picture(12, (320, 240))
    by_hand = np.asarray(frame.resize((384, 384), Image.Resampling.BICUBIC), dtype=np.float64) / 255 * 2 - 1
    torch.testing.assert_close(pixels.new_tensor(by_hand.transpose(2, 0, 1)),
                               video_pixels([frame], processor.image_processor)[0], rtol=0, atol=1e-5)
    inputs = loaded().question_inputs("And this?", [], None, videos=[clip(13, 4)])
    assert inputs.image_inputs["pixel_values_videos"].shape == (1, 4, 3, 384, 384)
    assert inputs.image_tokens == [4 * math.ceil(27 / 2) ** 2 + 1]  # 196 a frame, one newline a video
