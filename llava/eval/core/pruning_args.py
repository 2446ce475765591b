"""The pruning command-line flags shared by every worker and CLI, and the DART_config they produce.

The flags follow the one settings table, `llava.pruning_settings.SETTINGS` (the DART release's names, so
existing scripts run unchanged).
"""

from __future__ import annotations

import argparse
from typing import Any

from llava.model.pruning import make_dart_config, method_names, parse_pruning_settings
from llava.pruning_settings import ATTENTION_BACKENDS, SETTINGS, SPARSE_FLAG, dart_config_values


def add_pruning_args(parser: argparse.ArgumentParser, attention_flag: bool = True) -> argparse.ArgumentParser:
    """The pruning flags; `attention_flag`: also --attn_implementation (a parser that has its own leaves it out)."""
    group = parser.add_argument_group("token pruning (DART)")
    group.add_argument(f"--{SPARSE_FLAG}", action="store_true", help="enable visual-token pruning")
    if attention_flag:
        group.add_argument("--attn_implementation", default="sdpa", choices=list(ATTENTION_BACKENDS))
    for setting in SETTINGS:
        choices = method_names() if setting.key == "method" else None
        kind = _nullable(setting.kind) if setting.nullable else setting.kind
        group.add_argument(f"--{setting.name}", type=kind, default=setting.default, help=setting.help,
                           choices=choices)
    return parser


def _nullable(kind: type):
    """A flag type that also takes `none` (unset), e.g. `--max_num_trunction none` for the ratio budget."""

    def parse(text: str):
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its "invalid int value" message
    return parse


def dart_config_from_args(args: argparse.Namespace, num_hidden_layers: int | None = None) -> dict[str, Any] | None:
    """The `DART_config` dict for `model.config` (None without --sparse), validated against the model depth."""
    if not getattr(args, SPARSE_FLAG):
        return None
    raw = make_dart_config(**dart_config_values({s.name: getattr(args, s.name) for s in SETTINGS}))
    return parse_pruning_settings(raw, num_hidden_layers).to_dict()
