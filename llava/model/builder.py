"""`load_pretrained_model`: LLaVA's loader, for original checkpoints, on transformers 5.

The kind of checkpoint is read from its files and `config.model_type`, never guessed from the path:
- a full LLaVA checkpoint (`model_type: llava_llama` or `llava_mistral` + weights),
- a projector-only stage-1 checkpoint (`mm_projector.*` + config) on top of `model_base`,
- a LoRA checkpoint (`adapter_config.json`, optional `non_lora_trainables.bin`) on top of `model_base`,
- a Qwen2-VL / Qwen2.5-VL checkpoint in the HF format (`model_type: qwen2_vl` / `qwen2_5_vl`),
- a plain language model (any other model_type).
"""

from __future__ import annotations

import json
import logging
import os

import torch
from transformers import AutoConfig, AutoModelForCausalLM, CLIPVisionConfig
from transformers.utils.output_capturing import maybe_install_capturing_hooks

from llava.constants import DEFAULT_IM_END_TOKEN, DEFAULT_IM_START_TOKEN, DEFAULT_IMAGE_PATCH_TOKEN
from llava.model.language_model.families import LLAVA_CONFIG_CLASSES, causal_lm_class, is_llava_config
from llava.model.llava_arch import LlavaMetaForCausalLM
from llava.model.strict_loading import (CheckpointError, check_llava_config, check_load_report, load_declared_tokenizer,
                                         load_strictly, load_with_report, naming_broken_files, require_tokenizer_files)
from llava.model.weights import find_weight_file, load_projector_state, load_state_file
from llava.pruning_settings import pruning_summary

logger = logging.getLogger(__name__)

# The model_types of original LLaVA checkpoints (`families.LLAVA_CONFIG_CLASSES`). transformers' own "llava"
# (HF format) has a `vision_config` instead of `mm_vision_tower`.
LLAVA_MODEL_TYPES = tuple(LLAVA_CONFIG_CLASSES)


def resolve_device(device: str) -> str:
    """`device` if usable, else "cpu" with a one-line notice (CUDA asked for on a machine without it)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: running on the CPU")
        return "cpu"
    return device


def default_dtype(device: str) -> torch.dtype:
    """float16 on CUDA, float32 elsewhere (CPU kernels for half precision are slow or missing)."""
    return torch.float16 if device.startswith("cuda") else torch.float32


def checkpoint_file(path: str, filename: str) -> str | None:
    """Local path of `filename` in a checkpoint directory or hub repo (downloaded / from the HF cache), or None."""
    if os.path.isdir(path):
        candidate = os.path.join(path, filename)
        return candidate if os.path.isfile(candidate) else None
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return hf_hub_download(path, filename)
    except LocalEntryNotFoundError as exc:  # (a subclass of EntryNotFoundError: check it first)
        # Offline with the repo in the cache: a snapshot holds every file the repo has, so this one is absent.
        if isinstance(try_to_load_from_cache(path, "config.json"), str):
            return None
        raise FileNotFoundError(
            f"{path!r} is not a local directory, and the hub is unreachable with no cached copy of it "
            "(download it once, or pass a local checkpoint directory)"
        ) from exc
    except EntryNotFoundError:
        return None
    except Exception as exc:  # unknown repo, no access, bad id: all end the same way for the user
        raise FileNotFoundError(f"cannot read {filename} of {path!r}: not a local directory and the hub said: {exc}") from exc


def read_config(path: str):
    """The checkpoint's config: ours for original LLaVA checkpoints (`LlavaConfig`, `LlavaMistralConfig`), else
    whatever AutoConfig says.

    Original LLaVA configs carry `mm_vision_tower`; transformers' own "llava" type (HF format) does not.
    """
    config_file = checkpoint_file(path, "config.json")
    if config_file is None:
        raise FileNotFoundError(f"{path} has no config.json: not a model checkpoint")
    raw = _read_json_object(config_file)
    with naming_broken_files(path):
        if not is_original_llava(raw):
            return AutoConfig.from_pretrained(path)
        check_llava_config(raw, config_file)
        config_class = LLAVA_CONFIG_CLASSES[raw["model_type"]]
        raw["model_type"] = config_class.model_type
        if "rope_scaling" in raw and raw["rope_scaling"] is None:
            del raw["rope_scaling"]  # LLaVA-1.5 wrote null; transformers 5 warns about the key itself
        return config_class.from_dict(raw)


def is_original_llava(raw: dict) -> bool:
    """An original LLaVA config: ours and newer releases say llava_llama / llava_mistral; the LLaVA-1.5 releases say
    "llava", which is also transformers' own HF-format type, told apart by `mm_vision_tower`."""
    model_type = raw.get("model_type")
    return model_type in LLAVA_MODEL_TYPES and (model_type != "llava" or "mm_vision_tower" in raw)


