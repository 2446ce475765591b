"""A method owns its settings: its settings class parses and checks its DART_config keys, the shared settings
carry the result, and the flat DART_config dict (the answer files' fingerprint) is written as it always was."""

import dataclasses
import json

import pytest
import torch

from llava.model.pruning import (
    MethodSettings,
    PruningConfigError,
    PruningMethod,
    PruningSettings,
    get_method,
    make_dart_config,
    method_names,
    parse_pruning_settings,
    register_method,
)
from llava.model.pruning import methods as registry
from llava.model.pruning.dart import check_release_hints
from llava.model.pruning.methods import SplicedSample
from llava.model.pruning.pdrop import PDropSettings

# The DART_config keys in the order the dict has always had them (the fingerprint of the answer files hashes
# the dict): the DART release's eight, our method and seed, then PyramidDrop's stages when they are set.
HISTORICAL_KEYS = (
    "K", "image_token_start_index", "image_token_length", "max_num_trunction", "reduction_ratio",
    "retain_token_num_for_llava_next", "pivot_image_token", "pivot_text_token", "method", "seed",
    "pdrop_layers", "pdrop_ratios",
)
SHIPPED = ("dart", "fastv", "pdrop", "random", "visionzip", "divprune", "pooling")
# A user's dict with every shared key set away from its default, so a value taken from the wrong place shows.
NON_DEFAULT = {
    "K": 3, "image_token_start_index": 35, "image_token_length": 576, "max_num_trunction": 40,
    "reduction_ratio": 0.5, "retain_token_num_for_llava_next": 320, "pivot_image_token": 2, "pivot_text_token": 6,
    "seed": 7,
}


def expected_dict(raw: dict) -> dict:
    """What the DART_config dict of `raw` has always been: every historical key in order, None where unset
    (`method` defaulting to dart, `seed` to 0), the stages only when set, as lists."""
    out = {}
    for key in HISTORICAL_KEYS:
        value = raw.get(key, {"method": "dart", "seed": 0}.get(key))
        if key.startswith("pdrop_"):
            if value is None:
                continue
            kind = int if key == "pdrop_layers" else float
            value = [kind(item) for item in (value.split(",") if isinstance(value, str) else value)]
        out[key] = value
    return out


@pytest.mark.parametrize("method", SHIPPED)
@pytest.mark.parametrize("depth", [None, 32])
def test_to_dict_is_the_historical_dict_for_every_method(method, depth):
    raw = {**NON_DEFAULT, "method": method}
    if method == "pdrop":
        raw.update(pdrop_layers=[4, 9, 20], pdrop_ratios=[0.6, 0.3, 0.1])
    settings = parse_pruning_settings(raw, depth)
    assert json.dumps(settings.to_dict()) == json.dumps(expected_dict(raw))  # same keys, values and order
    again = parse_pruning_settings(settings.to_dict(), depth)
    assert again == settings and json.dumps(again.to_dict()) == json.dumps(settings.to_dict())
    assert parse_pruning_settings(settings, depth) == settings


@pytest.mark.parametrize("stages", [
    {"pdrop_ratios": "0.5,0.25"},  # ratios alone, as the flag gives them: the layers wait for the depth
    {"pdrop_layers": "2,5", "pdrop_ratios": "0.5,0.25"},
    {"pdrop_layers": (2, 5), "pdrop_ratios": (1, 0.5)},
])
def test_pdrop_stages_are_written_as_given_without_a_depth(stages):
    raw = {**make_dart_config(method="pdrop"), **stages}
    assert json.dumps(parse_pruning_settings(raw).to_dict()) == json.dumps(expected_dict(raw))


def test_a_methods_settings_are_built_by_its_own_class():
    assert get_method("pdrop").settings_class is PDropSettings
    pdrop = parse_pruning_settings(make_dart_config(method="pdrop", pdrop_layers="1,3", pdrop_ratios="0.5,0.25"), 4)
    assert type(pdrop.method_settings) is PDropSettings
    assert pdrop.method_settings == PDropSettings(pdrop_layers=(1, 3), pdrop_ratios=(0.5, 0.25))
    # The shared object holds none of PyramidDrop's fields.
    assert "pdrop_layers" not in {f for f in PruningSettings.__dataclass_fields__}
    assert not hasattr(pdrop, "pdrop_layers")
    for name in SHIPPED:
        if get_method(name).settings_class is None:
            assert parse_pruning_settings(make_dart_config(method=name), 4).method_settings is None


def test_pdrop_defaults_wait_for_the_depth():
    unresolved = PDropSettings.parse({}, None)
    assert unresolved == PDropSettings() and unresolved.to_dict() == {}
    assert PDropSettings.parse({}, 32) == PDropSettings((8, 16, 24), (0.5, 0.25, 0.125))
    with pytest.raises(PruningConfigError, match=r"DART_config\['pdrop_ratios'\]"):
        PDropSettings.parse({"pdrop_ratios": [0.5, 0.7]}, 32)


def test_keys_of_another_method_are_ignored():
    """Settings are layered (a worker's flags, a request's overrides): switching the method leaves the former
    method's keys behind, unread, and out of the dict."""
    plain = parse_pruning_settings(make_dart_config(), 32)
    for leftover in ({"pdrop_layers": [8], "pdrop_ratios": [0.5]}, {"pdrop_ratios": "not numbers"},
                     {"pdrop_layers": None, "pdrop_ratios": None}):
        settings = parse_pruning_settings({**make_dart_config(), **leftover}, 32)
        assert settings == plain and "pdrop_ratios" not in settings.to_dict()


