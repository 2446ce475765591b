"""Regression guard for checkpoints/llava-v1.5-tiny-detail, the embedded default continued on the fine-detail
question forms (scripts/tiny/train_detail.sh): it loads through the real loader with the vision tower it trained,
and answers held-out DocVQA and InfographicVQA sample questions that the shipped default gets wrong, with their
benchmarks' prompt. (Retraining it means re-picking these questions.)"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llava.constants import DEFAULT_MODEL_PATH
from llava.eval.core.prompt_texts import SHORT_ANSWER_PROMPT
from llava.eval.core.prompting import build_prompt
from llava.mm_utils import load_image, process_images, tokenizer_image_token
from llava.model.builder import load_pretrained_model

CANDIDATE = Path(DEFAULT_MODEL_PATH).parent / "llava-v1.5-tiny-detail"
EVAL = Path(__file__).resolve().parents[2] / "playground" / "data" / "eval"
# (question file, image folder, image field) of the two RRC-format samples
SETS = {
    "docvqa": (EVAL / "docvqa/spdocvqa_qas/val_v1.0_withQT.json", EVAL / "docvqa/spdocvqa_images", "image"),
    "infovqa": (EVAL / "infovqa/infographicsvqa_qas/infographicsVQA_val_v1.0_withQT.json",
                EVAL / "infovqa/infographicsvqa_images", "image_local_name"),
}
# questionIds the candidate answered right and the shipped default wrong when the candidate was committed
KNOWN = {"docvqa": [50000, 50001, 50002, 50003, 50004, 50006], "infovqa": [90004, 90007, 90015, 90019, 90020, 90031]}


def load(path: Path):
    tokenizer, model, processor, _ = load_pretrained_model(str(path), None, device="cpu")
    return tokenizer, model, processor


@pytest.fixture(scope="module")
def candidate():
    return load(CANDIDATE)


@pytest.fixture(scope="module")
def known_questions() -> list[tuple[str, Path, list[str]]]:
    """(user turn, image, answers) of the KNOWN questions, the user turn as the benchmarks' workers write it."""
    questions = []
    for name, (question_file, images, field) in SETS.items():
        entries = {e["questionId"]: e for e in json.loads(question_file.read_text())["data"]}
        for qid in KNOWN[name]:
            entry = entries[qid]
            image = images / Path(entry[field]).name  # DocVQA's "documents/" prefix: the pages lie in the folder
            questions.append((f"{entry['question']}\n{SHORT_ANSWER_PROMPT}", image, entry["answers"]))
    return questions


def answers(loaded, questions) -> list[str]:
    tokenizer, model, processor = loaded
    made = []
    for text, image, _ in questions:
        ids = tokenizer_image_token(build_prompt(text, "vicuna_v1"), tokenizer, return_tensors="pt")[None]
        pixels = process_images([load_image(str(image))], processor, model.config)
        with torch.inference_mode():
            out = model.generate(ids, images=pixels, max_new_tokens=8, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        made.append(tokenizer.decode(out[0], skip_special_tokens=True).strip())
    return made


def test_loads_the_tower_it_trained(candidate):
    _, model, _ = candidate
    tower = model.get_vision_tower().vision_tower.state_dict()
    trained = load_file(CANDIDATE / "vision_tower" / "model.safetensors")
    shipped = load_file(Path(DEFAULT_MODEL_PATH) / "vision_tower" / "model.safetensors")
    vision = [f"vision_model.{k}" for k in tower]  # the CLIP checkpoint's names of the tower's tensors
    assert vision and all(torch.equal(tower[k], trained[f"vision_model.{k}"].to(tower[k].dtype)) for k in tower)
    assert sum(not torch.equal(trained[k], shipped[k]) for k in vision) > len(vision) // 2


def test_answers_known_detail_questions_the_default_cannot(candidate, known_questions):
    truth = [[a.lower() for a in gold] for _, _, gold in known_questions]
    assert len(known_questions) >= 10
    assert [a.lower() in gold for a, gold in zip(answers(candidate, known_questions), truth)] == [True] * len(truth)
    shipped = answers(load(Path(DEFAULT_MODEL_PATH)), known_questions)
    assert not any(a.lower() in gold for a, gold in zip(shipped, truth))
