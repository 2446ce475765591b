"""The llava-hf releases (llava-hf/llava-1.5-7b-hf, llava-hf/llava-v1.6-vicuna-7b-hf, llava-hf/llava-v1.6-mistral-7b-hf)
as `python -m llava.model.released_layouts --repo ...` writes them: the files and fields the released repos hold, a
strict load through the family registry, and for the Mistral-based 1.6 the same DART kept positions and greedy
tokens as the tiny original release it was converted from."""

from __future__ import annotations

import json

import huggingface_hub.constants
import pytest
import torch
from PIL import Image

from llava.eval.core.prompting import build_prompt
from llava.model import PruningRecord, released_layouts
from llava.model.families import load_model
from llava.model.llava_hf_convert import MISTRAL_CHAT_TEMPLATE, VICUNA_CHAT_TEMPLATE
from llava.model.pruning import make_dart_config
from llava.model.released_layouts import (CLIP_TOWER_ID, LLAVA_HF_SOURCES, RELEASED_LAYOUTS, build_clip_tower,
                                          build_released_checkpoint, install_in_hub_cache, read_checkpoint_tensors)

pytestmark = pytest.mark.usefixtures("one_thread")

HF_IDS = [repo for repo, layout in RELEASED_LAYOUTS.items() if layout.family == "llava_hf"]

