"""Seeded random-init LLaVA-1.5 checkpoints in the ORIGINAL on-disk format, for tests, benchmarks and docs.

`build_tiny_checkpoint(out_dir)` writes what `liuhaotian/llava-v1.5-7b` plus its CLIP tower look like, only tiny:

    out_dir/
      config.json               LlavaLlamaForCausalLM config (model_type "llava_llama", mm_* fields)
      model.safetensors         model.embed_tokens / model.layers.N.* / model.norm / lm_head / model.mm_projector.*
      tokenizer.model           LLaMA-style SentencePiece (copied from llava/model/tiny_assets/)
      tokenizer_config.json  special_tokens_map.json
      vision_tower/             an openai/clip-vit-large-patch14-336 look-alike: full CLIPModel config.json,
                                preprocessor_config.json, model.safetensors with `vision_model.*` keys and a
                                small seeded CLIP text half (`write_clip_text_half`), CLIP tokenizer files

`mm_vision_tower` is the relative path "vision_tower": the loader resolves it against the checkpoint dir.

`layout="projector_only"` writes a LLaVA stage-1 (pretrain) output instead: config.json, `mm_projector.bin`
(torch pickle, the real format) and `mm_projector.safetensors`, plus the vision tower. It pairs with a base
LLM written by `build_tiny_base_llm()` (`--model-base`); the same seed gives the same LLaMA weights in both.

Seeds: the LLaMA weights use `seed`, the projector `seed + 1`, the vision tower `seed + 2` (its CLIP text half
`seed + 4`), each under its own
`torch.manual_seed` inside `torch.random.fork_rng()`, so the caller's RNG state is left untouched and changing
one component's size does not change the others' weights.

CLI: `python -m llava.model.tiny_checkpoint OUT_DIR [--seed N] [--layout full|projector_only|base] ...`
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

ASSETS_DIR = Path(__file__).resolve().parent / "tiny_assets"
TOKENIZER_MODEL = ASSETS_DIR / "tokenizer.model"
VOCAB_SIZE = 512  # pieces in tiny_assets/tokenizer.model (scripts/tiny/make_tokenizer.py)
IM_START_END_TOKENS = ("<im_start>", "<im_end>")  # llava.constants.DEFAULT_IM_START_TOKEN / _END_TOKEN
VISION_TOWER_DIR = "vision_tower"

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclasses.dataclass(frozen=True)
class TinySpec:
    """Every size and option of a tiny checkpoint; `build_tiny_checkpoint`'s keyword arguments."""

    seed: int = 0
    num_layers: int = 4
    hidden_size: int = 64
    intermediate_size: int = 172
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    vision_hidden_size: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    image_size: int = 336
    patch_size: int = 14
    projector_type: str = "mlp2x_gelu"
    mm_use_im_start_end: bool = False
    max_position_embeddings: int = 2048
    # A SentencePiece model to ship instead of tiny_assets/tokenizer.model, e.g. a larger vocabulary from
    # `scripts/tiny/make_tokenizer.py --vocab-size 1024`; the embeddings follow its size.
    tokenizer_model: str = ""

    @property
    def tokenizer_path(self) -> Path:
        return Path(self.tokenizer_model) if self.tokenizer_model else TOKENIZER_MODEL

    @property
    def base_vocab_size(self) -> int:
        """Pieces of the tokenizer model, before LLaVA's added tokens."""
        if not self.tokenizer_model:
            return VOCAB_SIZE
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_file=self.tokenizer_model).get_piece_size()

    @property
    def vocab_size(self) -> int:
        """LLaVA's training appends <im_start>/<im_end> to the tokenizer and embeddings when they are used."""
        return self.base_vocab_size + (len(IM_START_END_TOKENS) if self.mm_use_im_start_end else 0)


# ----------------------------------------------------------------------------------------------- LLaMA


