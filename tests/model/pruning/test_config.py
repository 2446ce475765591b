"""DART_config validation: clear errors naming the key; the paper's defaults."""

import pytest

from llava.model.pruning import DARTConfig, PruningConfigError, make_dart_config, parse_dart_config


def test_defaults_are_the_papers():
    c = parse_dart_config(make_dart_config(), num_hidden_layers=32)
    assert (c.K, c.pivot_image_token, c.pivot_text_token, c.max_num_trunction, c.method) == (2, 4, 4, 128, "dart")
    assert c.reduction_ratio == pytest.approx(0.778)


def test_historical_dict_round_trips():
    raw = {
        "K": 3, "image_token_start_index": 35, "image_token_length": 576, "max_num_trunction": None,
        "reduction_ratio": 0.5, "retain_token_num_for_llava_next": 320, "pivot_image_token": 2, "pivot_text_token": 6,
    }
    c = parse_dart_config(raw, num_hidden_layers=32)
    assert isinstance(c, DARTConfig) and c.K == 3 and c.image_token_start_index == 35 and c.max_num_trunction is None
    assert parse_dart_config(c) == c


@pytest.mark.parametrize(
    "change, message",
    [
        ({"K": 0}, "'K'"),
        ({"K": 32}, r"1\.\.31"),
        ({"K": 2.5}, "'K'"),
        ({"pivot_image_token": -1}, "'pivot_image_token'"),
        ({"pivot_text_token": None}, "'pivot_text_token'"),
        ({"max_num_trunction": -5}, "'max_num_trunction'"),
        ({"reduction_ratio": 1.0}, r"\[0, 1\)"),
        ({"reduction_ratio": -0.1}, "'reduction_ratio'"),
        ({"reduction_ratio": "0.5"}, "'reduction_ratio'"),
        ({"method": "no_such_method"}, "unknown"),
        ({"typo_key": 1}, "unknown key"),
    ],
)
def test_bad_values_are_named(change, message):
    raw = {**make_dart_config(), **change}
    with pytest.raises(PruningConfigError, match=message):
        parse_dart_config(raw, num_hidden_layers=32)


def test_missing_keys_are_listed():
    raw = make_dart_config()
    del raw["pivot_text_token"], raw["K"]
    with pytest.raises(PruningConfigError, match=r"missing key\(s\) \['K', 'pivot_text_token'\]"):
        parse_dart_config(raw)


def test_not_a_dict():
    with pytest.raises(PruningConfigError, match="dict or None"):
        parse_dart_config([("K", 2)])


def test_make_dart_config_rejects_unknown_settings():
    with pytest.raises(PruningConfigError, match="unknown DART setting"):
        make_dart_config(ratio=0.5)


# The keys the DART release's Qwen2-VL / Qwen2.5-VL lmms-eval wrappers write: no LLaVA-1.6 budget, plus "Sparse".
QWEN_RELEASE_DICT = {
    "Sparse": True, "K": 2, "image_token_start_index": 0, "image_token_length": 0, "max_num_trunction": 128,
    "reduction_ratio": 0.778, "pivot_image_token": 4, "pivot_text_token": 4,
}


def test_a_key_the_family_does_not_read_may_be_missing():
    with pytest.raises(PruningConfigError, match="retain_token_num_for_llava_next"):
        parse_dart_config(QWEN_RELEASE_DICT, num_hidden_layers=28)
    c = parse_dart_config(QWEN_RELEASE_DICT, num_hidden_layers=28, unused_keys=("retain_token_num_for_llava_next",))
    assert (c.K, c.reduction_ratio, c.retain_token_num_for_llava_next) == (2, 0.778, None)
    with pytest.raises(PruningConfigError, match="unknown key"):
        parse_dart_config({**QWEN_RELEASE_DICT, "Sparce": True}, unused_keys=("retain_token_num_for_llava_next",))


def test_the_release_switch_is_checked_and_read():
    from llava.model.pruning.config import pruning_switched_off

    assert not pruning_switched_off(QWEN_RELEASE_DICT) and not pruning_switched_off(make_dart_config())
    assert pruning_switched_off({**QWEN_RELEASE_DICT, "Sparse": False})
    assert pruning_switched_off({**make_dart_config(), "sparse": False})
    with pytest.raises(PruningConfigError, match="'Sparse'.*true or false"):
        parse_dart_config({**make_dart_config(), "Sparse": "yes"})
