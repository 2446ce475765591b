"""Strict loading: a checkpoint fills every weight of the model it loads into, and every tensor it holds is used.

`from_pretrained` in transformers reports weights it could not find (left at their random initialisation) and
tensors it did not use, and carries on. For us either is a wrong answer waiting to happen (a hub-layout
Qwen2-VL whose language model was never loaded answers noise), so every load goes through
`load_strictly`, which turns the report into a `CheckpointError` naming the first keys of each kind.
Damaged files (a truncated `model.safetensors`, a config value of the wrong type, a LLaVA config without its
tower) are a `CheckpointError` naming the file too, so that every entry point reports them in one line.

The differences that are known and harmless are listed once, in `HARMLESS`, each with its reason. A load
that legitimately leaves a part to be filled from elsewhere (the projector of a stage-1 checkpoint, loaded
from its own file next) says so with `filled_elsewhere`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence

from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError, safe_open
from transformers import AutoTokenizer, PreTrainedModel
from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping
from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
from transformers.utils import logging as hf_logging


class CheckpointError(ValueError):
    """A checkpoint that does not match the model it is loaded into, or that lacks files it needs."""


@dataclasses.dataclass(frozen=True)
class HarmlessDifference:
    """Keys matching `pattern` (a regex searched in the key) may be `kind` ("missing" or "unexpected")."""

    kind: str
    pattern: str
    reason: str


HARMLESS: tuple[HarmlessDifference, ...] = (
    HarmlessDifference(
        "unexpected", r"rotary_emb\.inv_freq$",
        "LLaMA checkpoints saved by transformers < 4.32 carry the rotary frequencies, which are computed, not loaded"),
    HarmlessDifference(
        "unexpected", r"(^|\.)embeddings\.position_ids$",
        "CLIP checkpoints saved by older transformers carry the position-id buffer, which is rebuilt at init"),
    HarmlessDifference(
        "unexpected", r"^(text_model\.|text_projection\.|visual_projection\.|logit_scale$)",
        "LLaVA's vision tower is the vision half of a full CLIP checkpoint (openai/clip-vit-large-patch14-336): "
        "the text half and the projections are not part of it"),
)


def _shown(keys: Sequence[str], limit: int = 5) -> str:
    head = ", ".join(keys[:limit])
    return head + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _harmless(kind: str, key: str) -> bool:
    return any(rule.kind == kind and re.search(rule.pattern, key) for rule in HARMLESS)


def _shape(shape) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def _mismatch(entry) -> str:
    """A `mismatched_keys` entry, `(key, checkpoint shape, model shape)` in transformers 5 (older: the key)."""
    if isinstance(entry, (tuple, list)) and len(entry) == 3:
        key, in_checkpoint, in_model = entry
        return f"{key} (checkpoint {_shape(in_checkpoint)}, model {_shape(in_model)})"
    return str(entry[0] if isinstance(entry, (tuple, list)) else entry)


def _config_file(source: str) -> str:
    return os.path.join(source, "config.json") if os.path.isdir(source) else f"{source}'s config.json"


def check_load_report(info: dict, source: str, filled_elsewhere: Iterable[str] = ()) -> None:
    """Raise `CheckpointError` if the loading report `info` (`output_loading_info=True`) has missing, unexpected or
    mismatched weights beyond the known harmless ones. `filled_elsewhere`: key prefixes the caller loads itself."""
    prefixes = tuple(filled_elsewhere)
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(prefixes) and not _harmless("missing", k))
    unexpected = sorted(k for k in info.get("unexpected_keys", ()) if not _harmless("unexpected", k))
    mismatched = sorted(_mismatch(k) for k in info.get("mismatched_keys", ()))
    problems = []
    if missing:
        problems.append(f"{len(missing)} weight(s) of the model are not in the checkpoint and would stay at their "
                        f"random initialisation: {_shown(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} tensor(s) of the checkpoint have no place in the model: {_shown(unexpected)}")
    if mismatched:
        # The model is built from the config, so a shape the weights disagree with comes from a config value.
        problems.append(f"{len(mismatched)} tensor(s) have another shape than the model's: {_shown(mismatched)}; "
                        f"{_config_file(source)} does not describe these weights (a wrong hidden_size, "
                        "intermediate_size, num_attention_heads or vocab_size?)")
    if problems:
        suffix = "" if mismatched and not (missing or unexpected) else \
            " (a checkpoint in a layout we do not support, or an incomplete download)"
        raise CheckpointError(f"{source}: the checkpoint does not match the model it is loaded into: "
                              + "; ".join(problems) + suffix)


# -- damaged files ----------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def broken_weights_error(source: str, exc: SafetensorError) -> CheckpointError:
    """The error for a safetensors file that cannot be read; `source` is the file, or a checkpoint directory in which
    the broken file is looked for (the library's own error does not say which file it was)."""
    broken = source
    if os.path.isdir(source):
        broken = next((file for file in sorted(glob.glob(os.path.join(source, "*.safetensors")))
                       if not _readable_safetensors(file)), source)
    return CheckpointError(f"{broken}: not a complete safetensors file ({_one_line(exc)}): it is truncated or damaged "
                           "(an interrupted download or copy?); download or copy it again")


def _readable_safetensors(file: str) -> bool:
    try:
        with safe_open(file, framework="pt"):
            return True
    except (SafetensorError, OSError):
        return False


def config_error(config_file: str, exc: StrictDataclassError) -> CheckpointError:
    """A config value transformers' config classes refuse (`num_hidden_layers: "four"`), in one line."""
    return CheckpointError(f"{config_file}: a value of the wrong type: {_one_line(exc.__cause__ or exc)}")


@contextlib.contextmanager
def naming_broken_files(source: str) -> Iterator[None]:
    """Turn the errors a damaged weight file or a mistyped config raises while `source` (a checkpoint directory or
    a weight file) loads into a `CheckpointError` naming the file."""
    try:
        yield
    except SafetensorError as exc:
        raise broken_weights_error(source, exc) from None
    except StrictDataclassError as exc:
        raise config_error(_config_file(source), exc) from None


# -- LLaVA configs ------------------------------------------------------------------------------------------

# The fields LLaVA's code reads from an original LLaVA config without checking them, with their types; the
# required ones have no default (the tower to read images with, the projector's input width).
LLAVA_FIELD_TYPES: dict[str, type] = {
    "mm_vision_tower": str, "mm_hidden_size": int, "mm_projector_type": str, "mm_vision_select_layer": int,
    "mm_vision_select_feature": str, "mm_use_im_start_end": bool, "mm_use_im_patch_token": bool,
}
REQUIRED_LLAVA_FIELDS = ("mm_vision_tower", "mm_hidden_size")


def _of_type(value, wanted: type) -> bool:
    if wanted is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, wanted)