def llama_config_dict(spec: TinySpec) -> dict:
    """The LLaMA fields of the config, as LLaMA-2/Vicuna-era checkpoints write them."""
    return {
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "hidden_act": "silu",
        "hidden_size": spec.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": spec.intermediate_size,
        "max_position_embeddings": spec.max_position_embeddings,
        "num_attention_heads": spec.num_attention_heads,
        "num_hidden_layers": spec.num_layers,
        "num_key_value_heads": spec.num_key_value_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-5,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": spec.vocab_size,
    }


def make_llm(spec: TinySpec) -> LlamaForCausalLM:
    """The seeded random LLaMA (std 0.02 normal init, RMSNorm weights 1) whose weights the checkpoint holds."""
    config = LlamaConfig.from_dict(llama_config_dict(spec))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(config)
    return model.eval()


def make_projector_state(spec: TinySpec) -> dict[str, torch.Tensor]:
    """Seeded projector weights named as in LLaVA (`model.mm_projector.0.weight`, ... or `.weight` for linear)."""
    if spec.projector_type == "linear":
        depth = 1
    elif spec.projector_type.startswith("mlp") and spec.projector_type.endswith("x_gelu"):
        depth = int(spec.projector_type[3:-6])
    else:
        raise ValueError(f"projector_type must be 'linear' or 'mlp<N>x_gelu', got {spec.projector_type!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed + 1)
        linears = [nn.Linear(spec.vision_hidden_size, spec.hidden_size)]
        linears += [nn.Linear(spec.hidden_size, spec.hidden_size) for _ in range(depth - 1)]
    if spec.projector_type == "linear":
        prefixes = ["model.mm_projector"]
    else:  # Sequential(Linear, GELU, Linear, GELU, ...): the Linear layers sit at even indices
        prefixes = [f"model.mm_projector.{2 * i}" for i in range(depth)]
    state = {}
    for prefix, linear in zip(prefixes, linears):
        state[f"{prefix}.weight"] = linear.weight.detach().clone()
        state[f"{prefix}.bias"] = linear.bias.detach().clone()
    return state


def write_llm_weights(out_dir: Path, spec: TinySpec, *, with_projector: bool = True) -> Path:
    """`model.safetensors` with the original LLaMA names (+ the projector); no vision tower weights."""
    state = {name: tensor.detach().clone().contiguous() for name, tensor in make_llm(spec).state_dict().items()}
    if with_projector:
        state.update(make_projector_state(spec))
    path = out_dir / "model.safetensors"
    save_file(state, str(path), metadata={"format": "pt"})
    return path


def write_projector_only(out_dir: Path, spec: TinySpec) -> None:
    """LLaVA stage-1 output: `mm_projector.bin` (plain dict of tensors, torch.save) and a safetensors twin."""
    state = make_projector_state(spec)
    torch.save(state, out_dir / "mm_projector.bin")
    save_file(state, str(out_dir / "mm_projector.safetensors"), metadata={"format": "pt"})


# ------------------------------------------------------------------------------------------ vision tower


def vision_config_dict(spec: TinySpec) -> dict:
    return {
        "attention_dropout": 0.0,
        "dropout": 0.0,
        "hidden_act": "quick_gelu",
        "hidden_size": spec.vision_hidden_size,
        "image_size": spec.image_size,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": 4 * spec.vision_hidden_size,
        "layer_norm_eps": 1e-5,
        "model_type": "clip_vision_model",
        "num_attention_heads": spec.vision_heads,
        "num_channels": 3,
        "num_hidden_layers": spec.vision_layers,
        "patch_size": spec.patch_size,
        "projection_dim": spec.vision_hidden_size,
    }


def make_vision_model(spec: TinySpec) -> CLIPVisionModel:
    """The seeded random CLIP vision tower whose weights `vision_tower/model.safetensors` holds."""
    config = CLIPVisionConfig.from_dict(vision_config_dict(spec))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed + 2)
        model = CLIPVisionModel(config)
    return model.eval()


