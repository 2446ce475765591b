"""LLaVA-1.5 / LLaVA-NeXT in the llava-hf layout: tiny original checkpoints converted load into transformers' own
classes and answer as the original layout does; with pruning (DART, FastV, VisionZip, random), our llava-hf
classes keep the same image tokens and give the same greedy tokens as the original-layout model, eager and
sdpa, alone and in a ragged batch; the engine's attention row is eager attention's; the processor's own inputs
run through our classes."""

import json
import re

import pytest
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    LlavaForConditionalGeneration,
    LlavaNextForConditionalGeneration,
)

from llava.conversation import conv_templates
from llava.mm_utils import (
    get_anyres_image_grid_shape,
    process_images,
    tokenizer_image_token,
)
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.language_model.llava_hf import LlavaHFBackend, load_llava_hf
from llava.model.llava_hf_convert import convert_checkpoint, main
from llava.model.llava_hf_inputs import (
    image_grid,
    image_token_count,
    left_padded_batch,
    llava_protocol_inputs,
    processor_protocol_inputs,
)
from llava.model.pruning import make_dart_config
from llava.model.strict_loading import CheckpointError
from llava.model.tiny_checkpoint import build_tiny_base_llm, build_tiny_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

LIBRARY_CLASSES = {"1.5": LlavaForConditionalGeneration, "1.6": LlavaNextForConditionalGeneration}
QUESTIONS = ("<image>\nWhat is in it?", "<image>\nDescribe the colours of this picture in detail, please.")
# (width, height): LLaVA-NeXT picks a wide and a tall grid for them. Both are larger than the 336 x 672 grids: for
# an image smaller than every grid the released pinpoint order picks another grid than LLaVA (see
# test_for_small_images_the_released_pinpoint_order_picks_the_other_grid).
SIZES = ((800, 400), (380, 760))
STEPS = 6


def scene(seed, size):
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(size[1], size[0], 3, generator=g) * 200).to(torch.uint8).numpy())


def vicuna(text):
    conv = conv_templates["vicuna_v1"].copy()
    conv.append_message(conv.roles[0], text)
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, to_llava_next):
    """version -> (original-layout dir, its llava-hf conversion)."""
    root = tmp_path_factory.mktemp("llava_hf")
    sources = {"1.5": build_tiny_checkpoint(root / "v15", seed=0),
               "1.6": to_llava_next(build_tiny_checkpoint(root / "v16", seed=3))}
    return {version: (src, convert_checkpoint(src, root / f"{version}-hf")) for version, src in sources.items()}


@pytest.fixture(scope="module")
def loaded(checkpoints):
    """(version, attn) -> (original (tokenizer, model, processor), llava-hf (tokenizer, model, processor)),
    loaded once."""
    cache = {}

    def get(version, attn):
        if (version, attn) not in cache:
            src, out = checkpoints[version]
            tokenizer, original, processor, _ = load_pretrained_model(str(src), None, device="cpu",
                                                                      attn_implementation=attn)
            hf_tokenizer, hf, hf_processor, _ = load_llava_hf(str(out), AutoConfig.from_pretrained(out),
                                                              {"attn_implementation": attn, "dtype": torch.float32})
            cache[version, attn] = (tokenizer, original, processor), (hf_tokenizer, hf, hf_processor)
        return cache[version, attn]

    return get


def original_inputs(tokenizer, model, processor, count):
    """The first `count` questions as the original layout's generate takes them (left-padded when several)."""
    ids = [tokenizer_image_token(vicuna(q), tokenizer, return_tensors="pt") for q in QUESTIONS[:count]]
    images = [scene(seed, size) for seed, size in zip((1, 2), SIZES[:count])]
    pixels = process_images(images, processor, model.config)
    longest = max(row.numel() for row in ids)
    batch = torch.zeros(count, longest, dtype=torch.long)
    mask = torch.zeros_like(batch)
    for b, row in enumerate(ids):
        batch[b, longest - row.numel():], mask[b, longest - row.numel():] = row, 1
    return {"inputs": batch, "images": pixels if isinstance(pixels, torch.Tensor) else list(pixels),
            "image_sizes": [image.size for image in images], "attention_mask": mask}


def hf_inputs(tokenizer, model, processor, count):
    images = [scene(seed, size) for seed, size in zip((1, 2), SIZES[:count])]
    items = [llava_protocol_inputs(vicuna(q), [image], tokenizer, processor.image_processor, model.config)
             for q, image in zip(QUESTIONS[:count], images)]
    return left_padded_batch(items, model.config.pad_token_id)


def greedy(model, inputs, record):
    with torch.no_grad():
        return model.generate(**inputs, pruning_record=record, max_new_tokens=STEPS, min_new_tokens=STEPS,
                              do_sample=False, output_scores=True, return_dict_in_generate=True)


