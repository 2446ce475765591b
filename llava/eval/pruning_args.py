"""The DART command-line flags shared by every worker and CLI, and the DART_config they produce."""

from __future__ import annotations

import argparse
from typing import Any

from llava.model.pruning import make_dart_config, parse_dart_config


def add_pruning_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of the DART release (names kept so existing scripts run unchanged)."""
    group = parser.add_argument_group("token pruning (DART)")
    group.add_argument("--sparse", action="store_true", help="enable visual-token pruning")
    group.add_argument("--attn_implementation", default="sdpa", choices=["eager", "sdpa", "flash_attention_2"])
    group.add_argument("--pruned_layer", type=int, default=2, help="K: prune after decoder layer K-1")
    group.add_argument(
        "--image_token_start_index", type=int, default=None,
        help="expected image start (checked against the actual splice; the splice wins)",
    )
    group.add_argument("--image_token_length", type=int, default=None, help="expected number of image tokens (checked)")
    group.add_argument("--max_num_trunction", type=int, default=None, help="image tokens selected besides the pivots")
    group.add_argument("--reduction_ratio", type=float, default=0.778, help="used when --max_num_trunction is unset")
    group.add_argument("--pivot_image_token", type=int, default=4)
    group.add_argument("--pivot_text_token", type=int, default=4)
    group.add_argument("--retain_token_num_for_llava_next", type=int, default=None, help="budget for LLaVA-1.6 anyres")
    group.add_argument("--pruning_method", default="dart", help="dart (default) or random (baseline)")
    return parser


def dart_config_from_args(args: argparse.Namespace, num_hidden_layers: int | None = None) -> dict[str, Any] | None:
    """The `DART_config` dict for `model.config` (None without --sparse), validated against the model depth."""
    if not args.sparse:
        return None
    raw = make_dart_config(
        K=args.pruned_layer,
        image_token_start_index=args.image_token_start_index,
        image_token_length=args.image_token_length,
        max_num_trunction=args.max_num_trunction,
        reduction_ratio=args.reduction_ratio,
        retain_token_num_for_llava_next=args.retain_token_num_for_llava_next,
        pivot_image_token=args.pivot_image_token,
        pivot_text_token=args.pivot_text_token,
        method=args.pruning_method,
    )
    return parse_dart_config(raw, num_hidden_layers).to_dict()
