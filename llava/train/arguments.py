"""Command-line arguments of LLaVA training (names as in LLaVA, so its scripts keep working)."""

from __future__ import annotations

import dataclasses

import transformers


@dataclasses.dataclass
class ModelArguments:
    model_name_or_path: str | None = dataclasses.field(default=None)
    version: str = dataclasses.field(default="v1", metadata={"help": "conversation template: plain (stage 1), v1, ..."})
    freeze_backbone: bool = dataclasses.field(default=False)
    tune_mm_mlp_adapter: bool = dataclasses.field(default=False, metadata={"help": "train the projector only"})
    vision_tower: str | None = dataclasses.field(default=None)
    unfreeze_mm_vision_tower: bool = dataclasses.field(
        default=False, metadata={"help": "train the vision tower with the rest (LLaVA-NeXT's flag); its weights are "
                                         "then saved inside the checkpoint, as the released LLaVA-1.6 ones are"}
    )
    mm_vision_select_layer: int = dataclasses.field(default=-1)
    pretrain_mm_mlp_adapter: str | None = dataclasses.field(default=None, metadata={"help": "stage-1 mm_projector file"})
    mm_projector_type: str = dataclasses.field(default="linear")
    mm_use_im_start_end: bool = dataclasses.field(default=False)
    mm_use_im_patch_token: bool = dataclasses.field(default=True)
    mm_patch_merge_type: str = dataclasses.field(default="flat", metadata={"help": "flat, spatial or spatial_unpad (1.6)"})
    mm_vision_select_feature: str = dataclasses.field(default="patch")
    image_grid_pinpoints: str | None = dataclasses.field(
        default=None, metadata={"help": "anyres grid resolutions, e.g. '[[336, 672], [672, 336], [672, 672]]' (1.6)"}
    )


@dataclasses.dataclass
class DataArguments:
    data_path: str | None = dataclasses.field(default=None, metadata={"help": "LLaVA conversation JSON"})
    lazy_preprocess: bool = False
    is_multimodal: bool = False
    image_folder: str | None = dataclasses.field(default=None)
    image_aspect_ratio: str = dataclasses.field(default="square", metadata={"help": "square, pad or anyres (1.6)"})
    train_on_prompt: bool = dataclasses.field(
        default=False, metadata={"help": "label the prompt's text tokens too, not only the answers (plain: already so)"}
    )


@dataclasses.dataclass
class TrainingArguments(transformers.TrainingArguments):
    cache_dir: str | None = dataclasses.field(default=None)
    optim: str = dataclasses.field(default="adamw_torch")
    remove_unused_columns: bool = dataclasses.field(default=False)
    freeze_mm_mlp_adapter: bool = dataclasses.field(default=False)
    mpt_attn_impl: str | None = dataclasses.field(default="triton")
    model_max_length: int = dataclasses.field(
        default=512, metadata={"help": "Maximum sequence length. Sequences are right padded (and possibly truncated)."}
    )
    double_quant: bool = dataclasses.field(default=True)
    quant_type: str = dataclasses.field(default="nf4", metadata={"help": "fp4 or nf4"})
    bits: int = dataclasses.field(default=16, metadata={"help": "How many bits to use."})
    lora_enable: bool = False
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_weight_path: str = ""
    lora_bias: str = "none"
    mm_projector_lr: float | None = None
    mm_vision_tower_lr: float | None = dataclasses.field(
        default=None, metadata={"help": "the vision tower's own learning rate (with --unfreeze_mm_vision_tower)"}
    )
    group_by_modality_length: bool = dataclasses.field(default=False)
    attn_implementation: str = dataclasses.field(default="sdpa", metadata={"help": "eager, sdpa or flash_attention_2"})
    # Removed from transformers 5; accepted here so LLaVA's scripts run unchanged.
    warmup_ratio: float | None = dataclasses.field(default=None, metadata={"help": "alias: a float warmup_steps"})
    evaluation_strategy: str | None = dataclasses.field(default=None, metadata={"help": "alias of eval_strategy"})

    def __post_init__(self):
        if self.warmup_ratio is not None:
            self.warmup_steps = self.warmup_ratio
        if self.evaluation_strategy is not None:
            self.eval_strategy = self.evaluation_strategy
        super().__post_init__()
