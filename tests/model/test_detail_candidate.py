"""Regression guard for checkpoints/llava-v1.5-tiny-detail and llava-v1.6-tiny-detail, the embedded defaults
continued on the fine-detail question forms (scripts/tiny/train_detail.sh): each loads through the real loader with
the vision tower of its own folder (trained or the default's), and answers held-out DocVQA and InfographicVQA sample
questions that its shipped default gets wrong, with their benchmarks' prompt. (Retraining one means re-picking its
questions.)"""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llava.constants import DEFAULT_MODEL_PATH
from llava.eval.core.prompt_texts import SHORT_ANSWER_PROMPT
from llava.eval.core.prompting import build_prompt
from llava.mm_utils import load_image, process_images, tokenizer_image_token
from llava.model.builder import load_pretrained_model

CHECKPOINTS = Path(DEFAULT_MODEL_PATH).parent
EVAL = Path(__file__).resolve().parents[2] / "playground" / "data" / "eval"
# (question file, image folder, image field) of the two RRC-format samples
SETS = {
    "docvqa": (EVAL / "docvqa/spdocvqa_qas/val_v1.0_withQT.json", EVAL / "docvqa/spdocvqa_images", "image"),
    "infovqa": (EVAL / "infovqa/infographicsvqa_qas/infographicsVQA_val_v1.0_withQT.json",
                EVAL / "infovqa/infographicsvqa_images", "image_local_name"),
}


@dataclass(frozen=True)
class Candidate:
    name: str  # its folder in checkpoints/
    default: str  # the shipped default it continues
    tower_trained: bool  # whether its rounds trained the vision tower (else its vision_tower/ is the default's)
    known: dict[str, list[int]]  # questionIds it answered right and its default wrong when it was committed


CANDIDATES = {
    "1.5": Candidate("llava-v1.5-tiny-detail", "llava-v1.5-tiny", True,
                     {"docvqa": [50000, 50001, 50002, 50003, 50004, 50006],
                      "infovqa": [90004, 90005, 90007, 90009, 90011, 90015]}),
    "1.6": Candidate("llava-v1.6-tiny-detail", "llava-v1.6-tiny", True,
                     {"docvqa": [50000, 50001, 50002, 50003, 50004, 50006],
                      "infovqa": [90003, 90005, 90009, 90011, 90015, 90019]}),
}


def load(path: Path):
    tokenizer, model, processor, _ = load_pretrained_model(str(path), None, device="cpu")
    return tokenizer, model, processor


@pytest.fixture(scope="module", params=sorted(CANDIDATES))
def candidate(request) -> tuple[Candidate, tuple]:
    spec = CANDIDATES[request.param]
    return spec, load(CHECKPOINTS / spec.name)


def known_questions(spec: Candidate) -> list[tuple[str, Path, list[str]]]:
    """(user turn, image, answers) of the candidate's known questions, the user turn as the benchmarks' workers
    write it."""
    questions = []
    for name, (question_file, images, field) in SETS.items():
        entries = {e["questionId"]: e for e in json.loads(question_file.read_text())["data"]}
        for qid in spec.known[name]:
            entry = entries[qid]
            image = images / Path(entry[field]).name  # DocVQA's "documents/" prefix: the pages lie in the folder
            questions.append((f"{entry['question']}\n{SHORT_ANSWER_PROMPT}", image, entry["answers"]))
    return questions


def answers(loaded, questions) -> list[str]:
    tokenizer, model, processor = loaded
    made = []
    for text, image_path, _ in questions:
        ids = tokenizer_image_token(build_prompt(text, "vicuna_v1"), tokenizer, return_tensors="pt")[None]
        image = load_image(str(image_path))
        pixels = process_images([image], processor, model.config)
        with torch.inference_mode():
            out = model.generate(ids, images=pixels, image_sizes=[image.size], max_new_tokens=8, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        made.append(tokenizer.decode(out[0], skip_special_tokens=True).strip())
    return made


def test_loads_the_tower_of_its_folder(candidate):
    spec, (_, model, _) = candidate
    tower = model.get_vision_tower().vision_tower.state_dict()
    own = load_file(CHECKPOINTS / spec.name / "vision_tower" / "model.safetensors")
    shipped = load_file(CHECKPOINTS / spec.default / "vision_tower" / "model.safetensors")
    vision = [f"vision_model.{k}" for k in tower]  # the CLIP checkpoint's names of the tower's tensors
    assert vision and all(torch.equal(tower[k], own[f"vision_model.{k}"].to(tower[k].dtype)) for k in tower)
    changed = sum(not torch.equal(own[k], shipped[k]) for k in vision)
    assert changed > len(vision) // 2 if spec.tower_trained else changed == 0


def test_answers_known_detail_questions_the_default_cannot(candidate):
    spec, loaded = candidate
    questions = known_questions(spec)
    truth = [[a.lower() for a in gold] for _, _, gold in questions]
    assert len(questions) >= 10
    assert [a.lower() in gold for a, gold in zip(answers(loaded, questions), truth)] == [True] * len(truth)
    shipped = answers(load(CHECKPOINTS / spec.default), questions)
    assert not any(a.lower() in gold for a, gold in zip(shipped, truth))