def write_vision_tower(out_dir: Path, spec: TinySpec, model: CLIPVisionModel | None = None) -> Path:
    """`vision_tower/` laid out like openai/clip-vit-large-patch14-336 (vision weights only, original names).

    model: the tower to write (e.g. a pretrained one); default: the seeded random `make_vision_model(spec)`.
    """
    tower_dir = out_dir / VISION_TOWER_DIR
    tower_dir.mkdir(parents=True, exist_ok=True)
    width = spec.vision_hidden_size
    text_config = clip_text_config(width)
    config = {
        "architectures": ["CLIPModel"],
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "model_type": "clip",
        "projection_dim": width,
        "text_config": text_config,
        "torch_dtype": "float32",
        "vision_config": vision_config_dict(spec),
    }
    _write_json(tower_dir / "config.json", config)
    preprocessor = {
        "crop_size": spec.image_size,
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": CLIP_MEAN,
        "image_processor_type": "CLIPImageProcessor",
        "image_std": CLIP_STD,
        "resample": 3,
        "size": {"shortest_edge": spec.image_size},
    }
    _write_json(tower_dir / "preprocessor_config.json", preprocessor)
    # transformers 5 keeps CLIPVisionModel's modules at the top level (`embeddings.*`, `encoder.*`, ...);
    # the openai checkpoints name them `vision_model.*`, which is what we write.
    state = {
        f"vision_model.{name}": tensor.detach().clone().contiguous()
        for name, tensor in (model if model is not None else make_vision_model(spec)).state_dict().items()
    }
    path = tower_dir / "model.safetensors"
    save_file(state, str(path), metadata={"format": "pt"})
    write_clip_text_half(tower_dir, seed=spec.seed + 4)
    return path


# ------------------------------------------------------------------------------- the tower's CLIP text half

# A tiny CLIP BPE vocabulary: the printable ASCII bytes (byte-level, as CLIP maps them, which leaves them as they
# are), each alone and as a word's last character (`</w>`), a few merges, then CLIP's two special tokens last (the
# highest ids: the openai config's legacy eos_token_id 2 pools the text at the argmax id, the end of text).
# Other characters become <|endoftext|>, CLIP's unknown token.
CLIP_TEXT_MERGES = (("t", "h"), ("th", "e</w>"), ("i", "s</w>"), ("o", "f</w>"), ("a", "n"), ("an", "d</w>"),
                    ("w", "h"), ("wh", "a"), ("wha", "t</w>"), ("i", "n"), ("in", "g</w>"), ("o", "r</w>"))
CLIP_TEXT_WIDTH = 32


def clip_text_vocab() -> dict[str, int]:
    alphabet = [chr(code) for code in range(ord("!"), ord("~") + 1)]
    tokens = alphabet + [c + "</w>" for c in alphabet] + [a + b for a, b in CLIP_TEXT_MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(dict.fromkeys(tokens))}


def clip_text_config(projection_dim: int) -> dict:
    """The tiny CLIP text half's config (width 32, 2 layers), projecting to the tower's `projection_dim`."""
    return {
        "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,  # the openai config's legacy ids
        "hidden_act": "quick_gelu",
        "hidden_size": CLIP_TEXT_WIDTH,
        "intermediate_size": 4 * CLIP_TEXT_WIDTH,
        "max_position_embeddings": 77,
        "model_type": "clip_text_model",
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "projection_dim": projection_dim,
        "vocab_size": len(clip_text_vocab()),
    }


