"""Original-layout LLaVA-1.5 / 1.6 checkpoint -> the Hugging Face "llava-hf" layout.

The llava-hf releases (llava-hf/llava-1.5-7b-hf, llava-hf/llava-v1.6-vicuna-7b-hf, ...) were made from the
original checkpoints by transformers' conversion scripts (`models/llava/convert_llava_weights_to_hf.py`,
`models/llava_next/convert_llava_next_weights_to_hf.py`); this converter follows their rules, so that the same
weights can be run in both layouts:

- weights under the hub's (pre-transformers-5) names: `language_model.model.*`, `language_model.lm_head.weight`,
  `vision_tower.vision_model.*`, `multi_modal_projector.linear_1 / linear_2`, and for LLaVA-NeXT `image_newline`
  (LLaVA-1.5's checkpoints carry none that is used: dropped, as the script drops it); `*.inv_freq` dropped;
- the tokenizer gains `<image>` (the next id after the original vocabulary, 32000 in the releases) and the pad
  token `<pad>` (32001); the embeddings and lm_head grow by those two rows and are padded to a multiple of 64
  (32064), the new rows drawn around the mean of the old ones as the scripts draw them (seeded here);
- `vision_feature_layer` = `mm_vision_select_layer`, `vision_feature_select_strategy` "default" for
  `mm_vision_select_feature: patch` ("full" for "cls_patch"), projector activation "gelu";
- LLaVA-NeXT: `image_grid_pinpoints` copied from the original config as the release has it (`hf_pinpoints`: read
  as (height, width) by transformers, (width, height) by LLaVA), and
  `use_image_newline_parameter`;
- the files in the releases' form (config.json's field set, the tokenizer, processor and chat-template files,
  float16 shards split as released): see the constants below for where each fact was read.

The vision tower is the one the checkpoint carries (LLaVA-1.6's fine-tuned `model.vision_tower.vision_tower.*`)
or else the CLIP tower `mm_vision_tower` names (a directory, relative to the checkpoint or absolute, or a hub id
in the local cache). A config `DART_config` moves to the top-level config, where the pruning classes read it.

CLI: `python -m llava.model.llava_hf_convert --src DIR --out DIR [--seed N]`. Tiny llava-hf releases:
`python -m llava.model.released_layouts --repo llava-hf/llava-1.5-7b-hf --out DIR`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import torch
from transformers import AddedToken, AutoConfig, CLIPVisionConfig

from llava.model.released_layouts import read_checkpoint_tensors, write_json, write_shards
from llava.model.strict_loading import CheckpointError, check_llava_config, load_declared_tokenizer

IMAGE_TOKEN = "<image>"
PAD_TOKEN = "<pad>"
EMBEDDING_MULTIPLE = 64  # the scripts' `resize_token_embeddings(vocab + 2, pad_to_multiple_of=64)`
TEXT_MODEL_TYPES = {"llava": "llama", "llava_llama": "llama", "llava_mistral": "mistral"}
# Fields of an original LLaVA config that describe its multimodal parts or its training, not its language model.
LLAVA_ONLY_FIELDS = (
    "architectures", "model_type", "_name_or_path", "transformers_version", "DART_config", "text_length",
    "image_aspect_ratio", "image_grid_pinpoints", "image_crop_resolution", "image_split_resolution",
    "tokenizer_model_max_length", "tokenizer_padding_side", "use_mm_proj", "mm_projector_lr", "mm_vision_tower_lr",
    "tune_mm_mlp_adapter", "freeze_mm_mlp_adapter", "tune_mm_vision_resampler", "freeze_mm_vision_resampler",
    "unfreeze_mm_vision_tower", "mm_resampler_type", "max_length", "ignore_index", "image_token_index",
)
# The chat templates of the releases' chat_template.json, verbatim. LLaVA-1.5 (and LLaVA-1.6-Vicuna, which ships the
# same file): transformers' tests/models/llava/test_processing_llava.py (its tiny processor was made from
# llava-hf/llava-1.5-7b-hf) and openvino.genai src/cpp/src/tokenizer.cpp ("llava-1.5, llava-v1.6-vicuna
# (chat_template.json)").
VICUNA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
# LLaVA-1.6-Mistral, as llava-hf/llava-v1.6-mistral-7b-hf's processor loads it today (printed in full in a public
# walkthrough of that repo; the same text in a reward-model script's copy). An older revision ended assistant turns
# with '<\\s> ' (openvino.genai's copy); the current '</s> ' is used.
MISTRAL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<<SYS>>\n' + message['content'][0]['text'] "
    "+ '\n<</SYS>>\n\n' }}{% elif message['role'] == 'user' %}{{ '[INST] ' }}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all text next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}{{' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'][0]['text'] + '</s> '}}{% else %}"
    "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
# The released config.json files (sizes aside). llava-1.5-7b-hf: the same file quoted verbatim in several public
# copies (e.g. llm-awq issue #210, lite_llama's tests). llava-v1.6-mistral-7b-hf: TensorRT-LLM's
# tests/unittest/_torch/modeling/test_modeling_llava_next.py. llava-v1.6-vicuna-7b-hf: no copy found; taken to be
# the Mistral one's top level with vicuna's text_config as llava-1.5-7b-hf has it [UNVERIFIED].
TOP_FIELDS_1_5 = {"ignore_index": -100, "projector_hidden_act": "gelu", "tie_word_embeddings": False,
                  "torch_dtype": "float16", "transformers_version": "4.36.0.dev0"}
# No tie_word_embeddings in the 1.6 copy. pad_token_id is not in that copy either, but transformers' conversion
# script sets `config.pad_token_id = 32001`: kept, so that batches pad with <pad> as in 1.5 [UNVERIFIED].
TOP_FIELDS_1_6 = {"ignore_index": -100, "projector_hidden_act": "gelu", "torch_dtype": "float16",
                  "transformers_version": "4.39.0.dev0", "use_image_newline_parameter": True}
TEXT_FIELDS = {
    "llama": {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "torch_dtype": "float16"},
    "mistral": {"_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2", "architectures": ["MistralForCausalLM"],
                "model_type": "mistral", "torch_dtype": "bfloat16"},
}
# Text fields the releases carry with their values (the rest are the library's defaults, so not written); sizes are
# written too, since the tiny ones are not the defaults.
TEXT_VALUE_FIELDS = {"llama": ("max_position_embeddings", "rms_norm_eps"),
                     "mistral": ("max_position_embeddings", "rms_norm_eps", "rope_theta", "sliding_window")}
TEXT_SIZE_FIELDS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
                    "num_key_value_heads")
# vision_config as released: these keys only; `vocab_size` 32000 is a leftover of the CLIP config it came from.
VISION_FIELDS = ("hidden_size", "image_size", "intermediate_size", "model_type", "num_attention_heads",
                 "num_hidden_layers", "patch_size", "projection_dim")
RELEASED_DTYPE = torch.float16  # both scripts convert under torch.set_default_dtype(torch.float16)


def converted_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    """The releases' float16 for a half-precision original; a float32 one (our own tiny and trained checkpoints)
    stays float32, so that both layouts compute the same numbers."""
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    return torch.float32 if dtypes == {torch.float32} else RELEASED_DTYPE
# Shards as save_pretrained split the 7B releases (5 GB each): 3 for the LLaMA-7B ones, 4 for Mistral-7B
# (llava-hf/llava-v1.6-mistral-7b-hf's model-0000N-of-00004) [the LLaMA count UNVERIFIED].
RELEASED_SHARDS = {"llama": 3, "mistral": 4}


# -- reading the original checkpoint ----------------------------------------------------------------------


def read_original_config(src: Path) -> dict:
    """The original config.json, refused with a clear error unless it is an original LLaVA checkpoint's."""
    config_file = src / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{src}: no config.json: not a model checkpoint")
    raw = json.loads(config_file.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("model_type") not in TEXT_MODEL_TYPES or "mm_vision_tower" not in raw:
        kind = raw.get("model_type") if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(f"{config_file}: not an original LLaVA checkpoint (model_type {kind!r}, no "
                              "mm_vision_tower): the converter reads the original LLaVA-1.5 / 1.6 layout "
                              "(liuhaotian/llava-v1.5-7b, llava-v1.6-*); a llava-hf checkpoint needs no conversion")
    check_llava_config(raw, str(config_file))
    _check_convertible(raw, config_file)
    return raw


def _check_convertible(raw: dict, config_file: Path) -> None:
    """The llava-hf classes have one projector (Linear, GELU, Linear), no image start/end tokens, and for
    LLaVA-NeXT only the released merge (spatial_unpad with a row separator)."""
    problems = []
    if raw.get("mm_projector_type", "linear") != "mlp2x_gelu":
        problems.append(f"mm_projector_type {raw.get('mm_projector_type')!r} (llava-hf has mlp2x_gelu only)")
    if raw.get("mm_use_im_start_end") or raw.get("mm_use_im_patch_token"):
        problems.append("mm_use_im_start_end / mm_use_im_patch_token (llava-hf has no such tokens)")
    if is_llava_next(raw) and raw.get("mm_patch_merge_type") != "spatial_unpad":
        problems.append(f"image_aspect_ratio anyres with mm_patch_merge_type {raw.get('mm_patch_merge_type')!r} "
                        "(LLaVA-NeXT in llava-hf merges as spatial_unpad)")
    if not is_llava_next(raw) and raw.get("image_aspect_ratio", "pad") not in ("pad", "square", None):
        problems.append(f"image_aspect_ratio {raw.get('image_aspect_ratio')!r}")
    if raw.get("mm_vision_select_feature", "patch") not in ("patch", "cls_patch"):
        problems.append(f"mm_vision_select_feature {raw.get('mm_vision_select_feature')!r}")
    if problems:
        raise CheckpointError(f"{config_file}: cannot be expressed in the llava-hf layout: " + "; ".join(problems))


def is_llava_next(raw: dict) -> bool:
    return str(raw.get("image_aspect_ratio", "pad")).startswith("anyres")


def tower_dir(src: Path, raw: dict) -> Path:
    """The directory of the CLIP tower `mm_vision_tower` names: relative to the checkpoint, absolute, or a hub id
    (from the local cache, or downloaded)."""
    name = raw["mm_vision_tower"]
    for candidate in (src / name, Path(name)):
        if candidate.is_dir():
            return candidate
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "*.bin"]))
    except Exception as exc:  # offline without a cached copy, unknown repo: the same answer for the user
        raise CheckpointError(f"{src}: the vision tower {name!r} is neither a directory nor a reachable hub repo "
                              f"({exc})") from None