# Copied from the released files (sizes aside). llava-hf/llava-1.5-7b-hf config.json, quoted verbatim in public
# copies (llm-awq issue #210, lite_llama tests); llava-hf/llava-v1.6-mistral-7b-hf config.json, TensorRT-LLM's
# tests/unittest/_torch/modeling/test_modeling_llava_next.py (no pad_token_id there; transformers' conversion script
# sets it to 32001, which the converter keeps).
RELEASED_TOP_FIELDS = {
    "llava-hf/llava-1.5-7b-hf": {"architectures", "ignore_index", "image_token_index", "model_type", "pad_token_id",
                                 "projector_hidden_act", "text_config", "tie_word_embeddings", "torch_dtype",
                                 "transformers_version", "vision_config", "vision_feature_layer",
                                 "vision_feature_select_strategy", "vocab_size"},
    "llava-hf/llava-v1.6-mistral-7b-hf": {"architectures", "ignore_index", "image_grid_pinpoints", "image_token_index",
                                          "model_type", "projector_hidden_act", "text_config", "torch_dtype",
                                          "transformers_version", "use_image_newline_parameter", "vision_config",
                                          "vision_feature_layer", "vision_feature_select_strategy", "vocab_size"},
}
RELEASED_VALUES = {
    "llava-hf/llava-1.5-7b-hf": {"architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100,
                                 "model_type": "llava", "projector_hidden_act": "gelu", "tie_word_embeddings": False,
                                 "torch_dtype": "float16", "transformers_version": "4.36.0.dev0",
                                 "vision_feature_layer": -2, "vision_feature_select_strategy": "default"},
    "llava-hf/llava-v1.6-mistral-7b-hf": {
        "architectures": ["LlavaNextForConditionalGeneration"], "ignore_index": -100, "model_type": "llava_next",
        "projector_hidden_act": "gelu", "torch_dtype": "float16", "transformers_version": "4.39.0.dev0",
        "use_image_newline_parameter": True, "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
        "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]},
}
RELEASED_TEXT_FIELDS = {
    "llava-hf/llava-1.5-7b-hf": {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
                                 "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
                                 "torch_dtype": "float16"},
    "llava-hf/llava-v1.6-mistral-7b-hf": {"_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2",
                                          "architectures": ["MistralForCausalLM"], "max_position_embeddings": 32768,
                                          "model_type": "mistral", "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
                                          "sliding_window": None, "torch_dtype": "bfloat16"},
}
RELEASED_VISION_KEYS = {"hidden_size", "image_size", "intermediate_size", "model_type", "num_attention_heads",
                        "num_hidden_layers", "patch_size", "projection_dim", "vocab_size"}
# The ids in the releases: <image> and <pad> right after LLaMA's 32000 tokens, the vocabulary padded to 32064
# (config.json's image_token_index 32000 / pad_token_id 32001 / vocab_size 32064; the tokenizer's
# added_tokens_decoder as llava-hf/llava-v1.6-mistral-7b-hf loads it).
RELEASED_ORIGINAL_VOCAB, RELEASED_IMAGE_ID, RELEASED_PAD_ID, RELEASED_PADDED_VOCAB = 32000, 32000, 32001, 32064
# processor_config.json: transformers' tests/models/llava/test_processing_llava.py ("must match
# processor_config.json from the Hub repo"); LlavaNextProcessor loads the same values from the mistral repo.
RELEASED_PROCESSOR = {"image_token": "<image>", "num_additional_image_tokens": 1, "patch_size": 14,
                      "vision_feature_select_strategy": "default"}
# preprocessor_config.json of llava-hf/llava-v1.6-mistral-7b-hf (a public walkthrough prints it in full).
RELEASED_NEXT_PREPROCESSOR_KEYS = {"aspect_ratio_setting", "crop_size", "do_center_crop", "do_convert_rgb",
                                   "do_normalize", "do_pad", "do_rescale", "do_resize", "image_grid_pinpoints",
                                   "image_mean", "image_processor_type", "image_std", "processor_class", "resample",
                                   "rescale_factor", "size"}
# Chat templates: llava-1.5 / v1.6-vicuna share one (transformers' llava processor test; openvino.genai's
# tokenizer.cpp), v1.6-mistral the [INST] one. Their first characters, copied from those files.
TEMPLATE_STARTS = {"vicuna": "{% for message in messages %}{% if message['role'] != 'system' %}",
                   "mistral": "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<<SYS>>\n'"}


def short(repo_id: str) -> str:
    return repo_id.split("/")[1]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("llava_hf_released")
    return {repo: build_released_checkpoint(repo, root / short(repo)) for repo in HF_IDS}


def read(path, name):
    return json.loads((path / name).read_text())


@pytest.mark.parametrize("repo_id", HF_IDS, ids=short)
def test_it_loads_strictly_through_the_family_registry(checkpoints, repo_id):
    loaded = load_model(str(checkpoints[repo_id]), None, device="cpu")  # strict: every weight in its place
    assert loaded.family.name == "llava_hf"
    state = loaded.model.state_dict()
    on_disk = read_checkpoint_tensors(checkpoints[repo_id])
    lm_head = on_disk["language_model.lm_head.weight"]
    assert torch.equal(state["lm_head.weight"], lm_head.to(state["lm_head.weight"].dtype))  # not tied
    assert all(t.dtype == torch.float16 for t in on_disk.values())


@pytest.mark.parametrize("repo_id", HF_IDS, ids=short)
def test_the_files_are_the_releases(checkpoints, repo_id):
    path = checkpoints[repo_id]
    shards = 4 if "mistral" in repo_id else 3
    expected = {"config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.model",
                "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                "preprocessor_config.json", "processor_config.json", "chat_template.json"}
    expected |= {f"model-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)}
    assert {p.name for p in path.iterdir()} == expected
    names = set(read(path, "model.safetensors.index.json")["weight_map"])
    assert {"language_model.model.embed_tokens.weight", "language_model.lm_head.weight",
            "multi_modal_projector.linear_1.weight", "multi_modal_projector.linear_2.bias",
            "vision_tower.vision_model.post_layernorm.weight"} <= names
    assert ("image_newline" in names) == ("v1.6" in repo_id)
    assert not any(n.endswith(("inv_freq", "position_ids")) for n in names)


@pytest.mark.parametrize("repo_id", list(RELEASED_TOP_FIELDS), ids=short)
def test_the_config_has_the_released_fields(checkpoints, repo_id):
    config = read(checkpoints[repo_id], "config.json")
    extra = {"pad_token_id"} - RELEASED_TOP_FIELDS[repo_id]  # kept from the conversion script (see above)
    assert set(config) == RELEASED_TOP_FIELDS[repo_id] | extra
    released = dict(RELEASED_VALUES[repo_id])
    assert {k: config[k] for k in released} == released
    text = config["text_config"]
    assert {k: text[k] for k in RELEASED_TEXT_FIELDS[repo_id]} == RELEASED_TEXT_FIELDS[repo_id]
    sizes = {"hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "num_key_value_heads"}
    assert set(text) <= set(RELEASED_TEXT_FIELDS[repo_id]) | sizes | {"vocab_size"}
    assert set(config["vision_config"]) == RELEASED_VISION_KEYS
    assert config["vision_config"]["vocab_size"] == 32000 and config["vision_config"]["patch_size"] == 14


@pytest.mark.parametrize("repo_id", HF_IDS, ids=short)
def test_image_and_pad_tokens_take_the_released_places(checkpoints, repo_id):
    path = checkpoints[repo_id]
    config = read(path, "config.json")
    vocab = config["image_token_index"]  # the tiny original vocabulary, as 32000 is LLaMA's
    offsets = (RELEASED_IMAGE_ID - RELEASED_ORIGINAL_VOCAB, RELEASED_PAD_ID - RELEASED_ORIGINAL_VOCAB)
    assert (config["image_token_index"] - vocab, config["pad_token_id"] - vocab) == offsets
    assert config["text_config"]["vocab_size"] == config["vocab_size"] == -(-(vocab + 2) // 64) * 64
    assert RELEASED_PADDED_VOCAB == -(-(RELEASED_ORIGINAL_VOCAB + 2) // 64) * 64
    assert read(path, "added_tokens.json") == {"<image>": vocab + offsets[0], "<pad>": vocab + offsets[1]}
    tokenizer_config = read(path, "tokenizer_config.json")
    added = tokenizer_config["added_tokens_decoder"]
    assert [added[str(i)]["content"] for i in (0, 1, 2, vocab, vocab + 1)] == ["<unk>", "<s>", "</s>", "<image>", "<pad>"]
    assert all(added[str(i)]["special"] and not added[str(i)]["normalized"] for i in (vocab, vocab + 1))
    assert tokenizer_config["tokenizer_class"] == "LlamaTokenizer" and tokenizer_config["pad_token"] == "<pad>"
    assert tokenizer_config["padding_side"] == ("left" if "mistral" in repo_id else "right")
    loaded = load_model(str(path), None, device="cpu")
    assert loaded.tokenizer.convert_tokens_to_ids(["<image>", "<pad>"]) == [vocab, vocab + 1]
    assert loaded.tokenizer.pad_token_id == loaded.model.config.pad_token_id == vocab + 1


@pytest.mark.parametrize("repo_id", HF_IDS, ids=short)
def test_the_processor_files_are_the_releases(checkpoints, repo_id):
    path = checkpoints[repo_id]
    next_ = "v1.6" in repo_id
    processor = read(path, "processor_config.json")
    assert processor == {**RELEASED_PROCESSOR, "processor_class": "LlavaNextProcessor" if next_ else "LlavaProcessor"}
    preprocessor = read(path, "preprocessor_config.json")
    assert preprocessor["image_processor_type"] == ("LlavaNextImageProcessor" if next_ else "CLIPImageProcessor")
    assert preprocessor["size"] == {"shortest_edge": 336} and preprocessor["crop_size"] == {"height": 336, "width": 336}
    if next_:
        assert set(preprocessor) == RELEASED_NEXT_PREPROCESSOR_KEYS and preprocessor["aspect_ratio_setting"] == "anyres"
    template = read(path, "chat_template.json")["chat_template"]
    assert template == (MISTRAL_CHAT_TEMPLATE if "mistral" in repo_id else VICUNA_CHAT_TEMPLATE)
    assert template.startswith(TEMPLATE_STARTS["mistral" if "mistral" in repo_id else "vicuna"])


def test_the_chat_templates_render_the_llava_prompts(checkpoints):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    texts = {}
    for repo_id in ("llava-hf/llava-1.5-7b-hf", "llava-hf/llava-v1.6-mistral-7b-hf"):
        processor = load_model(str(checkpoints[repo_id]), None, device="cpu").processor
        texts[repo_id] = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert texts["llava-hf/llava-1.5-7b-hf"] == "USER: <image>\nWhat is it? ASSISTANT:"
    assert texts["llava-hf/llava-v1.6-mistral-7b-hf"] == "[INST] <image>\nWhat is it? [/INST]"


def test_the_command_lists_and_writes_them(tmp_path, capsys):
    assert released_layouts.main(["--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert set(HF_IDS) <= set(listed) and len(HF_IDS) == 3
    out = tmp_path / "llava-1.5-hf"
    assert released_layouts.main(["--repo", "llava-hf/llava-1.5-7b-hf", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "HF_HUB_CACHE" not in printed  # the tower is inside: nothing to put in a cache
    assert not (tmp_path / "llava-1.5-hf-hub-cache").exists()
    assert load_model(str(out), None, device="cpu").family.name == "llava_hf"


# -- the same weights in both layouts -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def original_mistral(tmp_path_factory):
    """The tiny liuhaotian/llava-v1.6-mistral-7b the llava-hf one was converted from (same seed), with its tower's
    look-alike in an offline hub cache, as the original layout loads it."""
    root = tmp_path_factory.mktemp("original_mistral")
    cache = root / "cache"
    install_in_hub_cache(CLIP_TOWER_ID, build_clip_tower(root / "clip"), cache)
    path = build_released_checkpoint(LLAVA_HF_SOURCES["llava-hf/llava-v1.6-mistral-7b-hf"], root / "original")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        patch.setenv("HF_HUB_CACHE", str(cache))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield load_model(str(path), None, device="cpu")


def scene(seed, size):
    g = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(size[1], size[0], 3, generator=g) * 200).to(torch.uint8)
    return Image.fromarray(pixels.numpy())


def greedy(loaded, image, settings):
    # question_inputs builds the prompt as build_prompt(question, "mistral_instruct", 1) does.
    inputs = loaded.question_inputs("What is shown in the image?", [image], "mistral_instruct")
    record = PruningRecord(dart_config=settings)
    with torch.no_grad():
        out = loaded.model.generate(**loaded.generate_inputs([inputs]), pruning_record=record, max_new_tokens=5,
                                    min_new_tokens=5, do_sample=False)
    return out[:, -5:], record


def test_the_mistral_one_keeps_the_same_tokens_and_answers_as_its_original(checkpoints, original_mistral):
    converted = load_model(str(checkpoints["llava-hf/llava-v1.6-mistral-7b-hf"]), None, device="cpu")
    # Large enough that one grid fits best: for images smaller than every grid the released pinpoint order, read as
    # (height, width), breaks the 672x336 / 336x672 tie the other way than LLaVA's (width, height) reading does.
    image = scene(1, (700, 500))
    prompt = build_prompt("What is shown in the image?", "mistral_instruct", 1)
    assert prompt.startswith("[INST] <image>\n")
    assert converted.prompt_inputs(prompt, [image]).input_ids.tolist() == \
        converted.question_inputs("What is shown in the image?", [image], "mistral_instruct").input_ids.tolist()
    settings = make_dart_config(K=2, max_num_trunction=32, retain_token_num_for_llava_next=48, seed=5)
    theirs, their_record = greedy(original_mistral, image, settings)
    ours, our_record = greedy(converted, image, settings)
    assert their_record.pruned and our_record.pruned
    assert our_record.kept_image_positions(0)[0].tolist() == their_record.kept_image_positions(0)[0].tolist()
    assert ours.tolist() == theirs.tolist()
    kept_ours, kept_theirs = our_record.kept_image_positions(0), their_record.kept_image_positions(0)
    assert len(kept_ours) == len(kept_theirs) == 1 and torch.equal(kept_ours[0], kept_theirs[0])
    assert our_record.num_image_tokens(0) == their_record.num_image_tokens(0)
