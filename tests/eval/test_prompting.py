"""Which conversation template a LLaVA checkpoint is prompted with, and why."""

import logging
from types import SimpleNamespace

import pytest

from llava.conversation import UnknownTemplateError
from llava.eval.core.prompting import choose_conv_mode


def test_the_recorded_template_beats_the_name_guess(caplog):
    # A fine-tuned checkpoint named without "v1" would be guessed llava_v0 from its name.
    config = SimpleNamespace(conv_template="v1")
    with caplog.at_level(logging.INFO, logger="llava.eval.core.prompting"):
        assert choose_conv_mode(None, config, "my-finetune") == "v1"
    assert "conversation template v1 (recorded in the checkpoint's config.json)" in caplog.text


def test_without_a_record_the_name_decides_and_the_log_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="llava.eval.core.prompting"):
        assert choose_conv_mode(None, SimpleNamespace(), "llava-v1.5-7b") == "llava_v1"
        assert choose_conv_mode(None, SimpleNamespace(conv_template=None), "my-finetune") == "llava_v0"
    assert "conversation template llava_v0 (guessed from the name 'my-finetune'" in caplog.text
    assert "pass --conv-mode to choose" in caplog.text


def test_an_explicit_choice_wins_and_a_conflict_is_a_warning(caplog):
    with caplog.at_level(logging.INFO, logger="llava.eval.core.prompting"):
        assert choose_conv_mode("vicuna_v1", SimpleNamespace(conv_template="v1"), "x") == "vicuna_v1"
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == "conversation template vicuna_v1 (--conv-mode); the checkpoint was trained with v1"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="llava.eval.core.prompting"):
        assert choose_conv_mode("v1", SimpleNamespace(conv_template="v1"), "x") == "v1"
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("requested, recorded", [("no_such_template", None), (None, "no_such_template")])
def test_an_unknown_template_is_named(requested, recorded):
    with pytest.raises(UnknownTemplateError, match="Unknown conversation template 'no_such_template'; valid names: "):
        choose_conv_mode(requested, SimpleNamespace(conv_template=recorded), "x")