def vision_config(tower: Path) -> CLIPVisionConfig:
    config = AutoConfig.from_pretrained(tower)
    return getattr(config, "vision_config", config)


def vision_weights(tower: Path, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tower's `vision_model.*` tensors: the checkpoint's own (LLaVA-1.6 fine-tunes it) or the named tower's."""
    inside = "model.vision_tower.vision_tower."
    own = {key[len(inside):]: value for key, value in state.items() if key.startswith(inside)}
    if not own:
        own = read_checkpoint_tensors(tower)
    return {key: value for key, value in own.items()
            if key.startswith("vision_model.") and not key.endswith("position_ids")}


# -- weights ----------------------------------------------------------------------------------------------


def hub_key(key: str) -> str | None:
    """The llava-hf hub name of an original language-model / projector tensor (None: not carried over)."""
    if key.endswith(".inv_freq") or key.startswith("model.vision_tower."):
        return None
    if key == "model.image_newline":
        return "image_newline"
    if key.startswith("model.mm_projector."):
        index, _, rest = key[len("model.mm_projector."):].partition(".")
        return f"multi_modal_projector.linear_{int(index) // 2 + 1}.{rest}"
    if key == "lm_head.weight":
        return "language_model.lm_head.weight"
    if key.startswith("model."):
        return "language_model." + key
    raise CheckpointError(f"unexpected tensor {key!r} in an original LLaVA checkpoint")


def padded_vocab(rows: int) -> int:
    return math.ceil((rows + 2) / EMBEDDING_MULTIPLE) * EMBEDDING_MULTIPLE


def grown(matrix: torch.Tensor, rows: int, generator: torch.Generator) -> torch.Tensor:
    """`matrix` with rows appended up to `rows`, drawn from N(mean, 1e-5 * covariance) of its rows, as the
    conversion scripts initialise the new embedding and lm_head rows."""
    old = matrix.double()
    mean = old.mean(dim=0)
    centred = old - mean
    covariance = 1e-5 * centred.T @ centred / old.shape[0]
    # A tiny jitter keeps the Cholesky factor defined when the covariance is singular (more columns than rows).
    factor = torch.linalg.cholesky(covariance + 1e-12 * torch.eye(old.shape[1], dtype=old.dtype))
    noise = torch.randn(rows - old.shape[0], old.shape[1], generator=generator, dtype=old.dtype)
    return torch.cat([old, mean + noise @ factor.T]).to(matrix.dtype)


def hub_state(src: Path, raw: dict, tower: Path, seed: int) -> tuple[dict[str, torch.Tensor], int]:
    """The converted tensors under their hub names, in the releases' float16, and the original vocabulary size."""
    state = read_checkpoint_tensors(src)
    if not state:
        raise CheckpointError(f"{src}: no weight files (model*.safetensors / pytorch_model*.bin)")
    converted = {}
    for key, value in state.items():
        name = hub_key(key)
        if name is None or (name == "image_newline" and not is_llava_next(raw)):
            continue
        converted[name] = value
    if "language_model.lm_head.weight" not in converted:  # a tied checkpoint saves no lm_head
        converted["language_model.lm_head.weight"] = converted["language_model.model.embed_tokens.weight"].clone()
    if is_llava_next(raw) and "image_newline" not in converted:
        raise CheckpointError(f"{src}: a LLaVA-1.6 (spatial_unpad) checkpoint without model.image_newline")
    vocab = converted["language_model.model.embed_tokens.weight"].shape[0]
    generator = torch.Generator().manual_seed(seed)
    for name in ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight"):
        converted[name] = grown(converted[name], padded_vocab(vocab), generator)
    converted.update({f"vision_tower.{key}": value for key, value in vision_weights(tower, state).items()})
    dtype = converted_dtype(state)
    return {name: value.to(dtype) for name, value in converted.items()}, vocab


# -- config, tokenizer, processor ---------------------------------------------------------------------------


def text_model_type(raw: dict) -> str:
    return TEXT_MODEL_TYPES[raw["model_type"]]


def text_config_json(raw: dict, vocab_size: int) -> dict:
    """text_config as the releases write it: the base model's name and class, the fields they carry, the sizes."""
    kind = text_model_type(raw)
    fields = dict(TEXT_FIELDS[kind], vocab_size=vocab_size)
    for key in TEXT_VALUE_FIELDS[kind] + TEXT_SIZE_FIELDS:
        if key in raw:
            fields[key] = raw[key]
    fields.setdefault("num_key_value_heads", raw["num_attention_heads"])
    if "rope_theta" in raw and kind == "llama" and raw["rope_theta"] != 10000.0:  # not vicuna's: keep it
        fields["rope_theta"] = raw["rope_theta"]
    return dict(sorted(fields.items()))


def vision_config_json(vision: CLIPVisionConfig) -> dict:
    fields = {key: getattr(vision, key) for key in VISION_FIELDS}
    fields.update(model_type="clip_vision_model", vocab_size=32000)
    return fields


def config_json(raw: dict, vision: CLIPVisionConfig, vocab: int) -> dict:
    """config.json of the converted checkpoint, in the releases' form (see TOP_FIELDS_1_5 / TOP_FIELDS_1_6)."""
    next_ = is_llava_next(raw)
    config = dict(TOP_FIELDS_1_6 if next_ else TOP_FIELDS_1_5)
    config.update(
        architectures=["LlavaNextForConditionalGeneration" if next_ else "LlavaForConditionalGeneration"],
        model_type="llava_next" if next_ else "llava", image_token_index=vocab, pad_token_id=vocab + 1,
        text_config=text_config_json(raw, padded_vocab(vocab)), vision_config=vision_config_json(vision),
        vision_feature_layer=raw.get("mm_vision_select_layer", -2),
        vision_feature_select_strategy="default" if raw.get("mm_vision_select_feature", "patch") == "patch" else "full",
        vocab_size=padded_vocab(vocab),
    )
    if next_:
        from llava.mm_utils import _parse_grid_pinpoints

        config["image_grid_pinpoints"] = hf_pinpoints(_parse_grid_pinpoints(raw["image_grid_pinpoints"]))
    if raw.get("DART_config") is not None:  # the pruning classes read it from the top-level config
        config["DART_config"] = raw["DART_config"]
    return dict(sorted(config.items()))


def hf_pinpoints(original: list) -> list[list[int]]:
    """The original's pairs as they are, as transformers' conversion copies them ([[336, 672], [672, 336], ...]).
    LLaVA reads each pair as (width, height), transformers as (height, width): the set is the same (it is
    symmetric), but for an image smaller than every grid the list order breaks the 336x672 / 672x336 tie, and the
    released llava-hf models pick the other grid than LLaVA does (docs/Checkpoints.md). Written as released."""
    return [list(pair) for pair in original]


def tokenizer_config_json(raw: dict, vocab: int, base: dict) -> dict:
    """tokenizer_config.json as the conversion scripts saved the base model's fast tokenizer with <image> and <pad>
    added (ids 32000 / 32001 in the releases: config.json's image_token_index / pad_token_id). Field set: a
    transformers 4.36-era LlamaTokenizerFast save [UNVERIFIED beyond the classes, tokens and ids]; Mistral's pads on
    the left as llava-hf/llava-v1.6-mistral-7b-hf's tokenizer does."""
    added = {str(i): _added(token) for i, token in sorted(base.items())}
    added.update({str(vocab): _added(IMAGE_TOKEN), str(vocab + 1): _added(PAD_TOKEN)})
    mistral = text_model_type(raw) == "mistral"
    return {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added, "bos_token": base[1],
        "clean_up_tokenization_spaces": False, "eos_token": base[2], "legacy": mistral,
        "model_max_length": 1000000000000000019884624838656 if mistral else 4096, "pad_token": PAD_TOKEN,
        "padding_side": "left" if mistral else "right",
        "processor_class": "LlavaNextProcessor" if is_llava_next(raw) else "LlavaProcessor", "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer", "unk_token": base[0], "use_default_system_prompt": False,
    }


def _added(token: str) -> dict:
    return {"content": token, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True}


def write_tokenizer(src: Path, out: Path, raw: dict, vocab: int) -> None:
    """The original tokenizer with `<image>` and `<pad>` added as the scripts add them (their ids must be the rows
    the embeddings grew by), saved in the releases' files: tokenizer.model, tokenizer.json, tokenizer_config.json,
    special_tokens_map.json, added_tokens.json."""
    from llava.model.builder import checkpoint_file

    tokenizer = load_declared_tokenizer(str(src), checkpoint_file)
    if len(tokenizer) != vocab:
        raise CheckpointError(f"{src}: the tokenizer has {len(tokenizer)} tokens but the embeddings {vocab} rows: "
                              f"{IMAGE_TOKEN} and {PAD_TOKEN} would not get the ids the converted weights give them")
    tokenizer.add_tokens(AddedToken(IMAGE_TOKEN, special=True, normalized=False), special_tokens=True)
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    if tokenizer.convert_tokens_to_ids([IMAGE_TOKEN, PAD_TOKEN]) != [vocab, vocab + 1]:
        raise CheckpointError(f"{src}: {IMAGE_TOKEN} / {PAD_TOKEN} did not get ids {vocab} / {vocab + 1}")
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    if (src / "tokenizer.model").is_file():
        shutil.copyfile(src / "tokenizer.model", out / "tokenizer.model")
    base = {i: tokenizer.convert_ids_to_tokens(i) for i in range(3)}  # <unk>, <s>, </s>
    write_json(out / "tokenizer_config.json", tokenizer_config_json(raw, vocab, base))
    write_json(out / "special_tokens_map.json", {
        "bos_token": _plain(base[1]), "eos_token": _plain(base[2]), "pad_token": _plain(PAD_TOKEN),
        "unk_token": _plain(base[0])})
    write_json(out / "added_tokens.json", {IMAGE_TOKEN: vocab, PAD_TOKEN: vocab + 1})


def _plain(token: str) -> dict:
    return {"content": token, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}


def preprocessor_config(tower: Path, raw: dict, config: dict) -> dict:
    """preprocessor_config.json: the tower's CLIP settings as the scripts re-saved them (dict sizes, no
    feature_extractor_type). LLaVA-1.5: a CLIPImageProcessor [field set UNVERIFIED: as a CLIPImageProcessor of that
    era saves itself]; LLaVA-1.6: llava-hf/llava-v1.6-mistral-7b-hf's file (a public walkthrough prints it, a
    reward-model script copies it), `aspect_ratio_setting` "anyres" and `do_pad` included."""
    tower_file = tower / "preprocessor_config.json"
    old = json.loads(tower_file.read_text(encoding="utf-8")) if tower_file.is_file() else {}
    size, crop = _edge(old.get("size", 336), "shortest_edge"), old.get("crop_size", 336)
    settings = {
        "crop_size": crop if isinstance(crop, dict) else {"height": crop, "width": crop},
        "do_center_crop": old.get("do_center_crop", True), "do_convert_rgb": True,
        "do_normalize": old.get("do_normalize", True), "do_rescale": True, "do_resize": old.get("do_resize", True),
        "image_mean": old.get("image_mean"), "image_processor_type": "CLIPImageProcessor",
        "image_std": old.get("image_std"), "processor_class": "LlavaProcessor", "resample": old.get("resample", 3),
        "rescale_factor": 0.00392156862745098, "size": size,
    }
    if is_llava_next(raw):
        settings.update(aspect_ratio_setting="anyres", do_pad=True, image_grid_pinpoints=config["image_grid_pinpoints"],
                        image_processor_type="LlavaNextImageProcessor", processor_class="LlavaNextProcessor")
    return dict(sorted(settings.items()))


def _edge(size, key: str) -> dict:
    return size if isinstance(size, dict) else {key: size}


def processor_config(config: dict) -> dict:
    """processor_config.json; num_additional_image_tokens 1 is the hub file's (transformers' llava processor test:
    "must match processor_config.json from the Hub repo"), the rest as the processors load them."""
    processor = "LlavaNextProcessor" if config["model_type"] == "llava_next" else "LlavaProcessor"
    return {"image_token": IMAGE_TOKEN, "num_additional_image_tokens": 1,
            "patch_size": config["vision_config"]["patch_size"], "processor_class": processor,
            "vision_feature_select_strategy": config["vision_feature_select_strategy"]}


def generation_config(config: dict) -> dict:
    """As save_pretrained derives it from the model config [UNVERIFIED]: the original's sampling defaults (vicuna
    1.6's temperature 0.9) are not carried over."""
    text = config["text_config"]
    return {"_from_model_config": True, "bos_token_id": text.get("bos_token_id", 1),
            "eos_token_id": text.get("eos_token_id", 2), "pad_token_id": config["pad_token_id"],
            "transformers_version": config["transformers_version"]}


def chat_template(raw: dict) -> str:
    return MISTRAL_CHAT_TEMPLATE if text_model_type(raw) == "mistral" else VICUNA_CHAT_TEMPLATE


# -- the whole checkpoint ---------------------------------------------------------------------------------


def convert_checkpoint(src, out, seed: int = 0, num_shards: int | None = None, tower=None) -> Path:
    """Write the llava-hf layout of the original LLaVA checkpoint `src` into `out` (created); returns `out`.
    `tower`: the CLIP tower's directory, instead of resolving `mm_vision_tower`; `num_shards`: the release's by
    default."""
    src, out = Path(src), Path(out)
    raw = read_original_config(src)
    tower = Path(tower) if tower is not None else tower_dir(src, raw)
    state, vocab = hub_state(src, raw, tower, seed)
    config = config_json(raw, vision_config(tower), vocab)
    if state["language_model.lm_head.weight"].dtype == torch.float32:
        config["torch_dtype"] = "float32"
    out.mkdir(parents=True, exist_ok=True)
    write_tokenizer(src, out, raw, vocab)
    write_json(out / "config.json", config)
    shards = num_shards or RELEASED_SHARDS[text_model_type(raw)]
    write_shards(state, out, min(shards, len(state)))
    write_json(out / "generation_config.json", generation_config(config))
    write_json(out / "preprocessor_config.json", preprocessor_config(tower, raw, config))
    write_json(out / "processor_config.json", processor_config(config))
    write_json(out / "chat_template.json", {"chat_template": chat_template(raw)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert an original LLaVA-1.5 / 1.6 checkpoint to the llava-hf layout.")
    parser.add_argument("--src", required=True, type=Path, help="original LLaVA checkpoint directory")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="seed of the new <image> / <pad> embedding rows")
    args = parser.parse_args(argv)
    if not args.src.is_dir():
        parser.error(f"--src {args.src} is not a directory")
    convert_checkpoint(args.src, args.out, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
