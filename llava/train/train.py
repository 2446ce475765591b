r"""LLaVA training: stage 1 (projector pretraining, `--version plain`) and stage 2 (instruction tuning).

    python -m llava.train.train --model_name_or_path LLM --version v1 --data_path data.json \
        --image_folder IMAGES --vision_tower openai/clip-vit-large-patch14-336 --mm_projector_type mlp2x_gelu \
        --output_dir OUT [--deepspeed scripts/zero2.json] [--lora_enable True] ...

Runs on the CPU without DeepSpeed (no --bf16/--fp16 there); on GPUs through `deepspeed llava/train/train_mem.py`.
"""

from __future__ import annotations

import ast
import logging
import os
import pathlib

import torch
import transformers

from llava.constants import DEFAULT_IM_END_TOKEN, DEFAULT_IM_START_TOKEN, DEFAULT_IMAGE_PATCH_TOKEN
from llava.conversation import get_conv_template
from llava.eval.core.pruning_args import add_pruning_args, dart_config_from_args
from llava.model.pruning import parse_pruning_settings
from llava.model.language_model.families import causal_lm_class, is_llava_config, llava_config_for_base
from llava.train.arguments import DataArguments, ModelArguments, TrainingArguments
from llava.train.data_checks import TrainingDataError, load_training_samples
from llava.train.dataset import make_supervised_data_module
from llava.model.builder import checkpoint_file, read_config, resolve_vision_tower
from llava.model.strict_loading import load_declared_tokenizer, load_strictly
from llava.model.weights import portable_vision_tower, save_llava_checkpoint
from llava.train.llava_trainer import LLaVATrainer, gather_state_dict, save_projector

logger = logging.getLogger(__name__)

# Modules LoRA never wraps: the vision side is frozen (or trained in full) and the head stays dense.
_NOT_LORA = ("mm_projector", "vision_tower", "vision_resampler", "lm_head")


def lora_target_modules(model) -> list[str]:
    """Names of the language model's Linear layers (LLaVA's `find_all_linear_names`)."""
    names = {name.split(".")[-1] for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and not any(k in name for k in _NOT_LORA)}
    return sorted(names)


def _compute_dtype(args: TrainingArguments) -> torch.dtype:
    return torch.float16 if args.fp16 else (torch.bfloat16 if args.bf16 else torch.float32)


def _quantization_kwargs(args: TrainingArguments) -> dict:
    if args.bits not in (4, 8):
        return {}
    try:
        from transformers import BitsAndBytesConfig
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ImportError("--bits 4/8 needs bitsandbytes (and a CUDA GPU): pip install bitsandbytes") from exc
    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=args.bits == 4,
            load_in_8bit=args.bits == 8,
            bnb_4bit_compute_dtype=_compute_dtype(args),
            bnb_4bit_use_double_quant=args.double_quant,
            bnb_4bit_quant_type=args.quant_type,
        )
    }


def llava_config(model_args: ModelArguments):
    """The LLaVA config for training from a plain LLM (stage 1: `LlavaMistralConfig` for a Mistral, else
    `LlavaConfig`) or from a LLaVA checkpoint (stage 2)."""
    path = model_args.model_name_or_path
    config = read_config(path)
    if is_llava_config(config):
        resolve_vision_tower(config, path)
        return config
    return llava_config_for_base(config)