def write_clip_text_half(tower_dir, seed: int = 4) -> None:
    """Give a CLIP tower folder what openai's checkpoint carries besides the vision half, tiny and random-init
    (`torch.manual_seed(seed)`): the text model, `text_projection`, `visual_projection`, `logit_scale`, and a CLIP
    tokenizer (`vocab.json`, `merges.txt`, `tokenizer_config.json`, `special_tokens_map.json`). CDPruner embeds
    the instruction with it, as its official code does with the tower's own CLIP checkpoint. The vision weights
    (`vision_model.*`) are left exactly as they are; a text half already there is replaced."""
    from safetensors.torch import load_file
    from transformers import CLIPConfig, CLIPModel

    tower_dir = Path(tower_dir)
    config = json.loads((tower_dir / "config.json").read_text())
    text = clip_text_config(config["projection_dim"])
    config["text_config"] = text
    if "text_config_dict" in config:  # the openai configs repeat the sizes there
        config["text_config_dict"] = {k: text[k] for k in config["text_config_dict"] if k in text}
    _write_json(tower_dir / "config.json", config)
    state = load_file(str(tower_dir / "model.safetensors"))
    vision = {name: tensor for name, tensor in state.items() if name.startswith("vision_model.")}
    dtype = next(iter(vision.values())).dtype
    clip_config = CLIPConfig(text_config=text, vision_config=config["vision_config"],
                             projection_dim=config["projection_dim"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clip = CLIPModel(clip_config)
    added = {name: tensor.detach().to(dtype).contiguous() for name, tensor in clip.state_dict().items()
             if not name.startswith("vision_model.") and not name.endswith("position_ids")}
    save_file(vision | added, str(tower_dir / "model.safetensors"), metadata={"format": "pt"})
    (tower_dir / "vocab.json").write_text(json.dumps(clip_text_vocab(), ensure_ascii=False) + "\n", encoding="utf-8")
    merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in CLIP_TEXT_MERGES)
    (tower_dir / "merges.txt").write_text(merges, encoding="utf-8")
    specials = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>"}
    _write_json(tower_dir / "special_tokens_map.json", specials)
    _write_json(tower_dir / "tokenizer_config.json", {"tokenizer_class": "CLIPTokenizer", "do_lower_case": True,
                                                      "model_max_length": 77, **specials})


# --------------------------------------------------------------------------------------------- tokenizer


def write_tokenizer(out_dir: Path, spec: TinySpec) -> None:
    """LLaMA-1/2 tokenizer files as Vicuna/LLaVA-1.5 ship them (slow `LlamaTokenizer`, BOS added, no EOS).

    `legacy: false` is what those checkpoints carry; in transformers 5 it means no "▁" is prepended to text
    that follows a special token (e.g. "</s>USER" -> "US", "ER"), as the 4.3x slow tokenizer did with it.
    With `mm_use_im_start_end`, <im_start>/<im_end> get the ids after the model's pieces (512/513 for the
    shipped one) through `added_tokens.json`, as LLaVA's training saved them.
    """
    shutil.copyfile(spec.tokenizer_path, out_dir / "tokenizer.model")

    def token(content: str, *, typed: bool) -> dict:
        entry = {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
        return {"__type": "AddedToken", **entry} if typed else entry

    _write_json(
        out_dir / "tokenizer_config.json",
        {
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": token("<s>", typed=True),
            "clean_up_tokenization_spaces": False,
            "eos_token": token("</s>", typed=True),
            "legacy": False,
            "model_max_length": 2048,
            "pad_token": None,
            "padding_side": "right",
            "sp_model_kwargs": {},
            "tokenizer_class": "LlamaTokenizer",
            "unk_token": token("<unk>", typed=True),
        },
    )
    if spec.mm_use_im_start_end:
        _write_json(out_dir / "added_tokens.json", {t: spec.base_vocab_size + i for i, t in enumerate(IM_START_END_TOKENS)})
    # LLaVA's training sets pad = unk for the v1 template, so its saved tokenizers carry pad_token "<unk>".
    _write_json(
        out_dir / "special_tokens_map.json",
        {
            "bos_token": token("<s>", typed=False),
            "eos_token": token("</s>", typed=False),
            "pad_token": "<unk>",
            "unk_token": token("<unk>", typed=False),
        },
    )


# ------------------------------------------------------------------------------------------------ config


def write_config(out_dir: Path, spec: TinySpec, *, layout: str = "full") -> dict:
    """`config.json` of the LLaVA language model in LLaVA-1.5's format; returns the dict written."""
    config = {
        "architectures": ["LlavaLlamaForCausalLM"],
        "model_type": "llava_llama",
        **llama_config_dict(spec),
        "freeze_mm_mlp_adapter": False,
        "image_aspect_ratio": "pad",
        "mm_hidden_size": spec.vision_hidden_size,
        "mm_patch_merge_type": "flat",
        "mm_projector_type": spec.projector_type,
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": spec.mm_use_im_start_end,
        "mm_vision_select_feature": "patch",
        "mm_vision_select_layer": -2,
        "mm_vision_tower": VISION_TOWER_DIR,
        "tokenizer_model_max_length": 2048,
        "tokenizer_padding_side": "right",
        # A stage-1 (projector-only) run saves its config with the adapter being tuned.
        "tune_mm_mlp_adapter": layout == "projector_only",
        "unfreeze_mm_vision_tower": False,
        "use_mm_proj": True,
    }
    _write_json(out_dir / "config.json", config)
    return config


# ---------------------------------------------------------------------------------------------- builders


def build_tiny_checkpoint(out_dir, *, layout: str = "full", **sizes) -> Path:
    """Write a seeded tiny LLaVA-1.5 checkpoint into `out_dir` (created if needed); returns its path.

    Keyword arguments are the fields of `TinySpec` (seed, num_layers, hidden_size, ..., projector_type).
    layout: "full" (a finetuned LLaVA-1.5 checkpoint) or "projector_only" (stage-1 output; pair it with
    `build_tiny_base_llm` as --model-base).
    """
    spec = TinySpec(**sizes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if layout == "full":
        write_config(out, spec)
        write_llm_weights(out, spec)
        write_tokenizer(out, spec)
    elif layout == "projector_only":
        if spec.mm_use_im_start_end:  # stage 1 then also tunes and saves the embeddings of the new tokens
            raise NotImplementedError("layout='projector_only' with mm_use_im_start_end=True is not supported")
        write_config(out, spec, layout=layout)
        write_projector_only(out, spec)
    elif layout == "lora":
        raise NotImplementedError("layout='lora' is not supported (it needs peft)")
    else:
        raise ValueError(f"layout must be 'full' or 'projector_only', got {layout!r}")
    write_vision_tower(out, spec)
    return out


def build_tiny_base_llm(out_dir, **sizes) -> Path:
    """Write the plain LLaMA checkpoint (model_type "llama", weights, tokenizer) a projector-only one pairs with.

    Accepts the same keyword arguments as `build_tiny_checkpoint` (the vision/projector ones are ignored);
    the same seed and sizes give exactly the LLaMA weights of the full checkpoint.
    """
    spec = dataclasses.replace(TinySpec(**sizes), mm_use_im_start_end=False)  # a plain LLaMA has no image tokens
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(
        out / "config.json",
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **llama_config_dict(spec)},
    )
    write_llm_weights(out, spec, with_projector=False)
    write_tokenizer(out, spec)
    return out


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a seeded tiny LLaVA-1.5 checkpoint (original format).")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--layout", choices=["full", "projector_only", "base"], default="full",
                        help="'base' writes the plain LLaMA checkpoint a projector_only one pairs with")
    for field in dataclasses.fields(TinySpec):
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            kind = str if field.type in ("str", str) else int
            parser.add_argument(flag, type=kind, default=field.default)
    args = vars(parser.parse_args(argv))
    out_dir, layout = args.pop("out_dir"), args.pop("layout")
    if layout == "base":
        path = build_tiny_base_llm(out_dir, **args)
    else:
        path = build_tiny_checkpoint(out_dir, layout=layout, **args)
    print(f"wrote tiny {layout} checkpoint (seed {args['seed']}) to {path}")


if __name__ == "__main__":
    main()