def test_a_key_no_method_owns_is_still_an_error():
    with pytest.raises(PruningConfigError, match=r"unknown key\(s\) \['pdrop_stages'\]"):
        parse_pruning_settings({**make_dart_config(method="pdrop"), "pdrop_stages": [1]})
    with pytest.raises(PruningConfigError, match="unknown DART setting"):
        make_dart_config(pdrop_stages=[1])


def test_release_dicts_with_the_historical_keys_are_accepted():
    llava = {key: NON_DEFAULT[key] for key in HISTORICAL_KEYS[:8]}
    settings = parse_pruning_settings(llava, 32)
    assert settings.to_dict() == {**llava, "method": "dart", "seed": 0}
    qwen = {"Sparse": True, **{key: NON_DEFAULT[key] for key in HISTORICAL_KEYS[:8]
                               if key != "retain_token_num_for_llava_next"}}
    settings = parse_pruning_settings(qwen, 28, unused_keys=("retain_token_num_for_llava_next",))
    assert (settings.K, settings.max_num_trunction, settings.retain_token_num_for_llava_next) == (3, 40, None)


def test_the_historical_names_still_import():
    from llava.model.pruning import DARTConfig, parse_dart_config
    from llava.model.pruning.config import DARTConfig as config_module_name
    from llava.model.pruning.config import parse_dart_config as config_module_parse

    assert DARTConfig is PruningSettings is config_module_name
    assert parse_dart_config is parse_pruning_settings is config_module_parse
    assert DARTConfig(K=3).to_dict() == {**make_dart_config(), "K": 3}


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry as it is, restored after the test (methods registered in it do not leak)."""
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))


def _keep_all(inputs, cfg):
    start, count = inputs.span
    return torch.arange(start, start + count)


def test_a_new_method_brings_its_own_settings(scratch_registry):
    @dataclasses.dataclass(frozen=True)
    class Stride(MethodSettings):
        test_stride: int | None = None

        @classmethod
        def parse(cls, raw, num_hidden_layers):
            stride = raw.get("test_stride", 2)
            if not isinstance(stride, int) or stride < 1:
                raise PruningConfigError(f"DART_config['test_stride'] must be a positive integer, got {stride!r}")
            return cls(stride)

    register_method(PruningMethod("test-strided", _keep_all, settings_class=Stride))
    assert "test-strided" in method_names()
    settings = parse_pruning_settings(make_dart_config(method="test-strided", test_stride=3), 32)
    assert settings.method_settings == Stride(3) and settings.method_settings.test_stride == 3
    assert list(settings.to_dict())[-1] == "test_stride" and settings.to_dict()["test_stride"] == 3
    assert parse_pruning_settings(make_dart_config(method="test-strided"), 32).method_settings.test_stride == 2
    with pytest.raises(PruningConfigError, match=r"DART_config\['test_stride'\]"):
        parse_pruning_settings(make_dart_config(method="test-strided", test_stride=0), 32)
    # Its key is another method's for the others: ignored there.
    assert "test_stride" not in parse_pruning_settings(make_dart_config(test_stride=3), 32).to_dict()


@pytest.mark.parametrize("key", ["K", "seed", "Sparse", "pdrop_ratios"])
def test_a_settings_key_must_be_new(scratch_registry, key):
    clashing = dataclasses.make_dataclass("Clashing", [(key, int, dataclasses.field(default=None))],
                                          bases=(MethodSettings,), frozen=True)
    with pytest.raises(ValueError, match=f"already taken.*{key}"):
        register_method(PruningMethod("test-clashing", _keep_all, settings_class=clashing))
    assert "test-clashing" not in method_names()


def test_a_settings_class_must_be_method_settings():
    with pytest.raises(ValueError, match="MethodSettings subclass"):
        PruningMethod("test-bad-settings", _keep_all, settings_class=dict)


class _Config:
    text_length = None


def test_dart_checks_the_release_hints_against_the_splice():
    """The DART release's span hints and LLaVA-1.6 text_length, checked by DART's hook, not the engine."""
    sample = SplicedSample(spans=[(5, 576)], tokens=600, model_config=_Config())
    assert check_release_hints(sample, PruningSettings()) == ()
    assert check_release_hints(sample, PruningSettings(image_token_start_index=5, image_token_length=576)) == ()
    wrong_start, = check_release_hints(sample, PruningSettings(image_token_start_index=35))
    assert "image_token_start_index=35" in wrong_start and "start=5, length=576" in wrong_start
    wrong_length, = check_release_hints(sample, PruningSettings(image_token_length=144))
    assert "image_token_length=144" in wrong_length
    config = _Config()
    config.text_length = 20
    text, = check_release_hints(SplicedSample([(5, 576)], 600, config), PruningSettings())
    assert "config.text_length=20" in text and "24 text tokens" in text
    assert check_release_hints(SplicedSample([(5, 576)], 596, config), PruningSettings()) == ()
    assert check_release_hints(SplicedSample([], 20, config), PruningSettings(image_token_start_index=3)) == ()


def test_the_methods_inside_the_language_model_take_the_release_checks():
    """The engine no longer checks the hints itself; every shipped method that prunes inside the language model
    declares DART's check (as the engine ran it for all of them), the reducers none."""
    for name in SHIPPED:
        method = get_method(name)
        assert method.check_splice is (None if method.before_llm else check_release_hints), name