def build_model(model_args: ModelArguments, training_args: TrainingArguments, attn_implementation: str | None):
    kwargs = {
        "cache_dir": training_args.cache_dir,
        "dtype": _compute_dtype(training_args),
        "attn_implementation": attn_implementation or training_args.attn_implementation,
        **_quantization_kwargs(training_args),
    }
    # Strict, as every load: a weight the checkpoint lacks would start training from random values unnoticed.
    if model_args.vision_tower is not None:
        config = llava_config(model_args)
        model = load_strictly(causal_lm_class(config), model_args.model_name_or_path, config=config, **kwargs)
    else:
        model = load_strictly(transformers.AutoModelForCausalLM, model_args.model_name_or_path, **kwargs)
    model.config.use_cache = False
    if model_args.freeze_backbone:
        model.model.requires_grad_(False)
    if training_args.gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def apply_lora(model, training_args: TrainingArguments):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise ImportError("--lora_enable needs peft: pip install '.[train]'") from exc
    config = LoraConfig(
        r=training_args.lora_r,
        lora_alpha=training_args.lora_alpha,
        target_modules=lora_target_modules(model),
        lora_dropout=training_args.lora_dropout,
        bias=training_args.lora_bias,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def setup_vision(model, tokenizer, model_args, data_args, training_args) -> None:
    """Attach tower + projector, decide what trains, and record the multimodal settings in the config."""
    base = model.get_model()
    base.initialize_vision_modules(model_args)
    tower = model.get_vision_tower()
    tower.to(dtype=_compute_dtype(training_args), device=training_args.device)
    data_args.image_processor = tower.image_processor
    data_args.is_multimodal = True
    data_args.mm_use_im_start_end = model_args.mm_use_im_start_end

    config = model.config
    config.image_aspect_ratio = data_args.image_aspect_ratio
    if data_args.image_aspect_ratio == "anyres":
        # The dataset preprocesses with the same grid the model merges by (process_images reads it there).
        config.image_grid_pinpoints = data_args.image_grid_pinpoints = grid_pinpoints(model_args, config)
    config.tokenizer_padding_side = tokenizer.padding_side
    config.tokenizer_model_max_length = tokenizer.model_max_length
    config.tune_mm_mlp_adapter = model_args.tune_mm_mlp_adapter
    if model_args.tune_mm_mlp_adapter:
        model.requires_grad_(False)
        base.mm_projector.requires_grad_(True)
        if getattr(base, "image_newline", None) is not None:  # LLaVA-1.6's row separator is part of the adapter
            base.image_newline.requires_grad_(True)
    config.freeze_mm_mlp_adapter = training_args.freeze_mm_mlp_adapter
    if training_args.freeze_mm_mlp_adapter:
        base.mm_projector.requires_grad_(False)
    setup_tower_training(tower, config, model_args, training_args)
    config.mm_use_im_start_end = training_args.use_im_start_end = model_args.mm_use_im_start_end
    config.mm_projector_lr = training_args.mm_projector_lr
    config.mm_use_im_patch_token = model_args.mm_use_im_patch_token
    add_image_tokens(model, tokenizer, model_args)


def setup_tower_training(tower, config, model_args, training_args) -> None:
    """`--unfreeze_mm_vision_tower`: the tower trains with the rest (at `--mm_vision_tower_lr` when given), and
    the config says its weights are in the checkpoint (`unfreeze_mm_vision_tower`, as LLaVA-NeXT writes it), so
    that the saved checkpoints carry them and the loader takes them from there. A checkpoint that already
    carries a fine-tuned tower keeps saying so while its tower stays frozen: saving only the named tower's
    original weights would drop the fine-tuned ones without a word."""
    unfreeze = model_args.unfreeze_mm_vision_tower
    if unfreeze and model_args.tune_mm_mlp_adapter:
        raise ValueError("--tune_mm_mlp_adapter trains the projector only: it cannot --unfreeze_mm_vision_tower")
    if training_args.mm_vision_tower_lr is not None and not unfreeze:
        raise ValueError("--mm_vision_tower_lr is the learning rate of a trained tower: add --unfreeze_mm_vision_tower")
    config.unfreeze_mm_vision_tower = unfreeze or bool(getattr(tower, "weights_in_checkpoint", False))
    config.mm_vision_tower_lr = training_args.mm_vision_tower_lr
    # Explicitly both ways: a tower whose weights came with the checkpoint's gets trainable parameters from the
    # loader, as the language model's.
    tower.vision_tower.requires_grad_(unfreeze)
    tower.unfrozen = unfreeze


def grid_pinpoints(model_args, config) -> list[list[int]]:
    """The anyres grid: --image_grid_pinpoints (a JSON / Python list of [width, height]), else the config's."""
    raw = model_args.image_grid_pinpoints
    if raw is None:
        pinpoints = getattr(config, "image_grid_pinpoints", None)
        if not pinpoints:
            raise ValueError("--image_aspect_ratio anyres needs --image_grid_pinpoints, e.g. "
                             "'[[336, 672], [672, 336], [672, 672]]'")
        return pinpoints
    try:
        pinpoints = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        pinpoints = None
    if not (isinstance(pinpoints, (list, tuple)) and pinpoints and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, int) and v > 0 for v in p)
            for p in pinpoints)):
        raise ValueError(f"--image_grid_pinpoints must be a list of [width, height] pairs, got {raw!r}")
    return [list(p) for p in pinpoints]


def add_image_tokens(model, tokenizer, model_args) -> None:
    """LLaVA's optional `<im_patch>` / `<im_start>`, `<im_end>` tokens; new rows start at the mean embedding."""
    new_tokens = [DEFAULT_IMAGE_PATCH_TOKEN] if model_args.mm_use_im_patch_token else []
    if model_args.mm_use_im_start_end:
        new_tokens += [DEFAULT_IM_START_TOKEN, DEFAULT_IM_END_TOKEN]
    added = tokenizer.add_tokens(new_tokens, special_tokens=True) if new_tokens else 0
    if added == 0:
        return
    model.resize_token_embeddings(len(tokenizer))
    with torch.no_grad():
        for embeddings in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
            embeddings[-added:] = embeddings[:-added].mean(dim=0, keepdim=True)
    if model_args.tune_mm_mlp_adapter:
        model.get_input_embeddings().requires_grad_(True)
        model.get_output_embeddings().requires_grad_(False)


def load_tokenizer(model_args: ModelArguments, training_args: TrainingArguments):
    # The class the tokenizer files name, as the eval loader does (`model_type: llava` must not change the ids).
    tokenizer = load_declared_tokenizer(
        model_args.model_name_or_path,
        checkpoint_file,
        cache_dir=training_args.cache_dir,
        model_max_length=training_args.model_max_length,
        padding_side="right",
    )
    if tokenizer.pad_token is None:
        # LLaVA (v1 and later) pads with <unk>; padding is masked out of attention and labels.
        tokenizer.pad_token = tokenizer.unk_token
    return tokenizer


