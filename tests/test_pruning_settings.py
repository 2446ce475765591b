"""Every place a user sets pruning follows the one settings table (`llava.pruning_settings`)."""

import argparse
import re
from pathlib import Path

import pytest

from llava.eval.pruning_args import add_pruning_args, dart_config_from_args
from llava.model.pruning import method_names, parse_dart_config
from llava.pruning_settings import BY_NAME, SETTINGS, SPARSE_FLAG
from llava.serve.gradio_web_server import BUDGET_MAX_KEPT, BUDGET_RATIO, GenerationSettings
from llava.serve.protocol import DartOverrides

REPO = Path(__file__).resolve().parents[1]
BESIDE_THE_TABLE = {SPARSE_FLAG, "attn_implementation"}


def _parser() -> argparse.ArgumentParser:
    return add_pruning_args(argparse.ArgumentParser())


def test_cli_flags_are_the_table():
    flags = {action.dest for action in _parser()._actions if action.dest != "help"}
    assert flags == {setting.name for setting in SETTINGS} | BESIDE_THE_TABLE


def test_cli_defaults_give_the_table_defaults_as_dart_config():
    args = _parser().parse_args(["--sparse"])
    config = dart_config_from_args(args, num_hidden_layers=32)
    expected = parse_dart_config({s.key: s.default for s in SETTINGS}, 32).to_dict()
    assert config == expected
    assert config["K"] == 2 and config["method"] == "dart"


def test_sparse_alone_is_the_releases_setting_everywhere():
    """--sparse alone, make_dart_config() and the scripts keep the same 132 of 576 tokens (M = 128)."""
    from llava.model.pruning import make_dart_config

    cli = parse_dart_config(dart_config_from_args(_parser().parse_args(["--sparse"]), 32), 32)
    api = parse_dart_config(make_dart_config(), 32)
    assert cli == api and cli.max_num_trunction == 128
    assert 4 + 8 * cli.budget_per_pivot(576) == 132
    ratio = parse_dart_config(dart_config_from_args(_parser().parse_args(["--sparse", "--max_num_trunction", "none"]),
                                                    32), 32)
    assert ratio.max_num_trunction is None and 4 + 8 * ratio.budget_per_pivot(576) == 124  # int(576 * 0.222 / 8)
    with pytest.raises(SystemExit):
        _parser().parse_args(["--max_num_trunction", "many"])


def test_method_flag_offers_every_registered_method():
    parser = _parser()
    for name in method_names():
        assert parser.parse_args(["--pruning_method", name]).pruning_method == name
    with pytest.raises(SystemExit):
        parser.parse_args(["--pruning_method", "no-such-method"])


def test_request_model_fields_are_the_per_request_settings():
    per_request = {s.name for s in SETTINGS if s.per_request}
    assert set(DartOverrides.model_fields) == per_request | {SPARSE_FLAG}
    assert "image_token_start_index" not in DartOverrides.model_fields


def test_request_model_ranges_follow_the_table():
    DartOverrides(reduction_ratio=0.0, pruned_layer=1)
    with pytest.raises(ValueError):
        DartOverrides(reduction_ratio=BY_NAME["reduction_ratio"].maximum)
    with pytest.raises(ValueError):
        DartOverrides(pruned_layer=BY_NAME["pruned_layer"].minimum - 1)
    with pytest.raises(ValueError):
        DartOverrides(pivot_image_token=BY_NAME["pivot_image_token"].maximum + 1)


@pytest.mark.parametrize("budget_mode", [BUDGET_MAX_KEPT, BUDGET_RATIO])
def test_gradio_request_uses_table_names_and_validates(budget_mode):
    request = GenerationSettings(budget_mode=budget_mode).dart_request()
    assert set(request) - {SPARSE_FLAG} <= {s.name for s in SETTINGS if s.per_request}
    DartOverrides(**request)


def test_every_registered_method_has_a_label_the_demo_offers():
    from llava.pruning_settings import METHOD_LABELS

    from llava.model.pruning import get_method

    def shipped(name):  # not the ones other tests register
        method = get_method(name)
        return (method.select or method.reduce).__module__.startswith("llava.model.pruning.")

    assert sorted(METHOD_LABELS) == [name for name in method_names() if shipped(name)]
    assert GenerationSettings().pruning_method == BY_NAME["pruning_method"].default


def test_gradio_defaults_are_the_table_defaults():
    settings = GenerationSettings()
    for name in ("pruned_layer", "reduction_ratio", "pivot_image_token", "pivot_text_token"):
        assert getattr(settings, name) == BY_NAME[name].default, name


def test_eval_lib_dart_flags_parse_with_the_worker_parser():
    text = (REPO / "scripts" / "eval_lib.sh").read_text()
    lines = [line for line in text.splitlines() if "DART_ARGS" in line and "--" in line]
    assert lines, "DART_ARGS assignments not found in scripts/eval_lib.sh"
    flags = set(re.findall(r"--(\w+)", "\n".join(lines)))
    assert flags <= {s.name for s in SETTINGS} | BESIDE_THE_TABLE
    argv = []
    for flag in sorted(flags):
        action = next(a for a in _parser()._actions if a.dest == flag)
        argv.append(f"--{flag}")
        if action.nargs != 0:
            argv.append("dart" if flag == "pruning_method" else "eager" if flag == "attn_implementation" else "1")
    _parser().parse_args(argv)