def check_llava_config(raw: dict, config_file: str) -> None:
    """Raise `CheckpointError` unless the original LLaVA config `raw` (its config.json) has the tower and projector
    fields, of the right types. Without them the model loads without its vision tower, and the first image fails
    far from the cause."""
    if not raw.get("mm_vision_tower"):
        raise CheckpointError(
            f"{config_file}: model_type {raw.get('model_type')!r} is a LLaVA checkpoint, but the config has no "
            "mm_vision_tower (the CLIP tower it reads images with, e.g. openai/clip-vit-large-patch14-336): "
            "the config is incomplete; copy it from the release or the training run")
    needed = [name for name in REQUIRED_LLAVA_FIELDS if name not in raw]
    if raw.get("mm_projector_type") != "identity" and needed:
        raise CheckpointError(f"{config_file}: a LLaVA config without {', '.join(needed)} (the projector's input "
                              "width, the vision tower's hidden size): the config is incomplete")
    for name, wanted in LLAVA_FIELD_TYPES.items():
        if name in raw and raw[name] is not None and not _of_type(raw[name], wanted):
            raise CheckpointError(f"{config_file}: {name} must be {wanted.__name__}, got {raw[name]!r}")


def load_with_report(model_class, path: str, **kwargs) -> tuple[PreTrainedModel, dict]:
    """`model_class.from_pretrained(path, **kwargs)` and its loading report, for `check_load_report`.

    transformers prints its own table of every key it did not match (a hundred lines for the text half of the
    CLIP checkpoint LLaVA-1.5 reads its tower from); the check of the report is what counts, so the table is off.
    """
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    # Tensors of another shape than the config gives are then reported (and refused by `check_load_report`, with
    # their shapes) instead of failing with "look at the above report", which the muted logging never shows.
    kwargs.setdefault("ignore_mismatched_sizes", True)
    try:
        with naming_broken_files(str(path)):
            return model_class.from_pretrained(path, output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)


