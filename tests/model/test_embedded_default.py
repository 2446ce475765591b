"""Regression guard for the committed embedded default (checkpoints/llava-v1.5-tiny): it loads through the
real loader and still answers held-out GQA and ScienceQA questions it answered right when it was
committed, unpruned and with DART keeping 132 image tokens. (Retraining the model means re-picking these
questions.)"""

import argparse
import json
from pathlib import Path

import pytest
import torch

from llava.constants import DEFAULT_MODEL_PATH
from llava.eval.benchmarks.scienceqa.worker import science_items
from llava.eval.core.prompting import build_prompt
from llava.eval.core.questions import Row
from llava.mm_utils import load_image, process_images, tokenizer_image_token
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model
from llava.model.pruning import make_dart_config

EVAL = Path(__file__).resolve().parents[2] / "playground" / "data" / "eval"
GQA, SQA = EVAL / "gqa", EVAL / "scienceqa"
# Held-out colour and shape questions, relations with two different answers, and yes/no ones with both
# answers (so that no constant answer passes); the expected answers are the ground truth.
KNOWN = ["20000001", "20000003", "20000004", "20000005", "20000007", "20000008", "20000010", "20000014",
         "20000015", "20000027"]
# Held-out multiple-choice questions about images, 2-4 options, right answers at all four letters.
KNOWN_SQA = ["1", "3", "9", "10", "13", "29", "30", "44"]


@pytest.fixture(scope="module")
def default_model():
    tokenizer, model, processor, _ = load_pretrained_model(DEFAULT_MODEL_PATH, None, device="cpu")
    return tokenizer, model, processor


