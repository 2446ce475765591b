"""What an lmms-eval run tells about pruning: lmms-eval's own `--model llava` loads through our loader, which says
whether the loaded model prunes (and with which settings), and our log lines reach lmms-eval's log."""

import logging

import pytest
from loguru import logger as loguru_logger

from llava.constants import DEFAULT_MODEL_PATH
from llava.lmms_plugin.logs import send_logs_to_lmms_eval
from llava.model.builder import load_pretrained_model

DART = {"K": 2, "image_token_start_index": None, "image_token_length": None, "max_num_trunction": 64,
        "reduction_ratio": 0.778, "retain_token_num_for_llava_next": None, "pivot_image_token": 4,
        "pivot_text_token": 4}


def pruning_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "llava.model.builder" and "prun" in r.getMessage()]


def test_lmms_evals_llava_load_says_which_pruning_its_customized_config_applies(caplog):
    """lmms-eval's `llava` calls load_pretrained_model(..., multimodal=True, customized_config=...)."""
    with caplog.at_level(logging.INFO, logger="llava"):
        load_pretrained_model(DEFAULT_MODEL_PATH, None, device="cpu", multimodal=True,
                              customized_config={"DART_config": DART})
    (line,) = pruning_lines(caplog)
    assert "DART prunes every call" in line and "K=2" in line and "max_num_trunction=64" in line


def test_lmms_evals_llava_load_without_a_dart_config_says_it_does_not_prune(caplog):
    with caplog.at_level(logging.INFO, logger="llava"):
        load_pretrained_model(DEFAULT_MODEL_PATH, None, device="cpu", multimodal=True)
    (line,) = pruning_lines(caplog)
    assert "does not prune" in line and "customized_config" in line


def test_a_switched_off_dart_config_is_reported_as_no_pruning(caplog):
    with caplog.at_level(logging.INFO, logger="llava"):
        load_pretrained_model(DEFAULT_MODEL_PATH, None, device="cpu", multimodal=True,
                              customized_config={"DART_config": {**DART, "Sparse": False}})
    (line,) = pruning_lines(caplog)
    assert "does not prune" in line and "Sparse" in line


def test_our_own_loads_say_nothing_about_pruning(caplog):
    """The eval workers set their DART_config after loading, and log it themselves."""
    with caplog.at_level(logging.INFO, logger="llava"):
        load_pretrained_model(DEFAULT_MODEL_PATH, None, device="cpu")
    assert pruning_lines(caplog) == []


@pytest.fixture
def lmms_eval_log():
    """Messages lmms-eval's (loguru) log receives, and our logging handler removed afterwards."""
    messages = []
    sink = loguru_logger.add(lambda message: messages.append(message.record), level="INFO")
    ours = logging.getLogger("llava")
    handlers, level = list(ours.handlers), ours.level
    yield messages
    loguru_logger.remove(sink)
    ours.handlers[:], ours.level = handlers, level


def test_our_log_lines_reach_lmms_evals_log_at_their_level(lmms_eval_log):
    send_logs_to_lmms_eval()
    send_logs_to_lmms_eval()  # idempotent: one handler, each line once
    logging.getLogger("llava.lmms_plugin.models").info("LlavaDart: %s {not a format field}", "settings")
    logging.getLogger("llava.model.builder").warning("a warning")
    logging.getLogger("transformers").warning("not ours")
    seen = [(r["level"].name, r["name"], r["message"]) for r in lmms_eval_log]
    assert seen == [("INFO", "llava.lmms_plugin.models", "LlavaDart: settings {not a format field}"),
                    ("WARNING", "llava.model.builder", "a warning")]