def load_strictly(model_class, path: str, filled_elsewhere: Iterable[str] = (), **kwargs) -> PreTrainedModel:
    """`model_class.from_pretrained(path, **kwargs)`, refused when any weight is left uninitialised or any tensor of
    the checkpoint unused (see `check_load_report`)."""
    model, info = load_with_report(model_class, path, **kwargs)
    check_load_report(info, str(path), filled_elsewhere)
    return model


def inherit_weight_conversions(model_class: type[PreTrainedModel]) -> type[PreTrainedModel]:
    """Give a subclass of a transformers model the checkpoint-key conversions of the library class it extends.

    transformers renames released layouts on load (Qwen2-VL's `model.layers.*` -> `model.language_model.layers.*`,
    `visual.*` -> `model.visual.*`) and back on save, but it skips classes defined outside the library; registered
    under our class's name, the library's own rules apply to it too. A class decorator.
    """
    library_class = next(base for base in model_class.__mro__[1:] if base.__module__.startswith("transformers."))
    conversions = get_checkpoint_conversion_mapping(library_class.__name__)
    if conversions is None:
        conversions = get_checkpoint_conversion_mapping(library_class.config_class.model_type)
    if conversions is not None:
        register_checkpoint_conversion_mapping(model_class.__name__, conversions, overwrite=True)
    return model_class


# -- tokenizer files ---------------------------------------------------------------------------------------

# A tokenizer needs its config and one of these vocabularies: SentencePiece (LLaMA, Mistral, Yi), a tokenizers
# JSON, or a byte-level BPE's vocabulary and merges (Qwen2).
TOKENIZER_VOCABULARIES = (("tokenizer.model",), ("tokenizer.json",), ("vocab.json", "merges.txt"))


def require_tokenizer_files(path: str, find_file) -> None:
    """Raise `CheckpointError` unless `path` holds tokenizer files; `find_file(path, name)` -> local path or None
    (a directory or a hub repo)."""
    if find_file(path, "tokenizer_config.json") is None:
        raise CheckpointError(f"{path}: no tokenizer_config.json: the checkpoint's tokenizer files are missing "
                              "(copy them from the release, or pass --model-base for a checkpoint saved without them)")
    if not any(all(find_file(path, name) is not None for name in group) for group in TOKENIZER_VOCABULARIES):
        wanted = " or ".join(" + ".join(group) for group in TOKENIZER_VOCABULARIES)
        raise CheckpointError(f"{path}: tokenizer_config.json but no vocabulary ({wanted}): the tokenizer files are "
                              "incomplete")


def load_declared_tokenizer(path: str, find_file, **kwargs):
    """The tokenizer class the checkpoint's `tokenizer_config.json` names (LLaVA's releases: `LlamaTokenizer`),
    whatever `config.model_type` says.

    transformers' AutoTokenizer picks the class by `model_type` first, and for `"llava"` (the released LLaVA-1.5 /
    1.6 configs) that is a generic tokenizer that tokenizes LLaVA's prompts differently (no prefix space on the
    first word, none after the image placeholder). LLaVA itself loaded the class the files declare.
    """
    require_tokenizer_files(path, find_file)
    with open(find_file(path, "tokenizer_config.json"), encoding="utf-8") as f:
        declared = json.load(f).get("tokenizer_class")
    tokenizer_class = tokenizer_class_from_name(declared) if declared else None
    if tokenizer_class is None:
        return AutoTokenizer.from_pretrained(path, **kwargs)
    return tokenizer_class.from_pretrained(path, **kwargs)
