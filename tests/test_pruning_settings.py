"""Every place a user sets pruning follows the one settings table (`llava.pruning_settings`)."""

import argparse
import re
from pathlib import Path

import pytest

from llava.eval.core.pruning_args import add_pruning_args, dart_config_from_args
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


# -- the defaults live in the table; everything that restates one is checked against it ---------------------


def test_the_settings_dataclasses_take_their_defaults_from_the_table():
    import dataclasses

    from llava.model.pruning import PruningSettings, get_method

    shared = {f.name: f.default for f in dataclasses.fields(PruningSettings)}
    for setting in SETTINGS:
        if setting.method is None:
            assert shared[setting.key] == setting.default, setting.name
        else:
            own = get_method(setting.method).settings_class
            assert {f.name: f.default for f in dataclasses.fields(own)}[setting.key] == setting.default, setting.name


def test_a_methods_own_settings_are_its_rows_of_the_table():
    """Each method's settings class declares exactly the table's rows that name the method, and no shared
    row names a key some method owns."""
    from llava.model.pruning import get_method

    for name in method_names():
        own = get_method(name).settings_class
        if own is None or not own.__module__.startswith("llava."):  # tests register methods of their own
            continue
        assert set(own.keys()) == {s.key for s in SETTINGS if s.method == name}, name
    for setting in SETTINGS:
        if setting.method is not None:
            assert setting.method in method_names() and setting.name.startswith(setting.method), setting.name


def _shell_default(text: str, variable: str) -> str:
    """The default of `VARIABLE=${N:-default}` in a shell script."""
    match = re.search(rf"^{variable}=\$\{{\d+:-([^}}]+)\}}", text, re.MULTILINE)
    assert match, f"{variable}=${{N:-...}} not found"
    return match.group(1)


def _shell_flag_values(text: str, pattern: str) -> dict[str, str]:
    return dict(re.findall(pattern, text))


def test_eval_lib_defaults_are_the_table_defaults():
    text = (REPO / "scripts" / "eval_lib.sh").read_text()
    assert float(_shell_default(text, "RATIO")) == BY_NAME["reduction_ratio"].default
    max_kept = re.search(r"^\s*1\.5\).*DEFAULT_MAX_KEPT=(\d+)", text, re.MULTILINE)
    assert max_kept and int(max_kept.group(1)) == BY_NAME["max_num_trunction"].default
    assert re.search(r"METHOD=\$\{PRUNING_METHOD:-(\w+)\}", text).group(1) == BY_NAME["pruning_method"].default
    flags = _shell_flag_values("\n".join(line for line in text.splitlines() if "DART_ARGS" in line or "--" in line),
                               r"--(\w+) (\d+)\b")
    for name in ("pruned_layer", "pivot_image_token", "pivot_text_token"):
        assert int(flags[name]) == BY_NAME[name].default, name


def test_lmms_eval_lib_defaults_are_the_table_defaults():
    text = (REPO / "scripts" / "lmms_eval_lib.sh").read_text()
    assert float(_shell_default(text, "RATIO")) == BY_NAME["reduction_ratio"].default
    assert int(_shell_default(text, "MAX_KEPT")) == BY_NAME["max_num_trunction"].default
    model_args = _shell_flag_values(text, r"[,\"](\w+)=(\d+)\b")
    for name in ("pruned_layer", "pivot_image_token", "pivot_text_token"):
        assert int(model_args[name]) == BY_NAME[name].default, name


def test_sweep_budgets_follow_the_table():
    """The sweep's pivots and the ratio it hands the scripts next to a token budget are the defaults, and its
    budgets keep the count the settings keep."""
    from llava.eval import sweep
    from llava.model.pruning import make_dart_config
    from llava.model.pruning.config import dart_kept_count

    assert sweep.IMAGE_PIVOTS == BY_NAME["pivot_image_token"].default
    assert sweep.PIVOTS == BY_NAME["pivot_image_token"].default + BY_NAME["pivot_text_token"].default
    ratio, max_kept = sweep.Budget(tokens=132).script_args()
    assert float(ratio) == BY_NAME["reduction_ratio"].default
    for tokens in (64, 128, 132, 192):
        settings = parse_dart_config(make_dart_config(max_num_trunction=sweep.dart_family_budget(tokens)), 32)
        assert sweep.kept_for(tokens) == dart_kept_count(576, settings) <= tokens


def test_the_sweeps_unpruned_run_hands_the_scripts_the_table_defaults(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from llava.eval import sweep

    class Ran(Exception):
        pass

    def capture(argv, **kwargs):
        raise Ran(argv)

    monkeypatch.setattr(sweep.subprocess, "run", capture)
    args = SimpleNamespace(max_new_tokens=8, eval_args="", data_root=str(tmp_path), ckpt=None, llava_version="1.5",
                           image_tokens=576,
                           name_prefix="t", out=str(tmp_path))
    with pytest.raises(Ran) as ran:
        sweep.run_point("pope", None, None, args)
    ratio, max_kept = ran.value.args[0][-2:]
    assert float(ratio) == BY_NAME["reduction_ratio"].default
    assert int(max_kept) == BY_NAME["max_num_trunction"].default
