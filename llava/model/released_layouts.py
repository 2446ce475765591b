"""Tiny checkpoints in the exact on-disk layouts of the released hub checkpoints the project loads.

    path = build_released_checkpoint("liuhaotian/llava-v1.6-vicuna-7b", out_dir)
    install_in_hub_cache("liuhaotian/llava-v1.6-vicuna-7b", path, cache_dir)
    install_in_hub_cache(CLIP_TOWER_ID, build_clip_tower(tower_dir), cache_dir)

Each writer reproduces what the released repo holds (see `RELEASED_LAYOUTS`): the config's field names and values
with only the sizes shrunk, the tensor names, the shard files and their index, the file formats (pickled `.bin`
shards for LLaVA-1.5, safetensors elsewhere), the stored dtypes and the tokenizer files and classes. The LLaVA
checkpoints name their vision tower by hub id, "openai/clip-vit-large-patch14-336", as the releases do:
`build_clip_tower` writes a tiny look-alike of that repo, to be placed in a hub cache with `install_in_hub_cache`.

Where the exact content of a released file is not known, the most plausible value is used and a comment says so.
Sizes: LLaMA/Mistral/Yi with hidden size 64 and 4 layers (`llava.model.tiny_checkpoint.TinySpec`), a CLIP tower of
width 32 and 2 layers at the real 336-pixel input with 14-pixel patches, Qwen models as in `llava.model.tiny_qwen`.

From the command line, to try the commands on a family without its weights:

    python -m llava.model.released_layouts --list
    python -m llava.model.released_layouts --repo Qwen/Qwen2-VL-7B-Instruct --out checkpoints/qwen2-vl-tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from llava.model import tiny_checkpoint as tiny
from llava.model import tiny_qwen

CLIP_TOWER_ID = "openai/clip-vit-large-patch14-336"
LLAVA_1_6_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]


@dataclasses.dataclass(frozen=True)
class ReleasedLayout:
    """family: which loader path the checkpoint takes; conv_mode: the template LLaVA's scripts run it with (Qwen:
    the chat template); files: what the released repo holds (weights shards by their pattern)."""

    family: str
    conv_mode: str
    files: tuple[str, ...]
    notes: str



def _llava_hf_files(shards: int) -> tuple[str, ...]:
    """What a llava-hf release holds: float16 safetensors shards and the processor's and tokenizer's files."""
    return ("config.json", "generation_config.json", f"model-0000{{1..{shards}}}-of-0000{shards}.safetensors",
            "model.safetensors.index.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "added_tokens.json", "preprocessor_config.json", "processor_config.json",
            "chat_template.json")

RELEASED_LAYOUTS: dict[str, ReleasedLayout] = {
    "liuhaotian/llava-v1.5-7b": ReleasedLayout(
        "llava_llama", "vicuna_v1",
        ("config.json", "generation_config.json", "pytorch_model-0000{1,2}-of-00002.bin", "pytorch_model.bin.index.json",
         "mm_projector.bin", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"),
        "model_type 'llava', transformers 4.31: float16 pickled shards with the rotary inv_freq buffers, no vision "
        "tower tensors (the tower is the hub's CLIP), slow LlamaTokenizer only"),
    "liuhaotian/llava-v1.6-vicuna-7b": ReleasedLayout(
        "llava_llama", "vicuna_v1",
        ("config.json", "generation_config.json", "model-0000{1..3}-of-00003.safetensors", "model.safetensors.index.json",
         "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"),
        "model_type 'llava', anyres + spatial_unpad, bfloat16; the fine-tuned CLIP tower inside the weights "
        "(model.vision_tower.vision_tower.vision_model.*) and model.image_newline"),
    "liuhaotian/llava-v1.6-mistral-7b": ReleasedLayout(
        "llava_mistral", "mistral_instruct",
        ("config.json", "generation_config.json", "model-0000{1..4}-of-00004.safetensors", "model.safetensors.index.json",
         "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"),
        "model_type 'llava_mistral', GQA, rope_theta 1e6, sliding_window null; tower inside; fast tokenizer too"),
    "liuhaotian/llava-v1.6-34b": ReleasedLayout(
        "llava_llama", "chatml_direct",
        ("config.json", "generation_config.json", "model-000{01..15}-of-00015.safetensors", "model.safetensors.index.json",
         "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"),
        "Yi-34B as LLaMA with GQA; Yi's SentencePiece (bos <|startoftext|>, eos <|im_end|> = 7); tower inside"),
    "Qwen/Qwen2-VL-7B-Instruct": ReleasedLayout(
        "qwen2_vl", "qwen_chat_template",
        ("config.json", "generation_config.json", "model-0000{1..5}-of-00005.safetensors", "model.safetensors.index.json",
         "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "chat_template.json",
         "preprocessor_config.json"),
        "flat config (no text_config), rope_scaling type 'mrope'; tensors model.layers.* / visual.* / lm_head"),
    "Qwen/Qwen2.5-VL-7B-Instruct": ReleasedLayout(
        "qwen2_5_vl", "qwen_chat_template",
        ("config.json", "generation_config.json", "model-0000{1..5}-of-00005.safetensors", "model.safetensors.index.json",
         "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "chat_template.json",
         "preprocessor_config.json"),
        "as Qwen2-VL, with the windowed RMSNorm/SwiGLU vision tower"),
    "Qwen/Qwen3-VL-8B-Instruct": ReleasedLayout(
        "qwen3_vl", "qwen_chat_template",
        ("config.json", "generation_config.json", "model-0000{1..4}-of-00004.safetensors", "model.safetensors.index.json",
         "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "chat_template.json",
         "preprocessor_config.json", "video_preprocessor_config.json"),
        "text_config / vision_config, interleaved M-RoPE, q/k norms, 16-px patches, DeepStack from tower blocks "
        "8/16/24 into text layers 0-2; tensors model.language_model.* / model.visual.* / lm_head"),
    # The llava-hf conversions of the LLaVA releases (transformers' conversion scripts' layout): the tiny original
    # release converted by `llava.model.llava_hf_convert`, with the tower inside (no hub cache needed).
    "llava-hf/llava-1.5-7b-hf": ReleasedLayout(
        "llava_hf", "vicuna_v1",
        _llava_hf_files(3),
        "LlavaForConditionalGeneration, float16; language_model.* / vision_tower.* / multi_modal_projector.*, "
        "<image> 32000 and <pad> 32001 added (vocab padded to 32064)"),
    "llava-hf/llava-v1.6-vicuna-7b-hf": ReleasedLayout(
        "llava_hf", "vicuna_v1",
        _llava_hf_files(3),
        "LlavaNextForConditionalGeneration, float16, image_newline; LlavaNextImageProcessor with the 5 pinpoints"),
    "llava-hf/llava-v1.6-mistral-7b-hf": ReleasedLayout(
        "llava_hf", "mistral_instruct",
        _llava_hf_files(4),
        "LlavaNextForConditionalGeneration over Mistral (GQA, rope_theta 1e6); [INST] chat template, left padding"),
    "llava-hf/llava-onevision-qwen2-7b-ov-hf": ReleasedLayout(
        "llava_onevision", "chat_template",
        ("config.json", "generation_config.json", "model-0000{1..4}-of-00004.safetensors", "model.safetensors.index.json",
         "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
         "added_tokens.json", "chat_template.json", "preprocessor_config.json", "processor_config.json"),
        "LlavaOnevisionForConditionalGeneration, float16: SigLIP (no [CLS], 'full'), anyres_max_9 + image_newline, "
        "Qwen2 with <image> 151646 / <video> 151647 added, vocab padded to 152128; no system prompt"),
}
# Which original release each llava-hf one was converted from.
LLAVA_HF_SOURCES = {
    "llava-hf/llava-1.5-7b-hf": "liuhaotian/llava-v1.5-7b",
    "llava-hf/llava-v1.6-vicuna-7b-hf": "liuhaotian/llava-v1.6-vicuna-7b",
    "llava-hf/llava-v1.6-mistral-7b-hf": "liuhaotian/llava-v1.6-mistral-7b",
}

# Snapshot commits seen in the released repos (the facts' tree links); any 40-hex string would do for a cache.
KNOWN_COMMITS = {
    "liuhaotian/llava-v1.5-7b": "12e054b30e8e061f423c7264bc97d4248232e965",
    "liuhaotian/llava-v1.6-vicuna-7b": "7e2b5e94d1f4ab2395dc471e0eb2be2e269c9160",
    "liuhaotian/llava-v1.6-mistral-7b": "ab7aee105ab96f7730c6f639f0e05464520089fc",
    "Qwen/Qwen2-VL-7B-Instruct": "a7a06a1cc11b4514ce9edcde0e3ca1d16e5ff2fc",
    "Qwen/Qwen2.5-VL-7B-Instruct": "cc594898137f460bfe9f0759e9844b3ce807cfb5",
}


# ------------------------------------------------------------------------------------------------- files


def write_json(path: Path, data: dict) -> None:
    """As transformers 4.x wrote configs: sorted keys, indent 2, a final newline."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_shards(state: dict[str, torch.Tensor], out: Path, num_shards: int, fmt: str = "safetensors") -> None:
    """`state` split in order over `num_shards` files named as save_pretrained names them, plus their index.

    The tensors are assigned by count, not by size: with tiny tensors only the names and the split matter, and
    contiguous groups keep the released order (embeddings in the first shard, lm_head in the last).
    """
    stem, suffix = ("model", "safetensors") if fmt == "safetensors" else ("pytorch_model", "bin")
    names = list(state)
    if not 1 <= num_shards <= len(names):
        raise ValueError(f"cannot split {len(names)} tensors over {num_shards} shards")
    bounds = [round(i * len(names) / num_shards) for i in range(num_shards + 1)]
    weight_map = {}
    for i in range(num_shards):
        filename = f"{stem}-{i + 1:05d}-of-{num_shards:05d}.{suffix}"
        shard = {name: state[name].contiguous() for name in names[bounds[i]:bounds[i + 1]]}
        if fmt == "safetensors":
            save_file(shard, str(out / filename), metadata={"format": "pt"})
        else:
            torch.save(shard, out / filename)
        weight_map.update(dict.fromkeys(shard, filename))
    total_size = sum(t.numel() * t.element_size() for t in state.values())
    write_json(out / f"{stem}.{suffix}.index.json", {"metadata": {"total_size": total_size}, "weight_map": weight_map})