def _read_json_object(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc}): the file is damaged or incomplete") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: not a JSON object but {type(raw).__name__}")
    return raw


def resolve_vision_tower(config, model_path: str) -> None:
    """Make a relative `mm_vision_tower` (as in our portable checkpoints) point inside the checkpoint dir."""
    tower = getattr(config, "mm_vision_tower", None)
    if tower and not os.path.isabs(tower) and os.path.isdir(model_path):
        candidate = os.path.join(model_path, tower)
        if os.path.isdir(candidate):
            config.mm_vision_tower = os.path.abspath(candidate)


def check_local_tower_config(tower: str | None) -> None:
    """Read a local vision tower's config.json up front: the model reads it while it is built, where a damaged one
    would be blamed on the checkpoint's own config."""
    config_file = os.path.join(tower, "config.json") if tower else None
    if config_file is not None and os.path.isfile(config_file):
        _read_json_object(config_file)
        with naming_broken_files(tower):
            CLIPVisionConfig.from_pretrained(tower)


def _quantization_kwargs(load_8bit: bool, load_4bit: bool, device: str) -> dict:
    if not (load_8bit or load_4bit):
        return {}
    if not device.startswith("cuda"):
        raise ValueError("--load-8bit / --load-4bit need a CUDA device (bitsandbytes kernels)")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ImportError("--load-8bit / --load-4bit need bitsandbytes: pip install bitsandbytes") from exc
    from transformers import BitsAndBytesConfig

    if load_8bit:
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_compute_dtype=torch.float16,
            bnb_4bit_use_double_quant=True,
            bnb_4bit_quant_type="nf4",
        )
    }


def choose_attn_implementation(attn_implementation: str | None, use_flash_attn: bool, device: str) -> str:
    """The requested backend if it can run here, else sdpa with a notice (flash-attn needs CUDA and the package)."""
    wanted = "flash_attention_2" if use_flash_attn else (attn_implementation or "sdpa")
    if wanted == "flash_attention_2":
        if not device.startswith("cuda"):
            logger.warning("flash_attention_2 needs CUDA; using sdpa on %s", device)
            return "sdpa"
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            logger.warning("flash_attention_2 requested but flash-attn is not installed (pip install '.[flash]'); using sdpa")
            return "sdpa"
    if wanted not in ("eager", "sdpa", "flash_attention_2"):
        raise ValueError(f"attn_implementation must be eager, sdpa or flash_attention_2, got {wanted!r}")
    return wanted


def _has_full_weights(path: str) -> bool:
    if not os.path.isdir(path):
        return True  # a hub id: from_pretrained finds its weights
    names = os.listdir(path)
    return any(n.startswith(("model", "pytorch_model")) and n.endswith((".safetensors", ".bin", ".index.json")) for n in names)


def _projector_file(path: str) -> str:
    found = checkpoint_file(path, "mm_projector.safetensors") or checkpoint_file(path, "mm_projector.bin")
    if found is None:
        raise FileNotFoundError(f"{path} has neither mm_projector.safetensors nor mm_projector.bin")
    return found


def _strip_peft_prefixes(state: dict) -> dict:
    """LLaVA saves non-LoRA trainables from the peft-wrapped model (`base_model.model.model.*`)."""
    state = {k.removeprefix("base_model."): v for k, v in state.items()}
    if any(k.startswith("model.model.") for k in state):
        state = {k.removeprefix("model."): v for k, v in state.items()}
    return state