# -- the converter ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.5", "1.6"])
def test_a_converted_checkpoint_loads_into_the_library_class_and_answers_as_the_original(checkpoints, loaded,
                                                                                         version):
    src, out = checkpoints[version]
    model, info = LIBRARY_CLASSES[version].from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    index = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"]
    assert "language_model.model.embed_tokens.weight" in index and "multi_modal_projector.linear_2.bias" in index
    assert ("image_newline" in index) == (version == "1.6")
    assert (model.config.image_token_id, model.config.pad_token_id, model.config.text_config.vocab_size) == (512, 513, 576)
    (tokenizer, original, processor), (hf_tokenizer, _, hf_processor) = loaded(version, "eager")
    assert hf_tokenizer.convert_tokens_to_ids(["<image>", "<pad>"]) == [512, 513]
    ours = original_inputs(tokenizer, original, processor, 1)
    theirs = hf_inputs(hf_tokenizer, model, hf_processor, 1)
    with torch.no_grad():
        expected = original(input_ids=ours["inputs"], images=ours["images"], image_sizes=ours["image_sizes"],
                            pruning_record=PruningRecord(dart_config=None)).logits
        got = model(**theirs).logits
    assert got.shape[1] == expected.shape[1]
    torch.testing.assert_close(got[..., :512], expected, rtol=0, atol=1e-5)


def test_the_converter_refuses_what_is_not_an_original_llava_checkpoint(checkpoints, tmp_path):
    with pytest.raises(CheckpointError, match="not an original LLaVA checkpoint"):
        convert_checkpoint(checkpoints["1.5"][1], tmp_path / "again")  # llava-hf already
    with pytest.raises(CheckpointError, match="not an original LLaVA checkpoint"):
        convert_checkpoint(build_tiny_base_llm(tmp_path / "llama"), tmp_path / "out")


def test_the_converter_refuses_a_projector_llava_hf_lacks(tmp_path):
    src = build_tiny_checkpoint(tmp_path / "linear", projector_type="linear")
    with pytest.raises(CheckpointError, match="mm_projector_type 'linear'"):
        convert_checkpoint(src, tmp_path / "out")


def test_the_command_line_writes_the_same_checkpoint(checkpoints, tmp_path):
    src, out = checkpoints["1.5"]
    assert main(["--src", str(src), "--out", str(tmp_path / "cli")]) == 0
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == sorted(p.name for p in out.iterdir())
    assert json.loads((tmp_path / "cli" / "config.json").read_text()) == json.loads((out / "config.json").read_text())


# -- the same tokens kept, the same answers -----------------------------------------------------------------


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("version", ["1.5", "1.6"])
@pytest.mark.parametrize("method", ["dart", "fastv", "visionzip", "random"])
@pytest.mark.parametrize("batch", [1, 2])
def test_pruned_generation_matches_the_original_layout(loaded, version, method, attn, batch):
    (tokenizer, original, processor), (hf_tokenizer, hf, hf_processor) = loaded(version, attn)
    settings = make_dart_config(K=2, method=method, max_num_trunction=32, retain_token_num_for_llava_next=48, seed=5)
    ours, theirs = PruningRecord(dart_config=settings), PruningRecord(dart_config=settings)
    inputs = hf_inputs(hf_tokenizer, hf, hf_processor, batch)
    if method == "visionzip" and version == "1.6":  # one crop per image only, in both layouts
        with pytest.raises(ValueError, match="VisionZip needs each image as one crop") as refused:
            greedy(original, original_inputs(tokenizer, original, processor, batch), ours)
        with pytest.raises(ValueError, match=re.escape(str(refused.value))):
            greedy(hf, inputs, theirs)
        return
    expected = greedy(original, original_inputs(tokenizer, original, processor, batch), ours)
    got = greedy(hf, inputs, theirs)
    assert torch.equal(got.sequences[:, : inputs["input_ids"].shape[1]], inputs["input_ids"])  # prompt as given
    assert got.sequences[:, inputs["input_ids"].shape[1]:].tolist() == expected.sequences.tolist()
    for step_expected, step_got in zip(expected.scores, got.scores):
        torch.testing.assert_close(step_got[:, :512], step_expected, rtol=0, atol=1e-4)
    assert ours.pruned and theirs.pruned
    for sample in range(batch):
        kept_ours, kept_theirs = ours.kept_image_positions(sample), theirs.kept_image_positions(sample)
        assert len(kept_ours) == len(kept_theirs) == 1
        if method == "visionzip":  # merged tokens: no kept subset, but the same reduced count
            assert kept_ours == kept_theirs == [None]
            assert theirs.image_spans[sample][0][1] == ours.image_spans[sample][0][1] < ours.num_image_tokens(sample)
        else:
            assert torch.equal(kept_ours[0], kept_theirs[0])
        assert ours.num_image_tokens(sample) == theirs.num_image_tokens(sample)


