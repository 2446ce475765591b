"""The family registry: which family a config belongs to, and the shell scripts' copy of what it declares."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from llava.model.families import families, family_for
from llava.model.families import __main__ as families_cli

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("config, name", [
    (SimpleNamespace(model_type="llava_llama"), "llava"),
    (SimpleNamespace(model_type="llava_mistral"), "llava"),
    (SimpleNamespace(model_type="llava", vision_config=object()), "llava_hf"),
    (SimpleNamespace(model_type="llava_next", vision_config=object()), "llava_hf"),
    (SimpleNamespace(model_type="qwen2_vl"), "qwen_vl"),
    (SimpleNamespace(model_type="qwen2_5_vl"), "qwen_vl"),
    (SimpleNamespace(model_type="qwen3_vl"), "qwen3_vl"),
    (SimpleNamespace(model_type="qwen3_vl_moe"), "qwen3_vl"),
    (SimpleNamespace(model_type="llama"), "text"),  # a plain language model, as LLaVA's builder treats it
    (SimpleNamespace(model_type="llava"), "text"),  # "llava" without a vision_config is not llava-hf's
])
def test_each_config_finds_its_family(config, name):
    assert family_for(config).name == name


def _shell_value(name: str) -> str:
    (line,) = [line for line in (REPO / "scripts/eval_lib.sh").read_text().splitlines() if line.startswith(f"{name}=")]
    return line.split("=", 1)[1].strip("'")


def test_the_scripts_know_the_ratio_budget_families_the_registry_declares():
    ratio = [family for family in families() if family.ratio_budget]
    assert set(_shell_value("RATIO_BUDGET_MODEL_TYPES").split("|")) == {t for f in ratio for t in f.model_types}
    # One alternative per family (no family's pattern has a top-level "|").
    assert set(_shell_value("RATIO_BUDGET_HUB_IDS").split("|")) == {f.hub_name_pattern for f in ratio}
    hub_ids = re.compile(_shell_value("RATIO_BUDGET_HUB_IDS"))
    assert hub_ids.search("qwen/qwen2.5-vl-7b-instruct") and hub_ids.search("qwen/qwen3-vl-8b-instruct")
    assert not hub_ids.search("liuhaotian/llava-v1.5-7b")


def test_the_command_line_names_a_hub_checkpoints_family_by_its_id_when_its_config_is_unreadable():
    assert families_cli.family_by_hub_id("Qwen/Qwen2-VL-7B-Instruct").name == "qwen_vl"
    assert families_cli.family_by_hub_id("Qwen/Qwen3-VL-8B-Instruct").name == "qwen3_vl"
    assert families_cli.family_by_hub_id("liuhaotian/llava-v1.5-7b") is None
    assert families_cli.family_by_hub_id("/local/qwen2-vl") is None  # a path is never guessed from its name


def test_list_names_every_family(capsys):
    assert families_cli.main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(f"{family.name}:" in listed for family in families())