def read_checkpoint_tensors(path) -> dict[str, torch.Tensor]:
    """Every tensor a checkpoint directory's weight files hold, by its name on disk (shards through their index, or
    the single file); `mm_projector.bin` is a stage-1 extra, not part of the model's weights."""
    path = Path(path)
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            break
    else:
        files = [name for name in ("model.safetensors", "pytorch_model.bin") if (path / name).is_file()]
    from llava.model.weights import load_state_file

    tensors = {}
    for name in files:
        tensors.update(load_state_file(str(path / name)))
    return tensors


# --------------------------------------------------------------------------------------------- hub cache


def commit_for(repo_id: str) -> str:
    return KNOWN_COMMITS.get(repo_id) or hashlib.sha1(repo_id.encode()).hexdigest()


def install_in_hub_cache(repo_id: str, source_dir, cache_dir) -> Path:
    """Place `source_dir`'s files in a huggingface_hub cache as a download of `repo_id` would: returns the snapshot.

    The layout is `models--org--name/refs/main` (the commit) and `snapshots/<commit>/<files>`; with HF_HUB_CACHE
    pointing at `cache_dir` and offline mode on, `from_pretrained(repo_id)` and `hf_hub_download` resolve from it.
    Like `snapshot_download`, it records no `.no_exist` markers: files the repo lacks are simply not there.
    """
    commit = commit_for(repo_id)
    repo_dir = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    shutil.copytree(source_dir, snapshot, dirs_exist_ok=True)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return snapshot


# -------------------------------------------------------------------------------------------- CLIP tower