@pytest.mark.parametrize("version", ["1.5", "1.6"])
def test_image_token_counts_match_the_original_splice(loaded, version):
    (_, original, processor), (_, hf, _) = loaded(version, "sdpa")
    for size in ((800, 400), (380, 760), (1000, 1000), (1200, 300), (300, 1200), (336, 336)):
        pixels = process_images([scene(0, size)], processor, original.config)
        expected = original.image_token_counts(pixels if version == "1.5" else list(pixels), [size])[0]
        assert image_token_count(hf.config, size) == expected


def test_for_small_images_the_released_pinpoint_order_picks_the_other_grid(loaded):
    """The llava-hf releases copy LLaVA's pinpoints ([[336, 672], [672, 336], ...]) but read each pair as (height,
    width): for an image smaller than every grid the two smallest grids tie and the first one wins, a tall grid
    for LLaVA and a wide one for llava-hf. Our LLaVA-protocol crops follow the llava-hf model's reading (its
    features are arranged by it), so there the layouts differ, as the released checkpoints do."""
    (_, original, _), (_, hf, _) = loaded("1.6", "sdpa")
    for size in ((200, 150), (120, 260)):
        cols, rows = get_anyres_image_grid_shape(size, original.config.image_grid_pinpoints, 336)
        assert (rows, cols) == (2, 1)  # LLaVA: 336 wide, 672 high
        assert tuple(image_grid(hf.config, size)) == (1, 2)  # llava-hf: 336 high, 672 wide
    assert tuple(image_grid(hf.config, (800, 400))) == (1, 2)  # no tie: both take the wide grid


# -- the attention row -------------------------------------------------------------------------------------


def test_the_attention_row_is_the_last_row_of_the_llava_hf_text_models_eager_weights(loaded):
    _, (hf_tokenizer, hf, hf_processor) = loaded("1.5", "eager")
    inputs = hf_inputs(hf_tokenizer, hf, hf_processor, 2)
    mask = inputs["attention_mask"]
    with torch.no_grad():
        out = hf(**inputs, output_attentions=True, output_hidden_states=True, use_cache=True,
                 pruning_record=PruningRecord(dart_config=None))
        text_model = hf.model.language_model
        backend = LlavaHFBackend(text_model, hf.config)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        for layer in range(hf.config.text_config.num_hidden_layers):
            layer_input = out.hidden_states[layer]
            embeddings = text_model.rotary_emb(layer_input, positions)
            keys = backend.layer_keys(layer, layer_input, embeddings, None)
            row = backend.last_token_attention(layer, layer_input, embeddings, keys, mask.bool())
            torch.testing.assert_close(row, out.attentions[layer][:, :, -1].mean(1), rtol=0, atol=1e-6)


def test_the_backend_takes_settings_and_budget_rule_from_the_top_level_config(loaded):
    for version, next_rule in (("1.5", False), ("1.6", True)):
        _, (_, hf, _) = loaded(version, "sdpa")
        backend = LlavaHFBackend(hf.model.language_model, hf.config)
        assert backend.llava_next is next_rule
        assert ("retain_token_num_for_llava_next" in backend.unused_settings_keys) is not next_rule
    hf.config.DART_config = make_dart_config(K=2)
    try:
        assert hf.dart_config().K == 2
    finally:
        hf.config.DART_config = None


# -- the processor's protocol ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.5", "1.6"])
def test_the_processors_own_inputs_run_pruned_and_unpruned_as_the_library_class(checkpoints, loaded, version):
    _, (_, hf, hf_processor) = loaded(version, "sdpa")
    library = LIBRARY_CLASSES[version].from_pretrained(checkpoints[version][1], attn_implementation="sdpa")
    images = [[scene(1, SIZES[0])], [scene(2, SIZES[1])]]
    inputs = processor_protocol_inputs(hf_processor, ["What is in it?", "Describe the colours in detail."], images)
    assert int((inputs["input_ids"] == hf.config.image_token_id).sum(1).min()) > 0
    kwargs = {"max_new_tokens": 4, "min_new_tokens": 4, "do_sample": False}
    with torch.no_grad():
        expected = library.generate(**inputs, **kwargs)
        unpruned = hf.generate(**inputs, pruning_record=PruningRecord(dart_config=None), **kwargs)
        record = PruningRecord(dart_config=make_dart_config(K=2, max_num_trunction=32,
                                                            retain_token_num_for_llava_next=48))
        pruned = hf.generate(**inputs, pruning_record=record, **kwargs)
    assert torch.equal(unpruned, expected)
    assert pruned.shape == expected.shape and record.pruned
    assert all(record.num_kept_image_tokens(b) < record.num_image_tokens(b) for b in range(2))
