"""Tiny seeded Qwen2-VL, Qwen2.5-VL and Qwen3-VL models, shaped like the released ones but small enough for tests.

    config = tiny_qwen_config("qwen2_vl")                      # or "qwen2_5_vl", "qwen3_vl"
    model = build_tiny_qwen_model("qwen2_5_vl", seed=0)        # random init, float32, with pruning support
    build_tiny_qwen_checkpoint(out_dir, "qwen2_vl")            # the hub layout: config, weights, tokenizer,
                                                               # chat template, image processor config

What is kept from the real models: grouped-query attention (4 query heads, 2 key/value heads), M-RoPE with
three sections, a vision tower with 14-pixel patches, temporal patches of 2 and `spatial_merge_size` 2 (every
2 x 2 patches become one LLM token), and for Qwen2.5-VL windowed and full-attention vision blocks. Qwen3-VL
keeps its own differences: 16-pixel patches, q / k norms in the text attention, interleaved M-RoPE, a learned
position embedding in the tower and DeepStack (features of three tower blocks added to the hidden states of the
image tokens after text layers 0, 1 and 2, as the 8B adds blocks 8, 16 and 24). The special tokens are the real
ones (`<|vision_start|>`, `<|image_pad|>`, ...) in a vocabulary of at most 512 tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig, Qwen3VLMoeConfig

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
VOCAB_SIZE = 512
# The real special tokens, in the real order, first in the tiny vocabulary (ids 0..13).
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
SPECIAL_IDS = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
PATCH_SIZE, TEMPORAL_PATCH_SIZE, MERGE_SIZE = 14, 2, 2
QWEN3_PATCH_SIZE = 16


def patch_size(family: str) -> int:
    return QWEN3_PATCH_SIZE if family.startswith("qwen3_vl") else PATCH_SIZE


def patch_values(family: str) -> int:
    """The length of one flattened patch: channels x temporal patch x patch x patch."""
    return 3 * TEMPORAL_PATCH_SIZE * patch_size(family) ** 2


PATCH_VALUES = patch_values("qwen2_vl")


def _text_config(family: str, attn_implementation: str) -> dict:
    if family == "qwen3_vl_moe":  # 4 experts of which each token takes 2, in every layer
        return {**_text_config("qwen3_vl", attn_implementation), "num_experts": 4, "num_experts_per_tok": 2,
                "moe_intermediate_size": 32, "decoder_sparse_step": 1, "mlp_only_layers": []}
    if family == "qwen3_vl":
        # head_dim 16 (8 frequencies): interleaved sections of 4 / 2 / 2, as the 8B's [24, 20, 20] of 64 frequencies
        # give height and width every third frequency and time the rest.
        return {**_text_config("qwen2_vl", attn_implementation), "head_dim": 16,
                "rope_parameters": {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [4, 2, 2],
                                    "mrope_interleaved": True}}
    return {
        "vocab_size": VOCAB_SIZE, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6, "use_sliding_window": False,
        # head_dim 16: the three M-RoPE sections (temporal, height, width) split its 8 frequencies.
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
        "bos_token_id": SPECIAL_IDS["<|endoftext|>"], "eos_token_id": SPECIAL_IDS["<|im_end|>"],
        "pad_token_id": SPECIAL_IDS["<|endoftext|>"], "attn_implementation": attn_implementation,
    }


def _vision_config(family: str) -> dict:
    common = {"patch_size": PATCH_SIZE, "temporal_patch_size": TEMPORAL_PATCH_SIZE, "spatial_merge_size": MERGE_SIZE,
              "in_channels": 3, "num_heads": 2}
    if family == "qwen2_vl":
        return {**common, "depth": 2, "embed_dim": 32, "hidden_size": 64, "mlp_ratio": 2}
    if family.startswith("qwen3_vl"):
        # 16 learned positions (a 4 x 4 grid, interpolated to each image's grid); DeepStack from every block.
        return {**common, "patch_size": QWEN3_PATCH_SIZE, "depth": 3, "hidden_size": 32, "intermediate_size": 64,
                "out_hidden_size": 64, "num_position_embeddings": 16, "deepstack_visual_indexes": [0, 1, 2],
                "hidden_act": "gelu_pytorch_tanh"}
    # Windows of 56 pixels (2 x 2 merged tokens); blocks 1 and 3 attend over the whole image.
    return {**common, "depth": 4, "hidden_size": 32, "intermediate_size": 64, "out_hidden_size": 64,
            "window_size": 56, "fullatt_block_indexes": [1, 3], "tokens_per_second": 2}


CONFIG_CLASSES = {"qwen2_vl": Qwen2VLConfig, "qwen2_5_vl": Qwen2_5_VLConfig, "qwen3_vl": Qwen3VLConfig,
                  "qwen3_vl_moe": Qwen3VLMoeConfig}  # the MoE variant is tested on its own (test_qwen3_vl.py)


def tiny_qwen_config(family: str, attn_implementation: str = "sdpa") -> Qwen2VLConfig | Qwen2_5_VLConfig | Qwen3VLConfig:
    if family not in CONFIG_CLASSES:
        raise ValueError(f"unknown Qwen family {family!r}; choose one of {list(CONFIG_CLASSES)}")
    config = CONFIG_CLASSES[family](
        text_config=_text_config(family, attn_implementation), vision_config=_vision_config(family),
        image_token_id=SPECIAL_IDS["<|image_pad|>"], video_token_id=SPECIAL_IDS["<|video_pad|>"],
        vision_start_token_id=SPECIAL_IDS["<|vision_start|>"], vision_end_token_id=SPECIAL_IDS["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    config._attn_implementation = attn_implementation
    return config


def build_tiny_qwen_model(family: str, seed: int = 0, attn_implementation: str = "sdpa"):
    """A seeded random-init model of `family` with pruning support, float32, in eval mode."""
    from llava.model.language_model.qwen_vl import QWEN_CLASSES

    torch.manual_seed(seed)
    return QWEN_CLASSES[family](tiny_qwen_config(family, attn_implementation)).eval()


# Qwen2-VL's chat format: a default system turn, an image as <|vision_start|><|image_pad|><|vision_end|>
# (the processor repeats <|image_pad|> once per merged patch), the assistant turn opened by the generation prompt.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL's chat format for the conversations our prompts hold (Qwen3-VL-8B-Instruct's template, without its
# tool-calling and reasoning branches [UNVERIFIED: reconstructed from its rendering]): no default system turn,
# images and videos as <|vision_start|><|image_pad|><|vision_end|> / <|video_pad|>, text items in order.
QWEN3_CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}"
    "{%- if add_vision_id %}{{- 'Picture ' ~ image_count.value ~ ': ' }}{%- endif %}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif content['type'] == 'video' or 'video' in content %}"
    "{%- set video_count.value = video_count.value + 1 %}"
    "{%- if add_vision_id %}{{- 'Video ' ~ video_count.value ~ ': ' }}{%- endif %}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in content %}{{- content['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
CHAT_TEMPLATES = {"qwen2_vl": CHAT_TEMPLATE, "qwen2_5_vl": CHAT_TEMPLATE, "qwen3_vl": QWEN3_CHAT_TEMPLATE}

# What the tiny byte-level BPE is trained on: the words of short visual questions and answers.
_CORPUS = (
    "What is shown in the image? Describe the picture. What colour is the square? Is there a red circle in "
    "the image? Answer the question using a single word or phrase. Yes. No. How many objects are there? "
    "Which shape is on the left of the blue triangle? The green star is above the yellow disc. A small black "
    "square, a large white circle and two grey rectangles on a plain background. Answer with the option's "
    "letter from the given choices directly. A. B. C. D. one two three four five left right top bottom middle"
)


def build_tiny_tokenizer(chat_template: str = CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    """A byte-level BPE of at most 512 tokens, the first 14 of them Qwen2's special tokens, with `chat_template`
    (Qwen2-VL's by default)."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, show_progress=False, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([_CORPUS] * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left",
        chat_template=chat_template, model_max_length=32768,
    )
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    if ids != [SPECIAL_IDS[t] for t in SPECIAL_TOKENS]:
        raise RuntimeError(f"the special tokens got ids {ids}, expected {list(SPECIAL_IDS.values())}")
    return tokenizer