@pytest.fixture(scope="module")
def known_questions():
    truth = json.loads((GQA / "data" / "testdev_balanced_questions.json").read_text())
    rows = {}
    for line in (GQA / "llava_gqa_testdev_balanced.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows[str(row["question_id"])] = {"text": row["text"], "image": GQA / "data" / "images" / row["image"]}
    return [(rows[qid], truth[qid]["answer"]) for qid in KNOWN]


@pytest.fixture(scope="module")
def known_sqa_questions():
    entries = {e["id"]: e for e in json.loads((SQA / "llava_test_CQM-A.json").read_text())}
    problems = json.loads((SQA / "problems.json").read_text())
    # the user turn and image that model_vqa_science makes of an entry with --single-pred-prompt
    args = argparse.Namespace(image_folder=str(SQA / "images" / "test"), single_pred_prompt=True)
    questions = []
    for pid in KNOWN_SQA:
        (item,) = science_items(Row(f"llava_test_CQM-A.json[{pid}]", entries[pid]), args)
        questions.append(({"text": item.text, "image": item.images[0].path}, "ABCD"[problems[pid]["answer"]]))
    return questions


def answer(default_model, row, dart: bool):
    """The greedy answer to {"text", "image": path}, lower-cased, and its pruning record."""
    tokenizer, model, processor = default_model
    model.config.DART_config = make_dart_config(max_num_trunction=128) if dart else None
    ids = tokenizer_image_token(build_prompt(row["text"], "vicuna_v1"), tokenizer, return_tensors="pt")[None]
    pixels = process_images([load_image(str(row["image"]))], processor, model.config)
    record = PruningRecord()
    with torch.inference_mode():
        out = model.generate(ids, images=pixels, max_new_tokens=8, do_sample=False, pruning_record=record,
                             pad_token_id=tokenizer.pad_token_id)
    model.config.DART_config = None
    return tokenizer.decode(out[0], skip_special_tokens=True).strip().lower().rstrip("."), record


def test_loads_in_the_original_format(default_model):
    _, model, _ = default_model
    config = json.loads((Path(DEFAULT_MODEL_PATH) / "config.json").read_text())
    assert config["model_type"] == "llava_llama" and config["mm_vision_tower"] == "vision_tower"
    assert model.get_vision_tower().num_patches == 576 and model.config.num_hidden_layers >= 4
    assert (Path(DEFAULT_MODEL_PATH) / "tokenizer.model").is_file()
    size = sum(f.stat().st_size for f in Path(DEFAULT_MODEL_PATH).rglob("*") if f.is_file())
    assert size <= 10 * 2**20


@pytest.mark.parametrize("dart", [False, True], ids=["unpruned", "dart-132"])
def test_answers_known_held_out_questions(default_model, known_questions, dart):
    results = [answer(default_model, row, dart) for row, _ in known_questions]
    assert [text for text, _ in results] == [truth for _, truth in known_questions]
    if dart:
        assert all(record.num_kept_image_tokens() == 132 for _, record in results)


@pytest.mark.parametrize("dart", [False, True], ids=["unpruned", "dart-132"])
def test_answers_known_multiple_choice_questions(default_model, known_sqa_questions, dart):
    results = [answer(default_model, row, dart) for row, _ in known_sqa_questions]
    assert [text for text, _ in results] == [truth.lower() for _, truth in known_sqa_questions]
    assert {truth for _, truth in known_sqa_questions} == set("ABCD")
    if dart:
        assert all(record.num_kept_image_tokens() == 132 for _, record in results)


def _bare_questions(known_questions):
    """Known GQA questions as a user would type them: without the short-answer instruction."""
    return [({"text": row["text"].split("\n")[0], "image": row["image"]}, truth) for row, truth in known_questions[:3]]


def test_run_llava_adds_the_short_answer_instruction_for_it_and_says_so(known_questions, capsys, caplog):
    """A bare question to the embedded default gets its short-answer line and a notice, so the first contact
    is the right one-word answer, not a made-up next turn; a question with an instruction is left alone."""
    import logging

    from llava.eval.cli import run_llava
    from llava.eval.core.prompting import EMBEDDED_DEFAULT_NOTICE

    for row, truth in _bare_questions(known_questions):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            assert run_llava.main(["--image-file", str(row["image"]), "--query", row["text"], "--temperature", "0",
                                   "--max_new_tokens", "8", "--device", "cpu"]) == 0
        assert capsys.readouterr().out.strip().lower().rstrip(".") == truth
        assert caplog.text.count(EMBEDDED_DEFAULT_NOTICE) == 1
    row, truth = known_questions[0]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run_llava.main(["--image-file", str(row["image"]), "--query", row["text"], "--temperature", "0",
                               "--max_new_tokens", "8", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip().lower().rstrip(".") == truth
    assert EMBEDDED_DEFAULT_NOTICE not in caplog.text


def test_the_terminal_chat_says_what_it_answers_and_adds_the_instruction(known_questions):
    import io

    from llava.data.questions import SHORT_ANSWER_PROMPT
    from llava.eval.core.prompting import EMBEDDED_DEFAULT_NOTICE
    from llava.serve import cli

    (row, truth), = _bare_questions(known_questions)[:1]
    args = cli.parse_args(["--image-file", str(row["image"]), "--device", "cpu", "--temperature", "0",
                           "--max-new-tokens", "8", "--debug"])
    stdout = io.StringIO()
    assert cli.chat(args, stdin=io.StringIO(row["text"] + "\n"), stdout=stdout) == 0
    out = stdout.getvalue()
    assert out.startswith(f"[{EMBEDDED_DEFAULT_NOTICE}]\n")
    assert f"{row['text']}\n{SHORT_ANSWER_PROMPT} ASSISTANT:" in out  # the --debug prompt
    assert out.split("ASSISTANT: ")[-1].split("\n")[0].strip().lower().rstrip(".") == truth


def test_the_demo_page_names_the_embedded_default_by_the_name_its_worker_serves():
    from llava.mm_utils import get_model_name_from_path
    from llava.serve.gradio_web_server import EMBEDDED_DEFAULT_NAME

    assert EMBEDDED_DEFAULT_NAME == get_model_name_from_path(DEFAULT_MODEL_PATH)