def build_clip_tower(out_dir, seed: int = 0) -> Path:
    """A tiny `openai/clip-vit-large-patch14-336`: the full CLIPModel config, the old-style preprocessor config and
    float32 weights of both halves (`vision_model.*`, `text_model.*`, the projections, `logit_scale`) and the CLIP
    tokenizer files, as the openai repo holds them; the vision half is
    `tiny_checkpoint.make_vision_model(TinySpec(seed=seed))`, the text half and tokenizer
    `tiny_checkpoint.write_clip_text_half`'s (seeded random, a tiny vocabulary: CDPruner loads them from here).
    """
    from transformers import CLIPConfig, CLIPModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = tiny.TinySpec(seed=seed)
    vision = tiny.vision_config_dict(spec)
    text = tiny.clip_text_config(spec.vision_hidden_size)
    # The openai configs (transformers ~4.21) repeat the sizes in `text_config_dict` / `vision_config_dict`
    # [from memory, UNVERIFIED]; the values agree with the full dicts.
    sizes = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "projection_dim")
    config = {
        "_name_or_path": CLIP_TOWER_ID,
        "architectures": ["CLIPModel"],
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "model_type": "clip",
        "projection_dim": spec.vision_hidden_size,
        "text_config": text,
        "text_config_dict": {k: text[k] for k in sizes},
        "torch_dtype": "float32",
        "transformers_version": None,
        "vision_config": vision,
        "vision_config_dict": {k: vision[k] for k in sizes + ("image_size", "patch_size")},
    }
    write_json(out / "config.json", config)
    # Old-style (CLIPFeatureExtractor era): integer size and crop size, no image_processor_type [from memory].
    write_json(out / "preprocessor_config.json", {
        "crop_size": spec.image_size, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": tiny.CLIP_MEAN, "image_std": tiny.CLIP_STD,
        "resample": 3, "size": spec.image_size,
    })
    clip_config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=spec.vision_hidden_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 3)
        clip = CLIPModel(clip_config)
    state = {name: tensor.detach().clone() for name, tensor in clip.state_dict().items()}
    state.update({f"vision_model.{name}": tensor.detach().clone()
                  for name, tensor in tiny.make_vision_model(spec).state_dict().items()})
    # Saved by transformers < 4.31, which kept the position-id buffers in the checkpoint.
    state["text_model.embeddings.position_ids"] = torch.arange(text["max_position_embeddings"])[None]
    num_positions = (spec.image_size // spec.patch_size) ** 2 + 1
    state["vision_model.embeddings.position_ids"] = torch.arange(num_positions)[None]
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
    tiny.write_clip_text_half(out, seed=seed + 4)
    return out


# ------------------------------------------------------------------------------------------------- LLaVA


def _added_token(content: str, *, special: bool | None = None, typed: bool = False) -> dict:
    entry = {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    if special is not None:
        entry["special"] = special
    return {"__type": "AddedToken", **entry} if typed else entry


def _special_tokens_map(bos: str, eos: str) -> dict:
    # LLaVA's training sets pad = unk, so every released LLaVA tokenizer carries pad_token "<unk>" (a plain string).
    return {"bos_token": _added_token(bos), "eos_token": _added_token(eos), "pad_token": "<unk>",
            "unk_token": _added_token("<unk>")}


def _tokenizer_config_4_36(pieces: dict[int, str], bos: str, eos: str, **extra) -> dict:
    """tokenizer_config.json as transformers 4.36 saved a slow LlamaTokenizer (the 1.6 releases). For vicuna's
    pieces this renders to exactly the released file's 936 bytes."""
    return {
        "add_bos_token": True, "add_eos_token": False,
        "added_tokens_decoder": {str(i): _added_token(t, special=True) for i, t in sorted(pieces.items())},
        "bos_token": bos, "clean_up_tokenization_spaces": False, "eos_token": eos, "legacy": False,
        "model_max_length": 4096, "pad_token": "<unk>", "padding_side": "right", "sp_model_kwargs": {},
        "spaces_between_special_tokens": False, "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>",
        "use_default_system_prompt": False, **extra,
    }


LLAMA_PIECES = {0: "<unk>", 1: "<s>", 2: "</s>"}

# Mistral-7B-Instruct-v0.2's chat template [from memory]; LLaVA does not use it (it builds mistral_instruct prompts).
MISTRAL_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

# Yi's first pieces, in Yi's order: ids 0-2 are SentencePiece's unk/bos/eos, 3-8 user-defined chat markers.
YI_PIECES = ("<unk>", "<|startoftext|>", "<|endoftext|>", "<|Human|>", "<|Assistant|>", "<|System|>", "<|im_start|>",
             "<|im_end|>", "<|im_sep|>")
YI_EOS_ID = 7

_YI_CORPUS = (
    "<|im_start|>system\nAnswer the questions.<|im_end|><|im_start|>user\nWhat is shown in the image?<|im_end|>"
    "<|im_start|>assistant\nA small red square on a plain background.<|im_end|>",
    tiny_qwen._CORPUS,
    "USER: What colour is the circle? ASSISTANT: The circle is blue. Is there a green star? Yes. No.",
)


def train_yi_tokenizer(vocab_size: int = 512) -> bytes:
    """A tiny Yi-style SentencePiece model (`tokenizer.model` bytes): BPE with byte fallback, `<|startoftext|>` /
    `<|endoftext|>` as bos/eos, the chat markers as user-defined pieces 3-8 (so text containing them maps to one
    id each, as the chatml_direct prompts need). Deterministic: fixed corpus, one thread, no shuffling."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(_YI_CORPUS) * 4), model_writer=buffer, model_type="bpe", vocab_size=vocab_size,
        hard_vocab_limit=False, character_coverage=1.0, byte_fallback=True, split_digits=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, bos_piece=YI_PIECES[1],
        eos_piece=YI_PIECES[2], user_defined_symbols=list(YI_PIECES[3:]), num_threads=1, input_sentence_size=0,
        shuffle_input_sentence=False, minloglevel=2,
    )
    model = buffer.getvalue()
    processor = spm.SentencePieceProcessor(model_proto=model)
    if [processor.id_to_piece(i) for i in range(len(YI_PIECES))] != list(YI_PIECES):
        raise RuntimeError("the Yi-style pieces did not get ids 0-8")
    return model


@dataclasses.dataclass(frozen=True)
class _LlavaRelease:
    """What differs between the four LLaVA releases (the rest is shared)."""

    version: str  # "1.5" or "1.6"
    text: dict  # the language-model fields of config.json but the sizes, which come from the TinySpec
    spec: dict  # TinySpec overrides: the shrunk sizes (intermediate / hidden as released, GQA where released)
    dtype: torch.dtype
    num_shards: int
    extra_config: dict


def _llava_release(repo_id: str) -> _LlavaRelease:
    llama = {"bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "initializer_range": 0.02,
             "max_position_embeddings": 4096, "pad_token_id": 0, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
             "rope_scaling": None, "tie_word_embeddings": False, "use_cache": True}
    # transformers 4.36 adds these to every LLaMA config it saves.
    llama_4_36 = {**llama, "attention_bias": False, "attention_dropout": 0.0, "rope_theta": 10000.0}
    if repo_id == "liuhaotian/llava-v1.5-7b":
        return _LlavaRelease("1.5", {**llama, "max_length": 4096}, {}, torch.float16, 2,
                             {"_name_or_path": "llava-v1.5-7b", "model_type": "llava", "transformers_version": "4.31.0"})
    common_1_6 = {"transformers_version": "4.36.2", "tokenizer_model_max_length": 4096}
    if repo_id == "liuhaotian/llava-v1.6-vicuna-7b":
        return _LlavaRelease("1.6", llama_4_36, {}, torch.bfloat16, 3, {
            **common_1_6, "_name_or_path": "./checkpoints/vicuna-7b-v1-6", "model_type": "llava",
            "tokenizer_padding_side": "right"})
    if repo_id == "liuhaotian/llava-v1.6-mistral-7b":
        # Mistral-7B-Instruct-v0.2's fields; 14336 / 4096 = 3.5 gives the intermediate size. No pad_token_id.
        mistral = {"attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
                   "initializer_range": 0.02, "max_position_embeddings": 32768, "rms_norm_eps": 1e-05,
                   "rope_theta": 1000000.0, "sliding_window": None, "tie_word_embeddings": False, "use_cache": True}
        return _LlavaRelease("1.6", mistral, {"intermediate_size": 224, "num_key_value_heads": 2}, torch.bfloat16, 4, {
            **common_1_6, "_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2", "model_type": "llava_mistral",
            "architectures": ["LlavaMistralForCausalLM"], "tokenizer_padding_side": "left"})
    if repo_id == "liuhaotian/llava-v1.6-34b":
        # Yi-34B: 56 query / 8 key-value heads, rope_theta 5e6 [Yi's value, UNVERIFIED for this checkpoint], eos
        # <|im_end|> = 7. model_type "llava" as the other 1.6 releases [UNVERIFIED]; _name_or_path a guess.
        # 20480 / 7168 is about 2.86: intermediate 184 for hidden 64.
        yi = {**llama_4_36, "eos_token_id": YI_EOS_ID, "rope_theta": 5000000.0}
        return _LlavaRelease("1.6", yi, {"intermediate_size": 184, "num_key_value_heads": 2}, torch.bfloat16, 15, {
            **common_1_6, "_name_or_path": "./checkpoints/llava-v1.6-34b", "model_type": "llava",
            "tokenizer_padding_side": "right"})
    raise KeyError(repo_id)


def _llava_config(release: _LlavaRelease, spec: tiny.TinySpec) -> dict:
    config = {
        "architectures": ["LlavaLlamaForCausalLM"],
        **release.text,
        "hidden_size": spec.hidden_size, "intermediate_size": spec.intermediate_size,
        "num_attention_heads": spec.num_attention_heads, "num_hidden_layers": spec.num_layers,
        "num_key_value_heads": spec.num_key_value_heads,
        "freeze_mm_mlp_adapter": False, "freeze_mm_vision_resampler": False,
        "mm_hidden_size": spec.vision_hidden_size, "mm_projector_type": "mlp2x_gelu", "mm_resampler_type": None,
        "mm_use_im_patch_token": False, "mm_use_im_start_end": False, "mm_vision_select_feature": "patch",
        "mm_vision_select_layer": -2, "mm_vision_tower": CLIP_TOWER_ID,
        "torch_dtype": {torch.float16: "float16", torch.bfloat16: "bfloat16"}[release.dtype],
        "tune_mm_mlp_adapter": False, "tune_mm_vision_resampler": False, "use_mm_proj": True,
        "vocab_size": spec.vocab_size,
        **release.extra_config,
    }
    if release.version == "1.5":  # no mm_patch_merge_type: LLaVA's code reads its absence as "flat"
        config.update(image_aspect_ratio="pad", unfreeze_mm_vision_tower=False)
    else:
        # torch_dtype "bfloat16" is UNVERIFIED for vicuna (the only verbatim copy lacks the line).
        config.update(image_aspect_ratio="anyres", image_crop_resolution=224, image_split_resolution=224,
                      image_grid_pinpoints=LLAVA_1_6_PINPOINTS, mm_patch_merge_type="spatial_unpad",
                      mm_projector_lr=None, mm_vision_tower_lr=2e-06, unfreeze_mm_vision_tower=True)
    return config


def tuned_vision_state(spec: tiny.TinySpec) -> dict[str, torch.Tensor]:
    """The hub tower's weights after LLaVA-1.6's fine-tuning: `make_vision_model(spec)` plus seeded noise, so that
    features tell the checkpoint's tower from the hub's. Names as in a CLIPVisionModel checkpoint (`vision_model.*`)."""
    generator = torch.Generator().manual_seed(spec.seed + 4)
    return {f"vision_model.{name}": tensor.detach() + 0.05 * torch.randn(tensor.shape, generator=generator)
            for name, tensor in tiny.make_vision_model(spec).state_dict().items()}


def _write_llava(repo_id: str, out: Path, seed: int) -> None:
    release = _llava_release(repo_id)
    if repo_id == "liuhaotian/llava-v1.6-34b":
        (out / "tokenizer.model").write_bytes(train_yi_tokenizer())
        spec = tiny.TinySpec(seed=seed, tokenizer_model=str(out / "tokenizer.model"), **release.spec)
    else:
        spec = tiny.TinySpec(seed=seed, **release.spec)
    write_json(out / "config.json", _llava_config(release, spec))

    llm = tiny.make_llm(spec).state_dict()
    projector = tiny.make_projector_state(spec)
    state = {name: t for name, t in llm.items() if name != "lm_head.weight" and name != "model.norm.weight"}
    if release.version == "1.5":
        # transformers 4.31 saved each layer's rotary frequencies (float32 beside the float16 weights).
        head_dim = spec.hidden_size // spec.num_attention_heads
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        with_freq = {}
        for name, tensor in state.items():
            with_freq[name] = tensor
            if name.endswith("self_attn.o_proj.weight"):
                with_freq[name.replace("o_proj.weight", "rotary_emb.inv_freq")] = inv_freq.clone()
        state = with_freq
    state["model.norm.weight"] = llm["model.norm.weight"]
    if release.version == "1.6":
        state.update({f"model.vision_tower.vision_tower.{name}": t for name, t in tuned_vision_state(spec).items()})
    state.update(projector)
    if release.version == "1.6":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 5)
            state["model.image_newline"] = torch.randn(spec.hidden_size) * spec.hidden_size**-0.5
    state["lm_head.weight"] = llm["lm_head.weight"]
    state = {name: (t if name.endswith("inv_freq") else t.to(release.dtype)) for name, t in state.items()}
    write_shards(state, out, release.num_shards, "bin" if release.version == "1.5" else "safetensors")

    if repo_id == "liuhaotian/llava-v1.5-7b":
        torch.save({name: t.to(release.dtype) for name, t in projector.items()}, out / "mm_projector.bin")
        # The 749-byte tokenizer_config / 438-byte special_tokens_map form; tiny_checkpoint writes exactly that.
        tiny.write_tokenizer(out, spec)
        write_json(out / "generation_config.json", {"bos_token_id": 1, "eos_token_id": 2, "max_length": 4096,
                                                   "pad_token_id": 0, "transformers_version": "4.31.0"})
        return
    if repo_id == "liuhaotian/llava-v1.6-34b":
        # Yi's tokenizer_config: no BOS added, legacy spacing [both UNVERIFIED]; the chat markers it ends turns with
        # declared as added special tokens.
        pieces = {i: YI_PIECES[i] for i in (0, 1, 2, 6, 7)}
        write_json(out / "tokenizer_config.json", _tokenizer_config_4_36(
            pieces, YI_PIECES[1], YI_PIECES[YI_EOS_ID], add_bos_token=False, legacy=True))
        write_json(out / "special_tokens_map.json", _special_tokens_map(YI_PIECES[1], YI_PIECES[YI_EOS_ID]))
        write_json(out / "generation_config.json", {"_from_model_config": True, "bos_token_id": 1,
                                                   "eos_token_id": YI_EOS_ID, "pad_token_id": 0,
                                                   "transformers_version": "4.36.2"})
        return
    shutil.copyfile(spec.tokenizer_path, out / "tokenizer.model")
    write_json(out / "special_tokens_map.json", _special_tokens_map("<s>", "</s>"))
    if repo_id == "liuhaotian/llava-v1.6-vicuna-7b":
        write_json(out / "tokenizer_config.json", _tokenizer_config_4_36(LLAMA_PIECES, "<s>", "</s>"))
        # 170 bytes in the release; these keys render to 170 bytes, the exact set is a guess. The sampling defaults
        # (from vicuna's own generation config) are what a greedy --temperature 0 run must override.
        write_json(out / "generation_config.json", {"_from_model_config": True, "bos_token_id": 1, "do_sample": True,
                                                   "eos_token_id": 2, "temperature": 0.9, "top_p": 0.6,
                                                   "transformers_version": "4.36.2"})
        return
    # llava-v1.6-mistral-7b: Mistral-7B-Instruct-v0.2's tokenizer files as LLaVA's training re-saved them, fast
    # tokenizer.json included (the original builder loads this one fast). legacy true and the chat template come
    # from Mistral's release [from memory].
    write_json(out / "tokenizer_config.json", _tokenizer_config_4_36(
        LLAMA_PIECES, "<s>", "</s>", additional_special_tokens=[], chat_template=MISTRAL_CHAT_TEMPLATE, legacy=True,
        padding_side="left"))
    from transformers import LlamaTokenizer

    LlamaTokenizer.from_pretrained(str(out)).backend_tokenizer.save(str(out / "tokenizer.json"))
    write_json(out / "generation_config.json", {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2,
                                               "transformers_version": "4.36.2"})


# -------------------------------------------------------------------------------------------------- Qwen

# Qwen2-VL / Qwen2.5-VL's chat template, verbatim (Qwen2.5-VL-7B-Instruct @ cc59489; the Qwen2-VL one is taken to be
# the same [UNVERIFIED]).
QWEN_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}"
    "{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)

# Qwen2's pre-tokenization split (its tokenizer.json's Split pattern).
QWEN_SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                      r"|\s+(?!\S)|\s+")


def write_qwen_tokenizer(out: Path, model_max_length: int, chat_template: str = QWEN_CHAT_TEMPLATE) -> dict[str, int]:
    """Qwen2's tokenizer files, tiny: a byte-level BPE whose regular tokens come first and whose 14 special tokens
    follow them as added tokens (as ids 151643-151656 follow Qwen2's 151643 regular ones); vocab.json and
    merges.txt hold the regular tokens only. Returns the special tokens' ids."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=tiny_qwen.VOCAB_SIZE - len(tiny_qwen.SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([tiny_qwen._CORPUS] * 4, trainer)
    bpe.model.save(str(out))  # vocab.json + merges.txt
    bpe.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in tiny_qwen.SPECIAL_TOKENS])
    bpe.save(str(out / "tokenizer.json"))
    ids = {token: bpe.token_to_id(token) for token in tiny_qwen.SPECIAL_TOKENS}
    # Qwen2-VL's tokenizer_config [fields UNVERIFIED beyond the class, eos, pad and model_max_length]: no bos, no
    # unk, the chat template beside chat_template.json, padding_side left to the library's default.
    write_json(out / "tokenizer_config.json", {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(i): _added_token(t, special=True) for t, i in ids.items()},
        "additional_special_tokens": list(tiny_qwen.SPECIAL_TOKENS[1:]),
        "bos_token": None, "chat_template": chat_template, "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": model_max_length,
        "pad_token": "<|endoftext|>", "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    })
    (out / "chat_template.json").write_text(json.dumps({"chat_template": chat_template}, indent=2) + "\n")
    return ids


def _qwen_flat_config(family: str, ids: dict[str, int]) -> dict:
    """config.json as released: the text fields at the top level, `vision_config` nested, `rope_scaling` of type
    "mrope" with the section shrunk to the tiny head_dim of 16 (8 frequencies: 2 + 3 + 3)."""
    text = tiny_qwen.tiny_qwen_config(family).text_config
    config = {
        "architectures": ["Qwen2VLForConditionalGeneration" if family == "qwen2_vl" else
                          "Qwen2_5_VLForConditionalGeneration"],
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"], "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "hidden_act": "silu", "hidden_size": text.hidden_size, "initializer_range": 0.02,
        "intermediate_size": text.intermediate_size,
        "max_position_embeddings": 32768 if family == "qwen2_vl" else 128000,
        "max_window_layers": text.num_hidden_layers, "model_type": family,
        "num_attention_heads": text.num_attention_heads, "num_hidden_layers": text.num_hidden_layers,
        "num_key_value_heads": text.num_key_value_heads, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "sliding_window": 32768, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.41.2",  # [UNVERIFIED]
        "use_cache": True, "use_sliding_window": False,
        "rope_scaling": {"type": "mrope", "mrope_section": list(text.rope_parameters["mrope_section"])},
        # Qwen pads its embeddings past the tokenizer (152064 rows for 151665 tokens); 512 does the same here.
        "vocab_size": text.vocab_size,
    }
    vision = tiny_qwen.tiny_qwen_config(family).vision_config
    patches = {"in_chans": 3, "patch_size": vision.patch_size, "spatial_merge_size": vision.spatial_merge_size,
               "spatial_patch_size": vision.patch_size, "temporal_patch_size": vision.temporal_patch_size}
    if family == "qwen2_vl":
        config["vision_config"] = {"depth": vision.depth, "embed_dim": vision.embed_dim, "mlp_ratio": vision.mlp_ratio,
                                   "num_heads": vision.num_heads, "hidden_size": vision.hidden_size, **patches}
    else:
        config["vision_config"] = {
            "depth": vision.depth, "hidden_act": "silu", "hidden_size": vision.hidden_size,
            "intermediate_size": vision.intermediate_size, "num_heads": vision.num_heads,
            "out_hidden_size": vision.out_hidden_size, "window_size": vision.window_size,
            "fullatt_block_indexes": list(vision.fullatt_block_indexes),
            "tokens_per_second": vision.tokens_per_second, **patches}
    return config


def released_qwen_name(name: str) -> str:
    """transformers 5's module name -> the released tensor name (`model.language_model.X` -> `model.X`,
    `model.visual.X` -> `visual.X`)."""
    if name.startswith("model.language_model."):
        return "model." + name.removeprefix("model.language_model.")
    if name.startswith("model.visual."):
        return name.removeprefix("model.")
    return name


def _write_qwen(family: str, out: Path, seed: int) -> None:
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig,
                              Qwen2VLForConditionalGeneration)

    max_length = 32768 if family == "qwen2_vl" else 131072
    ids = write_qwen_tokenizer(out, max_length)
    flat = _qwen_flat_config(family, ids)
    write_json(out / "config.json", flat)
    config_class, model_class = {
        "qwen2_vl": (Qwen2VLConfig, Qwen2VLForConditionalGeneration),
        "qwen2_5_vl": (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration),
    }[family]
    # The model the released config describes, built by transformers' own class from that very file.
    config = config_class.from_pretrained(str(out))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    state = {released_qwen_name(name): t.detach().to(torch.bfloat16) for name, t in model.state_dict().items()}
    write_shards(state, out, 5)
    eos = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    # [UNVERIFIED] Qwen's sampling defaults (temperature 0.01 after Qwen2-VL's PR #22; 0.1 in Qwen2.5-VL).
    write_json(out / "generation_config.json", {
        "bos_token_id": ids["<|endoftext|>"], "pad_token_id": ids["<|endoftext|>"], "do_sample": True,
        "eos_token_id": eos, "repetition_penalty": 1.05, "temperature": 0.01 if family == "qwen2_vl" else 0.1,
        "top_k": 1, "top_p": 0.001, "transformers_version": "4.37.0" if family == "qwen2_vl" else "4.49.0.dev0"})
    processor = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor"}[family]
    pixels = tiny_qwen.IMAGE_PROCESSOR
    write_json(out / "preprocessor_config.json", {
        "min_pixels": pixels["min_pixels"], "max_pixels": pixels["max_pixels"], "patch_size": tiny_qwen.PATCH_SIZE,
        "temporal_patch_size": tiny_qwen.TEMPORAL_PATCH_SIZE, "merge_size": tiny_qwen.MERGE_SIZE,
        "image_mean": pixels["image_mean"], "image_std": pixels["image_std"],
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": processor})


def _qwen3_config(ids: dict[str, int]) -> dict:
    """Qwen3-VL-8B-Instruct's config.json fields (text_config and vision_config nested), at the tiny sizes of
    `llava.model.tiny_qwen`; its interleaved M-RoPE sections shrunk to the tiny head_dim of 16."""
    tiny = tiny_qwen.tiny_qwen_config("qwen3_vl")
    text, vision = tiny.text_config, tiny.vision_config
    rope = text.rope_parameters
    return {
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "image_token_id": ids["<|image_pad|>"], "model_type": "qwen3_vl",
        "text_config": {
            "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": ids["<|endoftext|>"],
            "dtype": "bfloat16", "eos_token_id": ids["<|im_end|>"], "head_dim": text.head_dim, "hidden_act": "silu",
            "hidden_size": text.hidden_size, "initializer_range": 0.02, "intermediate_size": text.intermediate_size,
            "max_position_embeddings": 262144, "model_type": "qwen3_vl_text",
            "num_attention_heads": text.num_attention_heads, "num_hidden_layers": text.num_hidden_layers,
            "num_key_value_heads": text.num_key_value_heads, "rms_norm_eps": 1e-06,
            "rope_scaling": {"mrope_interleaved": True, "mrope_section": list(rope["mrope_section"]),
                             "rope_type": "default"},
            "rope_theta": 5000000, "tie_word_embeddings": False, "use_cache": True,
            "vocab_size": text.vocab_size,  # padded past the tokenizer (151936 rows on the 8B)
        },
        "tie_word_embeddings": False, "transformers_version": "4.57.0.dev0",
        "video_token_id": ids["<|video_pad|>"],
        "vision_config": {
            "deepstack_visual_indexes": list(vision.deepstack_visual_indexes), "depth": vision.depth,
            "hidden_act": "gelu_pytorch_tanh", "hidden_size": vision.hidden_size, "in_channels": 3,
            "initializer_range": 0.02, "intermediate_size": vision.intermediate_size, "model_type": "qwen3_vl",
            "num_heads": vision.num_heads, "num_position_embeddings": vision.num_position_embeddings,
            "out_hidden_size": vision.out_hidden_size, "patch_size": vision.patch_size,
            "spatial_merge_size": vision.spatial_merge_size, "temporal_patch_size": vision.temporal_patch_size,
        },
        "vision_end_token_id": ids["<|vision_end|>"], "vision_start_token_id": ids["<|vision_start|>"],
    }


def _write_qwen3(out: Path, seed: int) -> None:
    """Qwen3-VL-8B-Instruct's files, tiny. Its tensor names are transformers 5's module names."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    ids = write_qwen_tokenizer(out, 262144, tiny_qwen.QWEN3_CHAT_TEMPLATE)
    write_json(out / "config.json", _qwen3_config(ids))
    config = Qwen3VLConfig.from_pretrained(str(out))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3VLForConditionalGeneration(config)
    write_shards({name: t.detach().to(torch.bfloat16) for name, t in model.state_dict().items()}, out, 4)
    # [UNVERIFIED] the sampling defaults; what matters here is that sampling is on (temperature 0 must still be
    # greedy in our commands).
    write_json(out / "generation_config.json", {
        "bos_token_id": ids["<|endoftext|>"], "pad_token_id": ids["<|endoftext|>"], "do_sample": True,
        "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]], "top_k": 20, "top_p": 0.8,
        "repetition_penalty": 1.0, "temperature": 0.7, "transformers_version": "4.56.0"})
    pixels = tiny_qwen.image_processor_config("qwen3_vl")
    common = {"patch_size": pixels["patch_size"], "temporal_patch_size": tiny_qwen.TEMPORAL_PATCH_SIZE,
              "merge_size": tiny_qwen.MERGE_SIZE, "image_mean": pixels["image_mean"], "image_std": pixels["image_std"],
              "processor_class": "Qwen3VLProcessor"}
    # The released bounds are 65536..16777216 pixels per image and 4096..25165824 per video; tiny ones here.
    write_json(out / "preprocessor_config.json", {
        "size": {"longest_edge": pixels["max_pixels"], "shortest_edge": pixels["min_pixels"]}, **common,
        "image_processor_type": "Qwen2VLImageProcessorFast"})
    write_json(out / "video_preprocessor_config.json", {
        "size": {"longest_edge": 4 * pixels["max_pixels"], "shortest_edge": pixels["min_pixels"]}, **common,
        "video_processor_type": "Qwen3VLVideoProcessor", "fps": 2, "min_frames": 4, "max_frames": 768})


# ---------------------------------------------------------------------------------------------- llava-hf


def _write_llava_hf(repo_id: str, out: Path, seed: int) -> None:
    """The tiny original release `repo_id` was made from, converted as the llava-hf one was; the original names its
    tower by hub id, so the tiny look-alike of that tower is handed to the converter directly."""
    from llava.model.llava_hf_convert import convert_checkpoint

    with tempfile.TemporaryDirectory() as work:
        source = build_released_checkpoint(LLAVA_HF_SOURCES[repo_id], Path(work) / "original", seed)
        tower = build_clip_tower(Path(work) / "clip", seed)
        convert_checkpoint(source, out, seed=seed, tower=tower)


# --------------------------------------------------------------------------------------- LLaVA-OneVision

# llava-hf/llava-onevision-qwen2-7b-ov-hf, as transformers' convert_llava_onevision_weights_to_hf.py made it
# (transformers 4.45.0.dev0): Qwen2-7B-Instruct's config and tokenizer with `<image>` and `<video>` added as special
# tokens right after its 151646 tokens (151646, 151647), the vocabulary grown by those two rows from Qwen2's 152064
# and padded to a multiple of 64 (152128), the processor built with num_image_tokens=729 and
# vision_feature_select_strategy "full", the SigLIP so400m tower without its last layer and without its head, and the
# state dict saved float16 under the pre-transformers-5 names (`language_model.model.*`, `language_model.lm_head`,
# `vision_tower.vision_model.*`, `multi_modal_projector.linear_{1,2}`, `image_newline`).
ONEVISION_REPO = "llava-hf/llava-onevision-qwen2-7b-ov-hf"
# The chat template the conversion script sets, verbatim: no system prompt; in each message every image first, then
# every video, then the text, whatever order the content lists them in.
ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}"
    "{{ content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# LlavaOnevisionConfig's default pinpoints, which the release's config and preprocessor config list: (height, width)
# multiples of 384 up to 6 x 6.
ONEVISION_PINPOINTS = [[384 * rows, 384 * cols] for rows in range(1, 7) for cols in range(1, 7)]
# Qwen2-7B-Instruct's special tokens (its whole added vocabulary), then the two the conversion adds.
ONEVISION_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>")
# Qwen2's embedding rows (152064 for its 151646 tokens) in the tiny model: tiny_qwen's 512.
ONEVISION_BASE_VOCAB = tiny_qwen.VOCAB_SIZE


def _write_onevision_tokenizer(out: Path) -> dict[str, int]:
    """Qwen2-7B-Instruct's tokenizer files, tiny, with `<image>` / `<video>` added after its three special tokens, as
    the conversion's `add_tokens(..., special_tokens=True)` places them. The byte-level BPE is the one
    `write_qwen_tokenizer` trains (its vocab.json / merges.txt and pre-tokenizer); only the added tokens differ."""
    from tokenizers import AddedToken, Tokenizer, models

    write_qwen_tokenizer(out, 32768)
    trained = Tokenizer.from_file(str(out / "tokenizer.json"))
    tokenizer = Tokenizer(models.BPE.from_file(str(out / "vocab.json"), str(out / "merges.txt")))
    tokenizer.normalizer, tokenizer.pre_tokenizer, tokenizer.decoder = (trained.normalizer, trained.pre_tokenizer,
                                                                        trained.decoder)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ONEVISION_SPECIAL_TOKENS])
    tokenizer.save(str(out / "tokenizer.json"))
    (out / "chat_template.json").unlink()  # Qwen2-VL's; the processor's own is written below
    ids = {token: tokenizer.token_to_id(token) for token in ONEVISION_SPECIAL_TOKENS}
    # [UNVERIFIED beyond the added tokens, eos, pad and the class] Qwen2-7B-Instruct's tokenizer_config as
    # save_pretrained re-wrote it in 4.45: its chat template (with the default system prompt) kept there; the
    # processor's template (no system prompt) is chat_template.json's and is the one the processor applies.
    qwen2_template = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                      "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
                      "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    write_json(out / "tokenizer_config.json", {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(i): _added_token(t, special=True) for t, i in ids.items()},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"], "bos_token": None,
        "chat_template": qwen2_template, "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>",
        "errors": "replace", "model_max_length": 32768, "pad_token": "<|endoftext|>",
        "processor_class": "LlavaOnevisionProcessor", "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    })
    write_json(out / "special_tokens_map.json", {  # [UNVERIFIED]
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "eos_token": _added_token("<|im_end|>"), "pad_token": _added_token("<|endoftext|>")})
    write_json(out / "added_tokens.json", {t: i for t, i in ids.items()})
    return ids


def _onevision_config(ids: dict[str, int]) -> dict:
    """config.json as released (to_diff_dict of the conversion's config), sizes shrunk: the text model tiny_qwen's
    (GQA 4 / 2, 4 layers of width 64), the tower a 2-layer SigLIP of width 32 at the real 384 px / 14 px patches."""
    text = tiny_qwen.tiny_qwen_config("qwen2_vl").text_config
    vocab = -(-(ONEVISION_BASE_VOCAB + 2) // 64) * 64  # the conversion's resize_token_embeddings(+2, pad 64)
    return {
        "architectures": ["LlavaOnevisionForConditionalGeneration"],
        "ignore_index": -100,  # [UNVERIFIED] LlavaOnevisionConfig's 4.45 default, saved by to_diff_dict
        "image_grid_pinpoints": ONEVISION_PINPOINTS,
        "image_token_index": ids["<image>"],
        "model_type": "llava_onevision",
        "projector_hidden_act": "gelu",
        "text_config": {
            "_name_or_path": "Qwen/Qwen2-7B-Instruct", "architectures": ["Qwen2ForCausalLM"],
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "hidden_size": text.hidden_size, "intermediate_size": text.intermediate_size,
            "max_position_embeddings": 32768, "max_window_layers": text.num_hidden_layers, "model_type": "qwen2",
            "num_attention_heads": text.num_attention_heads, "num_hidden_layers": text.num_hidden_layers,
            "num_key_value_heads": text.num_key_value_heads, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
            # Qwen2-7B-Instruct's: a window size on record, use_sliding_window false [UNVERIFIED: 131072].
            "sliding_window": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
            "use_sliding_window": False, "vocab_size": vocab,
        },
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "transformers_version": "4.45.0.dev0",  # [UNVERIFIED]
        "use_image_newline_parameter": True,  # the conversion script passes it
        "video_token_index": ids["<video>"],
        "vision_aspect_ratio": "anyres_max_9",
        "vision_config": {
            "hidden_size": 32, "image_size": 384, "intermediate_size": 64, "model_type": "siglip_vision_model",
            "num_attention_heads": 2, "num_hidden_layers": 2, "patch_size": 14, "vision_use_head": False,
        },
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "full",
    }


def released_onevision_name(name: str) -> str:
    """transformers 5's module name -> the name the 4.45 conversion saved it under."""
    if name == "lm_head.weight":
        return "language_model.lm_head.weight"
    if name.startswith("model.language_model."):
        return "language_model.model." + name.removeprefix("model.language_model.")
    if name.startswith("model.vision_tower."):  # 4.45 held the SiglipVisionModel, its transformer under vision_model
        return "vision_tower.vision_model." + name.removeprefix("model.vision_tower.")
    return name.removeprefix("model.")  # multi_modal_projector.*, image_newline


def _write_onevision(out: Path, seed: int) -> None:
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    ids = _write_onevision_tokenizer(out)
    write_json(out / "config.json", _onevision_config(ids))
    config = LlavaOnevisionConfig.from_pretrained(str(out))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaOnevisionForConditionalGeneration(config)
    state = {released_onevision_name(name): t.detach().to(torch.float16) for name, t in model.state_dict().items()}
    write_shards(state, out, 4)  # [UNVERIFIED] four shards
    write_json(out / "generation_config.json", {  # [UNVERIFIED] the model config's ids, as save_pretrained derives
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
        "transformers_version": "4.45.0.dev0"})
    (out / "chat_template.json").write_text(json.dumps({"chat_template": ONEVISION_CHAT_TEMPLATE}, indent=2) + "\n")
    # [UNVERIFIED: the exact key set] what LlavaOnevisionProcessor(num_image_tokens=729,
    # vision_feature_select_strategy="full") saved in 4.45, with the tiny tower's 27 x 27 = 729 patches.
    side = config.vision_config.image_size // config.vision_config.patch_size
    write_json(out / "processor_config.json", {
        "image_token": "<image>", "num_image_tokens": side * side, "processor_class": "LlavaOnevisionProcessor",
        "video_token": "<video>", "vision_feature_select_strategy": "full"})
    # The image processor loaded from google/siglip-so400m-patch14-384's preprocessor config (mean / std 0.5,
    # bicubic, 384 x 384), with LlavaOnevisionImageProcessor's pinpoints and padding [field set UNVERIFIED].
    write_json(out / "preprocessor_config.json", {
        "do_convert_rgb": True, "do_normalize": True, "do_pad": True, "do_rescale": True, "do_resize": True,
        "image_grid_pinpoints": ONEVISION_PINPOINTS, "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "LlavaOnevisionImageProcessor", "image_std": [0.5, 0.5, 0.5],
        "processor_class": "LlavaOnevisionProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
        "size": {"height": 384, "width": 384}})


# ------------------------------------------------------------------------------------------------ entry


def build_released_checkpoint(repo_id: str, out_dir, seed: int = 0) -> Path:
    """Write a tiny checkpoint of `repo_id` (a key of `RELEASED_LAYOUTS`) into `out_dir`; returns its path."""
    if repo_id not in RELEASED_LAYOUTS:
        raise KeyError(f"no released layout for {repo_id!r}; known: {', '.join(RELEASED_LAYOUTS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    family = RELEASED_LAYOUTS[repo_id].family
    if family == "qwen3_vl":
        _write_qwen3(out, seed)
    elif family.startswith("qwen"):
        _write_qwen(family, out, seed)
    elif family == "llava_hf":
        _write_llava_hf(repo_id, out, seed)
    elif family == "llava_onevision":
        _write_onevision(out, seed)
    else:
        _write_llava(repo_id, out, seed)
    return out


# --------------------------------------------------------------------------------------------------- CLI


def default_hub_cache(out: Path) -> Path:
    """Where the CLI puts the CLIP look-alike a LLaVA layout's config names: beside the checkpoint, so that a
    user's own hub cache never receives a fake `openai/clip-vit-large-patch14-336`."""
    return out.parent / f"{out.name}-hub-cache"


def needs_clip_tower(repo_id: str) -> bool:
    """The original LLaVA layouts name their vision tower by hub id (the 1.6 ones read its config there too); the
    llava-hf ones carry it."""
    family = RELEASED_LAYOUTS[repo_id].family
    return not family.startswith("qwen") and family not in ("llava_hf", "llava_onevision")


def write_for_trying(repo_id: str, out: Path, seed: int, hub_cache: Path | None) -> list[str]:
    """Write the tiny `repo_id` into `out` (and, for LLaVA, the tower into `hub_cache`); the lines telling the user
    how to run it."""
    build_released_checkpoint(repo_id, out, seed)
    lines = [f"wrote a tiny {repo_id} (random weights, seed {seed}, the released files' layout) to {out}"]
    if needs_clip_tower(repo_id):
        cache = hub_cache or default_hub_cache(out)
        with tempfile.TemporaryDirectory() as tower:
            install_in_hub_cache(CLIP_TOWER_ID, build_clip_tower(Path(tower) / "clip", seed), cache)
        lines.append(f"its config names its vision tower {CLIP_TOWER_ID}: a tiny look-alike is in the hub cache "
                     f"{cache}; run with HF_HUB_CACHE={cache} HF_HUB_OFFLINE=1")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a tiny checkpoint (random weights) in the on-disk layout of a released one, to try the "
                    "commands without downloading weights; its answers are meaningless.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="list the released checkpoints there are layouts of")
    action.add_argument("--repo", choices=list(RELEASED_LAYOUTS), metavar="REPO_ID",
                        help="the released checkpoint to imitate (see --list)")
    parser.add_argument("--out", type=Path, help="the checkpoint folder to write (with --repo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hub-cache", type=Path, default=None,
                        help="LLaVA layouts: the hub cache to put the tiny CLIP tower in (default: OUT-hub-cache)")
    args = parser.parse_args(argv)
    if args.list:
        for repo_id, layout in RELEASED_LAYOUTS.items():
            print(f"{repo_id:35} {layout.family:13} {layout.notes}")
        return 0
    if args.out is None:
        parser.error("--repo needs --out, the checkpoint folder to write")
    for line in write_for_trying(args.repo, args.out, args.seed, args.hub_cache):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
