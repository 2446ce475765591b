"""Tiny seeded Qwen2-VL and Qwen2.5-VL models, shaped like the released ones but small enough for tests.

    config = tiny_qwen_config("qwen2_vl")                      # or "qwen2_5_vl"
    model = build_tiny_qwen_model("qwen2_5_vl", seed=0)        # random init, float32, with pruning support

What is kept from the real models: grouped-query attention (4 query heads, 2 key/value heads), M-RoPE with
three sections, a vision tower with 14-pixel patches, temporal patches of 2 and `spatial_merge_size` 2 (every
2 x 2 patches become one LLM token), and for Qwen2.5-VL windowed and full-attention vision blocks. The special
tokens are the real ones (`<|vision_start|>`, `<|image_pad|>`, ...) at the end of a 512-token vocabulary.
"""

from __future__ import annotations

import torch
from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

FAMILIES = ("qwen2_vl", "qwen2_5_vl")
VOCAB_SIZE = 512
# The real special tokens, in the real order, at the end of the tiny vocabulary.
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
SPECIAL_IDS = {token: VOCAB_SIZE - len(SPECIAL_TOKENS) + i for i, token in enumerate(SPECIAL_TOKENS)}
PATCH_SIZE, TEMPORAL_PATCH_SIZE, MERGE_SIZE = 14, 2, 2
# One flattened patch: channels x temporal patch x patch x patch.
PATCH_VALUES = 3 * TEMPORAL_PATCH_SIZE * PATCH_SIZE * PATCH_SIZE


def _text_config(attn_implementation: str) -> dict:
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
    # Windows of 56 pixels (2 x 2 merged tokens); blocks 1 and 3 attend over the whole image.
    return {**common, "depth": 4, "hidden_size": 32, "intermediate_size": 64, "out_hidden_size": 64,
            "window_size": 56, "fullatt_block_indexes": [1, 3], "tokens_per_second": 2}


def tiny_qwen_config(family: str, attn_implementation: str = "sdpa") -> Qwen2VLConfig | Qwen2_5_VLConfig:
    if family not in FAMILIES:
        raise ValueError(f"unknown Qwen family {family!r}; choose one of {FAMILIES}")
    config_class = Qwen2VLConfig if family == "qwen2_vl" else Qwen2_5_VLConfig
    config = config_class(
        text_config=_text_config(attn_implementation), vision_config=_vision_config(family),
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
