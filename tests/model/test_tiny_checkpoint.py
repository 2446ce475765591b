"""The tiny-checkpoint factory writes LLaVA-1.5's original on-disk format, deterministically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel, LlamaConfig

from llava.model.tiny_checkpoint import (
    TOKENIZER_MODEL,
    TinySpec,
    build_tiny_base_llm,
    build_tiny_checkpoint,
    make_llm,
    make_vision_model,
    write_llm_weights,
)

SENTENCES = [
    "Hello",
    "What color is the circle?",
    "A chat between a curious human and an artificial intelligence assistant.",
    "USER: How many red squares are there?\nASSISTANT: There are 3 red squares.",
    "Ünïcode 日本 — 42%",
]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "llava-tiny", seed=0)


def _keys(path: Path) -> set[str]:
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"format": "pt"}
        return set(f.keys())


def test_files_and_llm_weight_names(ckpt):
    for name in ["config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json",
                 "special_tokens_map.json", "vision_tower/config.json", "vision_tower/preprocessor_config.json",
                 "vision_tower/model.safetensors"]:
        assert (ckpt / name).is_file(), name
    keys = _keys(ckpt / "model.safetensors")
    expected = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for i in range(4):
        expected |= {f"model.layers.{i}.self_attn.{p}_proj.weight" for p in "qkvo"}
        expected |= {f"model.layers.{i}.mlp.{p}_proj.weight" for p in ("gate", "up", "down")}
        expected |= {f"model.layers.{i}.{n}.weight" for n in ("input_layernorm", "post_attention_layernorm")}
    expected |= {f"model.mm_projector.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
    assert keys == expected
    state = load_file(str(ckpt / "model.safetensors"))
    assert state["model.mm_projector.0.weight"].shape == (64, 32)
    assert state["model.mm_projector.2.weight"].shape == (64, 64)
    assert torch.equal(state["model.norm.weight"], torch.ones(64))
    reference = make_llm(TinySpec(seed=0)).state_dict()
    for name, tensor in reference.items():
        assert torch.equal(state[name], tensor), name
    assert all(t.dtype == torch.float32 for t in state.values())


def test_config_fields(ckpt):
    config = json.loads((ckpt / "config.json").read_text())
    assert config["architectures"] == ["LlavaLlamaForCausalLM"]
    assert config["model_type"] == "llava_llama"
    assert config["mm_vision_tower"] == "vision_tower"
    assert (ckpt / config["mm_vision_tower"]).is_dir()
    expected = {
        "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 4, "hidden_act": "silu", "rms_norm_eps": 1e-5, "max_position_embeddings": 2048,
        "vocab_size": 512, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "tie_word_embeddings": False,
        "rope_theta": 10000.0, "rope_scaling": None, "use_cache": True, "torch_dtype": "float32",
        "mm_hidden_size": 32, "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch", "image_aspect_ratio": "pad", "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False, "mm_patch_merge_type": "flat", "tune_mm_mlp_adapter": False,
        "freeze_mm_mlp_adapter": False, "use_mm_proj": True, "tokenizer_model_max_length": 2048,
        "tokenizer_padding_side": "right",
    }
    assert {k: config[k] for k in expected} == expected
    llama = LlamaConfig.from_dict(config)  # transformers 5 still reads the 4.x rope fields
    assert llama.rope_parameters["rope_theta"] == 10000.0
    assert llama.dtype == torch.float32 and llama.mm_vision_tower == "vision_tower"


def test_vision_tower_loads_every_weight_and_matches_source(ckpt):
    tower_dir = ckpt / "vision_tower"
    keys = _keys(tower_dir / "model.safetensors")
    # The vision half, and CLIP's text half beside it (the tiny seeded one CDPruner reads), as openai's checkpoint.
    assert all(k.startswith(("vision_model.", "text_model.", "text_projection.", "visual_projection.", "logit_scale"))
               for k in keys) and "text_projection.weight" in keys
    for name in ["embeddings.class_embedding", "embeddings.patch_embedding.weight",
                 "embeddings.position_embedding.weight", "pre_layrnorm.weight", "post_layernorm.bias",
                 "encoder.layers.1.self_attn.out_proj.weight", "encoder.layers.0.mlp.fc1.bias",
                 "encoder.layers.1.layer_norm2.weight"]:
        assert f"vision_model.{name}" in keys
    config = json.loads((tower_dir / "config.json").read_text())
    assert config["model_type"] == "clip" and config["architectures"] == ["CLIPModel"]
    assert config["vision_config"]["hidden_act"] == "quick_gelu" and "text_config" in config

    model, info = CLIPVisionModel.from_pretrained(tower_dir, output_loading_info=True)
    unexpected = [k for k in info["unexpected_keys"] if k.startswith("vision_model.")]  # the text half's are not
    assert not info["missing_keys"] and not unexpected and not info["mismatched_keys"]
    source = make_vision_model(TinySpec(seed=0))
    pixels = torch.randn(1, 3, 336, 336, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        loaded = model(pixels, output_hidden_states=True)
        expected = source(pixels, output_hidden_states=True)
    assert loaded.last_hidden_state.shape == (1, 577, 32)  # (336 / 14)^2 patches + CLS
    for a, b in zip(loaded.hidden_states, expected.hidden_states, strict=True):
        assert torch.equal(a, b)

    vision_config = CLIPVisionConfig.from_pretrained(tower_dir)
    assert (vision_config.hidden_size, vision_config.num_hidden_layers, vision_config.num_attention_heads) == (32, 2, 2)
    assert (vision_config.image_size, vision_config.patch_size) == (336, 14)
    processor = CLIPImageProcessorPil.from_pretrained(tower_dir)
    assert processor.crop_size == {"height": 336, "width": 336}
    assert list(processor.image_mean) == [0.48145466, 0.4578275, 0.40821073]


def test_tokenizer_is_llama_style_and_matches_sentencepiece(ckpt):
    tokenizer = AutoTokenizer.from_pretrained(ckpt, use_fast=False)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (1, 2, 0)
    assert tokenizer.pad_token == "<unk>" and tokenizer.pad_token_id == 0
    assert len(tokenizer) == 512 and tokenizer.padding_side == "right"
    ids = tokenizer("Hello").input_ids
    assert ids[0] == 1 and ids[-1] != 2
    sp = spm.SentencePieceProcessor(model_file=str(ckpt / "tokenizer.model"))
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.get_piece_size()) == (0, 1, 2, 512)
    for text in SENTENCES:
        ids = tokenizer(text).input_ids
        assert ids == [1] + sp.encode(text), text
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer("\n", add_special_tokens=False).input_ids[-1] == 13  # byte fallback <0x0A>, as in LLaMA
    # legacy=False: no "▁" is inserted after a special token (what the v1 template's label masking assumes).
    after_eos = tokenizer("Yes</s>USER", add_special_tokens=False).input_ids
    pieces = tokenizer.convert_ids_to_tokens(after_eos[after_eos.index(2) + 1 :])
    assert "".join(pieces) == "USER" and sp.encode("USER", out_type=str) == ["▁USER"]


def test_shipped_tokenizer_is_reproducible(tiny_script):
    module = tiny_script("make_tokenizer")
    assert module.train(512) == TOKENIZER_MODEL.read_bytes()


def test_same_seed_same_bytes_other_seed_other_weights(ckpt, tmp_path):
    rng_before = torch.get_rng_state()
    for name, seed in [("a", 0), ("b", 1)]:
        (tmp_path / name).mkdir()
        write_llm_weights(tmp_path / name, TinySpec(seed=seed))
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is left alone
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (ckpt / "model.safetensors").read_bytes()
    other = load_file(str(tmp_path / "b" / "model.safetensors"))
    mine = load_file(str(ckpt / "model.safetensors"))
    for key in ["model.layers.0.self_attn.q_proj.weight", "model.mm_projector.0.weight"]:
        assert not torch.equal(other[key], mine[key]), key


def test_projector_only_layout_pairs_with_base_llm(ckpt, tmp_path):
    stage1 = build_tiny_checkpoint(tmp_path / "stage1", seed=0, layout="projector_only")
    assert not (stage1 / "model.safetensors").exists()
    assert (stage1 / "vision_tower" / "model.safetensors").is_file()
    config = json.loads((stage1 / "config.json").read_text())
    assert config["model_type"] == "llava_llama" and config["mm_projector_type"] == "mlp2x_gelu"
    from_bin = torch.load(stage1 / "mm_projector.bin", map_location="cpu", weights_only=True)
    from_safetensors = load_file(str(stage1 / "mm_projector.safetensors"))
    expected_keys = {f"model.mm_projector.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
    assert set(from_bin) == set(from_safetensors) == expected_keys
    full = load_file(str(ckpt / "model.safetensors"))
    for key in expected_keys:
        assert torch.equal(from_bin[key], from_safetensors[key]) and torch.equal(from_bin[key], full[key])

    base = build_tiny_base_llm(tmp_path / "base", seed=0)
    base_config = json.loads((base / "config.json").read_text())
    assert base_config["model_type"] == "llama" and base_config["architectures"] == ["LlamaForCausalLM"]
    base_state = load_file(str(base / "model.safetensors"))
    assert set(base_state) == set(full) - expected_keys
    assert all(torch.equal(base_state[k], full[k]) for k in base_state)
    assert AutoTokenizer.from_pretrained(base, use_fast=False)("Hi").input_ids[0] == 1


def test_linear_projector_and_bad_layout(tmp_path):
    out = build_tiny_checkpoint(tmp_path / "lin", projector_type="linear", layout="projector_only")
    keys = set(load_file(str(out / "mm_projector.safetensors")))
    assert keys == {"model.mm_projector.weight", "model.mm_projector.bias"}
    with pytest.raises(ValueError, match="layout"):
        build_tiny_checkpoint(tmp_path / "bad", layout="nope")
    with pytest.raises(ValueError, match="projector_type"):
        build_tiny_checkpoint(tmp_path / "bad2", projector_type="resampler")
    with pytest.raises(NotImplementedError):
        build_tiny_checkpoint(tmp_path / "bad3", layout="projector_only", mm_use_im_start_end=True)


def test_im_start_end_tokens_extend_vocab(tmp_path):
    out = build_tiny_checkpoint(tmp_path / "se", mm_use_im_start_end=True, num_layers=1)
    config = json.loads((out / "config.json").read_text())
    assert config["mm_use_im_start_end"] is True and config["vocab_size"] == 514
    state = load_file(str(out / "model.safetensors"))
    assert state["model.embed_tokens.weight"].shape[0] == state["lm_head.weight"].shape[0] == 514
    tokenizer = AutoTokenizer.from_pretrained(out, use_fast=False)
    assert len(tokenizer) == 514
    assert tokenizer("<im_start>Hi<im_end>").input_ids[:2] == [1, 512] and 513 in tokenizer("<im_end>").input_ids


def test_a_larger_tokenizer_sets_the_vocabulary(tmp_path, tiny_script):
    """`--tokenizer-model`: the base LLM ships that SentencePiece model and sizes its embeddings to it;
    LLaVA's <im_start>/<im_end> come right after its pieces."""
    module = tiny_script("make_tokenizer")
    (tmp_path / "tok.model").write_bytes(module.train(1024))
    base = build_tiny_base_llm(tmp_path / "base", tokenizer_model=str(tmp_path / "tok.model"))
    assert (base / "tokenizer.model").read_bytes() == (tmp_path / "tok.model").read_bytes()
    assert json.loads((base / "config.json").read_text())["vocab_size"] == 1024
    assert load_file(str(base / "model.safetensors"))["model.embed_tokens.weight"].shape == (1024, 64)
    tokenizer = AutoTokenizer.from_pretrained(str(base), use_fast=False)
    assert tokenizer("on a beige background").input_ids == [1] + spm.SentencePieceProcessor(
        model_file=str(tmp_path / "tok.model")).encode("on a beige background")
    full = build_tiny_checkpoint(tmp_path / "full", tokenizer_model=str(tmp_path / "tok.model"), mm_use_im_start_end=True)
    assert json.loads((full / "added_tokens.json").read_text()) == {"<im_start>": 1024, "<im_end>": 1025}
    assert json.loads((full / "config.json").read_text())["vocab_size"] == 1026
