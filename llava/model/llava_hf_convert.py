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
- LLaVA-NeXT: `image_grid_pinpoints` from the original config, each (width, height) pair turned into the
  (height, width) pair transformers reads (the released lists are symmetric, so the scripts' copy of the
  image processor's list is the same set), and `use_image_newline_parameter`.

The vision tower is the one the checkpoint carries (LLaVA-1.6's fine-tuned `model.vision_tower.vision_tower.*`)
or else the CLIP tower `mm_vision_tower` names (a directory, relative to the checkpoint or absolute, or a hub id
in the local cache). A config `DART_config` moves to the top-level config, where the pruning classes read it.

CLI: `python -m llava.model.llava_hf_convert --src DIR --out DIR [--seed N]`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import torch
from transformers import AddedToken, AutoConfig, CLIPVisionConfig, LlavaConfig, LlavaNextConfig

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
# The chat template the llava-hf processors ship ("USER: <image>\n... ASSISTANT:"), images before the text of a
# turn [from memory of llava-hf/llava-1.5-7b-hf's chat_template.json].
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}"
    "{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


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


def vision_config(src: Path, raw: dict) -> CLIPVisionConfig:
    config = AutoConfig.from_pretrained(tower_dir(src, raw))
    return getattr(config, "vision_config", config)


def vision_weights(src: Path, raw: dict, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tower's `vision_model.*` tensors: the checkpoint's own (LLaVA-1.6 fine-tunes it) or the named tower's."""
    inside = "model.vision_tower.vision_tower."
    own = {key[len(inside):]: value for key, value in state.items() if key.startswith(inside)}
    if not own:
        own = read_checkpoint_tensors(tower_dir(src, raw))
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


def hub_state(src: Path, raw: dict, seed: int) -> tuple[dict[str, torch.Tensor], int]:
    """The converted tensors under their hub names, and the original vocabulary size."""
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
    dtype = converted["language_model.model.embed_tokens.weight"].dtype
    converted.update({f"vision_tower.{key}": value.to(dtype) for key, value in vision_weights(src, raw, state).items()})
    return converted, vocab


# -- config, tokenizer, processor ---------------------------------------------------------------------------


def text_config(raw: dict, vocab_size: int):
    fields = {key: value for key, value in raw.items() if key not in LLAVA_ONLY_FIELDS and not key.startswith("mm_")}
    fields.update(vocab_size=vocab_size)
    if fields.get("rope_scaling", 0) is None:
        del fields["rope_scaling"]
    return AutoConfig.for_model(TEXT_MODEL_TYPES[raw["model_type"]], **fields)


def hf_config(raw: dict, vision: CLIPVisionConfig, vocab: int):
    """The LlavaConfig / LlavaNextConfig of the converted checkpoint."""
    common = dict(
        text_config=text_config(raw, padded_vocab(vocab)).to_dict(), vision_config=vision.to_dict(),
        image_token_index=vocab, projector_hidden_act="gelu", tie_word_embeddings=False,
        vision_feature_layer=raw.get("mm_vision_select_layer", -2),
        vision_feature_select_strategy="default" if raw.get("mm_vision_select_feature", "patch") == "patch" else "full",
        pad_token_id=vocab + 1,
    )
    if is_llava_next(raw):
        from llava.mm_utils import _parse_grid_pinpoints

        pinpoints = [[height, width] for width, height in _parse_grid_pinpoints(raw["image_grid_pinpoints"])]
        config = LlavaNextConfig(image_grid_pinpoints=pinpoints, use_image_newline_parameter=True, **common)
    else:
        config = LlavaConfig(image_seq_length=(vision.image_size // vision.patch_size) ** 2, **common)
    if raw.get("DART_config") is not None:
        config.DART_config = raw["DART_config"]
    config.architectures = [type(config).__name__.replace("Config", "ForConditionalGeneration")]
    config.dtype = raw.get("torch_dtype", raw.get("dtype", "float32"))
    return config


def write_tokenizer(src: Path, out: Path, vocab: int) -> None:
    """The original tokenizer with `<image>` and `<pad>` added as the scripts add them; their ids must be the
    rows the embeddings grew by."""
    from llava.model.builder import checkpoint_file

    tokenizer = load_declared_tokenizer(str(src), checkpoint_file)
    if len(tokenizer) != vocab:
        raise CheckpointError(f"{src}: the tokenizer has {len(tokenizer)} tokens but the embeddings {vocab} rows: "
                              f"{IMAGE_TOKEN} and {PAD_TOKEN} would not get the ids the converted weights give them")
    tokenizer.add_tokens(AddedToken(IMAGE_TOKEN, special=True, normalized=False), special_tokens=True)
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    tokenizer.save_pretrained(str(out))
    if (src / "tokenizer.model").is_file() and not (out / "tokenizer.model").is_file():
        shutil.copyfile(src / "tokenizer.model", out / "tokenizer.model")


def preprocessor_config(src: Path, raw: dict, config) -> dict:
    """The tower's CLIP preprocessor config, as llava-hf ships it (LLaVA-NeXT: its own processor type and the
    grid pinpoints)."""
    tower_file = tower_dir(src, raw) / "preprocessor_config.json"
    settings = json.loads(tower_file.read_text(encoding="utf-8")) if tower_file.is_file() else {}
    settings.pop("feature_extractor_type", None)
    if isinstance(config, LlavaNextConfig):
        settings.update(image_processor_type="LlavaNextImageProcessor", image_grid_pinpoints=config.image_grid_pinpoints,
                        processor_class="LlavaNextProcessor")
    else:
        settings.update(image_processor_type="CLIPImageProcessor", processor_class="LlavaProcessor")
    return settings


def processor_config(config) -> dict:
    processor = "LlavaNextProcessor" if isinstance(config, LlavaNextConfig) else "LlavaProcessor"
    return {"image_token": IMAGE_TOKEN, "num_additional_image_tokens": 1, "patch_size": config.vision_config.patch_size,
            "processor_class": processor, "vision_feature_select_strategy": config.vision_feature_select_strategy}


def generation_config(src: Path, config) -> dict:
    source = src / "generation_config.json"
    settings = json.loads(source.read_text(encoding="utf-8")) if source.is_file() else {}
    text = config.text_config
    settings.update(bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id, pad_token_id=config.pad_token_id)
    return settings


# -- the whole checkpoint ---------------------------------------------------------------------------------


def convert_checkpoint(src, out, seed: int = 0, num_shards: int = 2) -> Path:
    """Write the llava-hf layout of the original LLaVA checkpoint `src` into `out` (created); returns `out`."""
    src, out = Path(src), Path(out)
    raw = read_original_config(src)
    state, vocab = hub_state(src, raw, seed)
    config = hf_config(raw, vision_config(src, raw), vocab)
    out.mkdir(parents=True, exist_ok=True)
    write_tokenizer(src, out, vocab)
    config.save_pretrained(str(out))
    write_shards(state, out, min(num_shards, len(state)))
    write_json(out / "generation_config.json", generation_config(src, config))
    write_json(out / "preprocessor_config.json", preprocessor_config(src, raw, config))
    write_json(out / "processor_config.json", processor_config(config))
    write_json(out / "chat_template.json", {"chat_template": CHAT_TEMPLATE})
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