def _load_lora(model_path: str, model_base: str, config, **kwargs):
    """The base model, the non-LoRA trainables (the projector, ...) over it, then the merged adapter. What the base
    lacks must come from the trainables file, and every tensor of that file must find its place."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ImportError("loading a LoRA checkpoint needs peft: pip install '.[train]'") from exc
    logger.info("loading base weights from %s", model_base)
    if config is None:
        model, info = load_with_report(AutoModelForCausalLM, model_base, **kwargs)
    else:
        model, info = load_with_report(causal_lm_class(config), model_base, config=config, **kwargs)
    loaded = set()
    trainables = find_weight_file(model_path, "non_lora_trainables")
    if trainables is not None:
        with naming_broken_files(trainables):
            state = _strip_peft_prefixes(load_state_file(trainables))
        result = model.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            check_load_report({"unexpected_keys": result.unexpected_keys}, trainables)
        loaded = set(state)
        logger.info("non-LoRA trainables loaded (%d tensors)", len(state))
    check_load_report({**info, "missing_keys": [k for k in info.get("missing_keys", ()) if k not in loaded]},
                      f"{model_base} (+ {model_path})")
    model = PeftModel.from_pretrained(model, model_path)
    return model.merge_and_unload()


def check_loading_info(model, info: dict, model_path: str) -> None:
    """Every weight of the model loaded and every tensor on disk used (`llava.model.strict_loading`); a tower the
    config says the checkpoint carries (`unfreeze_mm_vision_tower`) but that is not there is named as such."""
    tower = model.get_vision_tower()
    missing_tower = [k for k in info.get("missing_keys", []) if ".vision_tower." in f".{k}"]
    if tower is not None and getattr(tower, "weights_in_checkpoint", False) and missing_tower:
        raise CheckpointError(
            f"{model_path}: the config sets unfreeze_mm_vision_tower, so its weights must hold the fine-tuned vision "
            f"tower (model.vision_tower.vision_tower.*), but {len(missing_tower)} of its tensors are missing, e.g. "
            f"{missing_tower[0]}"
        )
    check_load_report(info, model_path)


def config_overrides(customized_config: str | dict | None, overwrite_config: dict | None) -> dict:
    """The config attributes `customized_config` (a JSON file or a dict) and `overwrite_config` set, the latter
    winning; a file that is not a JSON object is a ValueError naming it."""
    overrides = {}
    if isinstance(customized_config, (str, os.PathLike)):
        try:
            with open(customized_config, encoding="utf-8") as f:
                customized_config = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"customized_config {customized_config}: not a readable JSON file ({exc})") from None
    for source in (customized_config, overwrite_config):
        if source is None:
            continue
        if not isinstance(source, dict):
            raise ValueError(f"config overrides must be a JSON object / dict, got {type(source).__name__}")
        overrides.update(source)
    return overrides


def load_pretrained_model(
    model_path: str,
    model_base: str | None,
    model_name: str | None = None,
    load_8bit: bool = False,
    load_4bit: bool = False,
    device_map: str | dict | None = "auto",
    device: str = "cuda",
    use_flash_attn: bool = False,
    attn_implementation: str | None = None,
    torch_dtype: torch.dtype | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    multimodal: bool | None = None,
    customized_config: str | dict | None = None,
    overwrite_config: dict | None = None,
    **kwargs,
):
    """Load a LLaVA (or plain LLaMA) checkpoint: returns `(tokenizer, model, image_processor, context_len)`.

    model_path: a local directory in the original LLaVA format, or a hub id.
    model_base: the base LLM for projector-only and LoRA checkpoints (as LLaVA's `--model-base`).
    model_name: accepted for compatibility; the checkpoint kind comes from its files, not the name.
    device: "cuda" falls back to "cpu" with a notice when CUDA is missing; dtype float16 on CUDA,
        float32 on the CPU unless `torch_dtype` says otherwise.
    Qwen2-VL / Qwen2.5-VL checkpoints (HF format, by `config.model_type`) load with pruning support and return
    their processor in the third place; `min_pixels` / `max_pixels` bound their image sizes.
    customized_config (a JSON file or a dict) and overwrite_config (a dict), as LLaVA-NeXT's loader takes them
        (lmms-eval's own `llava` model passes them through): config attributes set before the model is built,
        e.g. `{"DART_config": {...}}`. `multimodal` is accepted for those callers; as they set pruning only
        through these, a load with any of the three logs whether the model prunes, and with which settings.
    """
    told_by_config = multimodal is not None or customized_config is not None or overwrite_config is not None
    device = resolve_device(device)
    dtype = torch_dtype or default_dtype(device)
    if not model_path or (not os.path.exists(model_path) and model_path.startswith(("/", ".", "~"))):
        raise FileNotFoundError(f"model path {model_path!r} does not exist")
    load_kwargs = {"dtype": dtype, **_quantization_kwargs(load_8bit, load_4bit, device), **kwargs}
    load_kwargs["attn_implementation"] = choose_attn_implementation(attn_implementation, use_flash_attn, device)
    if device.startswith("cuda") and device_map is not None:
        # "auto" spreads over all visible GPUs only when no particular GPU was asked for.
        load_kwargs["device_map"] = "auto" if (device_map == "auto" and device == "cuda") else (
            {"": device} if device_map == "auto" else device_map
        )

    config = read_config(model_path)
    for key, value in config_overrides(customized_config, overwrite_config).items():
        setattr(config, key, value)
    from llava.model.families import family_for  # late: the families' loaders import this module

    options = {"model_base": model_base, "device": device, "dtype": dtype, "min_pixels": min_pixels,
               "max_pixels": max_pixels}
    tokenizer, model, processor, context_len = family_for(config).load(model_path, config, load_kwargs, options)
    if "device_map" not in load_kwargs and not (load_8bit or load_4bit):
        model.to(device)
    model.eval()
    if told_by_config:
        logger.info(pruning_summary(getattr(model.config, "DART_config", None)))
    return tokenizer, model, processor, context_len


def load_llava(model_path: str, config, load_kwargs: dict, options: dict):
    """(tokenizer, model, image_processor, context_len) for an original-layout LLaVA checkpoint (full, projector-only
    with `options["model_base"]`, or LoRA) or a plain language model; the vision tower loaded on
    `options["device"]`."""
    model_base, device, dtype = options.get("model_base"), options["device"], options["dtype"]
    is_lora = checkpoint_file(model_path, "adapter_config.json") is not None
    if is_lora and model_base is None:
        raise ValueError(f"{model_path} is a LoRA checkpoint: pass the base model with --model-base")
    has_tokenizer = checkpoint_file(model_path, "tokenizer_config.json") is not None
    tokenizer_path = model_path if has_tokenizer or model_base is None else model_base
    require_tokenizer_files(tokenizer_path, checkpoint_file)  # before the weights: no minutes spent on a failing load
    if is_llava_config(config):
        resolve_vision_tower(config, model_path)
        check_local_tower_config(getattr(config, "mm_vision_tower", None))
        if is_lora:
            model = _load_lora(model_path, model_base, config, **load_kwargs)
        elif model_base is not None:
            # As in LLaVA: a non-LoRA checkpoint with a base is a projector-only (stage-1) checkpoint.
            logger.info("loading the language model from %s and the projector from %s", model_base, model_path)
            model = load_strictly(causal_lm_class(config), model_base, filled_elsewhere=("model.mm_projector.",),
                                  config=config, **load_kwargs)
            projector_file = _projector_file(model_path)
            try:
                with naming_broken_files(projector_file):
                    model.get_model().mm_projector.load_state_dict(load_projector_state(projector_file))
            except RuntimeError as exc:  # missing / unexpected / misshapen projector tensors
                raise CheckpointError(f"{projector_file}: not the projector this config describes: {exc}") from None
            model.get_model().mm_projector.to(dtype=dtype)
        elif not _has_full_weights(model_path):
            raise ValueError(f"{model_path} holds no language-model weights (a projector-only checkpoint?): pass --model-base")
        else:
            model, info = load_with_report(causal_lm_class(config), model_path, config=config, **load_kwargs)
            check_loading_info(model, info, model_path)
    elif is_lora:
        model = _load_lora(model_path, model_base, None, **load_kwargs)
    else:
        model = load_strictly(AutoModelForCausalLM, model_path, **load_kwargs)
    # The class the files name (LlamaTokenizer for LLaVA's releases), whatever model_type says.
    tokenizer = load_declared_tokenizer(tokenizer_path, checkpoint_file)
    image_processor = None
    if isinstance(model, LlavaMetaForCausalLM):
        image_processor = _prepare_multimodal(model, tokenizer, device, dtype, load_kwargs.get("device_map"))
    context_len = getattr(model.config, "max_sequence_length", 2048)
    return tokenizer, model, image_processor, context_len


def _prepare_multimodal(model, tokenizer, device: str, dtype: torch.dtype, device_map):
    """Add LLaVA's optional image tokens to the tokenizer and load the vision tower (not in the checkpoint)."""
    config = model.config
    new_tokens = []
    if getattr(config, "mm_use_im_patch_token", False):
        new_tokens.append(DEFAULT_IMAGE_PATCH_TOKEN)
    if getattr(config, "mm_use_im_start_end", False):
        new_tokens += [DEFAULT_IM_START_TOKEN, DEFAULT_IM_END_TOKEN]
    if new_tokens:
        tokenizer.add_tokens(new_tokens, special_tokens=True)
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
    vision_tower = model.get_vision_tower()
    if vision_tower is None:
        return None
    if not vision_tower.is_loaded:
        vision_tower.load_model(device_map=device_map if device.startswith("cuda") else None, dtype=dtype)
    vision_tower.to(device=device, dtype=dtype)
    # transformers installs its output-capturing hooks lazily, per model, on the first call that captures.
    # The tower captures its hidden states on every call, so it is hooked first; a later call with
    # output_attentions / output_hidden_states on the whole model would hook the tower a second time, double
    # the entries of its hidden-state tuple, and make `mm_vision_select_layer` pick another layer from then
    # on. Hooking the whole model now, before anything runs, hooks every part once.
    maybe_install_capturing_hooks(model)
    return vision_tower.image_processor