def save_trained_model(trainer: LLaVATrainer, model, tokenizer, training_args: TrainingArguments) -> None:
    """Stage 1: the projector only. LoRA: adapter + `non_lora_trainables.bin`. Otherwise the full model
    in LLaVA's layout, without the vision tower's weights (the config names the tower, as LLaVA's do)."""
    output_dir = training_args.output_dir
    model.config.use_cache = True
    trained_with = getattr(model.config, "DART_config", None)
    if trained_with is not None:  # what it was fine-tuned with, not what every later call must do
        model.config.trained_with_pruning = trained_with
        model.config.DART_config = None
    if training_args.tune_mm_mlp_adapter:
        save_projector(model, output_dir, training_args)
        return
    if training_args.lora_enable:
        # The projector always goes in: the base LLM on disk has none, whether it was trained here or not.
        non_lora = gather_state_dict(
            model, lambda name, p: "lora_" not in name and (p.requires_grad or "mm_projector" in name)
        )
        if training_args.local_rank in (0, -1):
            with portable_vision_tower(model.config, output_dir):
                model.config.save_pretrained(output_dir)
                model.save_pretrained(output_dir)
            torch.save(non_lora, os.path.join(output_dir, "non_lora_trainables.bin"))
        return
    trainer.accelerator.wait_for_everyone()
    if trainer.args.should_save:
        save_llava_checkpoint(trainer.model, tokenizer, output_dir)


def parse_train_args(argv: list[str] | None = None):
    """(model, data, training arguments, pruning DART_config or None). The pruning flags are the eval
    workers' (`--sparse --pruning_method dart --max_num_trunction 128 ...`): with `--sparse` the model trains
    with those settings applied in its forward (pruning-aware fine-tuning, docs/Training.md)."""
    parser = transformers.HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    add_pruning_args(parser, attention_flag=False)  # TrainingArguments has its own --attn_implementation
    # The flags no dataclass takes come back as one more namespace: the pruning ones.
    model_args, data_args, training_args, pruning_args = parser.parse_args_into_dataclasses(args=argv)
    return model_args, data_args, training_args, dart_config_from_args(pruning_args)


def train(attn_implementation: str | None = None, argv: list[str] | None = None) -> None:
    model_args, data_args, training_args, pruning = parse_train_args(argv)
    try:
        run(model_args, data_args, training_args, attn_implementation, pruning=pruning)
    except TrainingDataError as exc:  # the message says all there is to fix; a traceback would bury it
        raise SystemExit(f"error: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    train(argv=argv)


def run(model_args, data_args, training_args, attn_implementation: str | None = None,
        pruning: dict | None = None) -> LLaVATrainer:
    """Build, train and save; returns the trainer (tests read its state). `pruning`: a DART_config applied
    in every training forward (the loss is then over the kept positions); the saved config does not prune
    by default but records it as `trained_with_pruning`."""
    get_conv_template(model_args.version)  # fail now, not after loading the model, on an unknown template
    if model_args.tune_mm_mlp_adapter and model_args.vision_tower is None:
        raise ValueError("--tune_mm_mlp_adapter trains the projector only, so it needs --vision_tower")
    training_args.tune_mm_mlp_adapter = model_args.tune_mm_mlp_adapter  # the trainer decides what to save by it
    # Every sample checked before the model loads: a bad one must not surface minutes (or hours) into the run.
    samples = load_training_samples(data_args.data_path, data_args.image_folder, model_args.version,
                                    with_images=model_args.vision_tower is not None)
    model = build_model(model_args, training_args, attn_implementation)
    # The template it learns to answer in, for whoever loads the checkpoint (not guessed from its name).
    model.config.conv_template = model_args.version
    tokenizer = load_tokenizer(model_args, training_args)
    if model_args.vision_tower is not None:
        setup_vision(model, tokenizer, model_args, data_args, training_args)
    if pruning is not None:
        if model_args.vision_tower is None:
            raise ValueError("--sparse prunes image tokens while training, so it needs --vision_tower")
        model.config.DART_config = parse_pruning_settings(pruning, model.config.num_hidden_layers).to_dict()
    if training_args.lora_enable:
        model = apply_lora(model, training_args)
        if model_args.vision_tower is not None and not training_args.freeze_mm_mlp_adapter:
            model.get_model().mm_projector.requires_grad_(True)  # peft froze it; LLaVA trains it beside LoRA
        if model_args.unfreeze_mm_vision_tower:
            model.get_vision_tower().vision_tower.requires_grad_(True)  # as LLaVA-NeXT: the tower in full
    data_module = make_supervised_data_module(samples, tokenizer, data_args, model_args.version)
    trainer = LLaVATrainer(model=model, processing_class=tokenizer, args=training_args, **data_module)
    resume = any(pathlib.Path(training_args.output_dir).glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=resume or None)
    trainer.save_state()
    save_trained_model(trainer, model, tokenizer, training_args)
    return trainer


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