# Small images for small models: 4..64 merged tokens per image (the released models allow far more).
IMAGE_PROCESSOR = {
    "image_processor_type": "Qwen2VLImageProcessor", "patch_size": PATCH_SIZE, "temporal_patch_size": TEMPORAL_PATCH_SIZE,
    "merge_size": MERGE_SIZE, "min_pixels": 4 * 28 * 28, "max_pixels": 64 * 28 * 28,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
}


def image_processor_config(family: str) -> dict:
    """The tiny image processor of `family`: 4..64 merged tokens per image. Qwen3-VL's patches are 16 pixels
    (a merged token covers 32) and it normalises with mean = std = 0.5."""
    if family != "qwen3_vl":
        return dict(IMAGE_PROCESSOR)
    side = QWEN3_PATCH_SIZE * MERGE_SIZE
    return {**IMAGE_PROCESSOR, "patch_size": QWEN3_PATCH_SIZE, "min_pixels": 4 * side * side,
            "max_pixels": 64 * side * side, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


PROCESSOR_CLASSES = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor", "qwen3_vl": "Qwen3VLProcessor"}


def build_tiny_qwen_checkpoint(out_dir, family: str, seed: int = 0) -> Path:
    """Write a tiny `family` checkpoint in the hub layout (what `Qwen/Qwen2-VL-7B-Instruct` holds, only tiny):
    config.json, generation_config.json, model.safetensors, the tokenizer files with the chat template, and
    preprocessor_config.json for the image processor."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        model = build_tiny_qwen_model(family, seed=seed)
    model.save_pretrained(out)
    build_tiny_tokenizer(CHAT_TEMPLATES[family]).save_pretrained(out)
    processor = {**image_processor_config(family), "processor_class": PROCESSOR_CLASSES[family]}
    (out / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    return out
