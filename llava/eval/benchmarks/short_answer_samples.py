"""The benchmarks scored by an external server or a GPT grader, whose files are question lists plus images:
VizWiz (vizwiz/llava_test.jsonl, vizwiz/test/), VQAv2 (vqav2/llava_vqav2_mscoco_test-dev2015.jsonl and the
full test2015 list, vqav2/test2015/), MM-Vet (mm-vet/llava-mm-vet.jsonl, mm-vet/mm-vet.json, images/) and
LLaVA-Bench in the wild (llava-bench-in-the-wild/questions.jsonl, context.jsonl, answers_gpt4.jsonl,
images/). Their answers are known here (SYNTHETIC_SCENES.jsonl and the answer fields), but the scripts
score them as the official pipelines do: they write the submission or the grader's input."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from llava.data.layouts.common import Summary, draw_scene, rng_for, save_image, unique_name, write_json, write_jsonl
from llava.data.questions import QA, SHORT_ANSWER_PROMPT, ask_color, ask_count, ask_shape, caption

VIZWIZ_PROMPT = "When the provided information is insufficient, respond with 'Unanswerable'."
ASKS = (ask_color, ask_shape, ask_count)


def _short_answer(rng: random.Random):
    def make(scene):
        return rng.choice(ASKS)(scene, rng)
    return make


def write_vizwiz(root: Path, seed: int, n: int) -> Summary:
    """n short-answer questions, one per image, named as VizWiz's test images; question_id = image name."""
    rng, seen, scenes, rows, answers = rng_for(seed, "vizwiz"), set(), {}, [], Counter()
    for k in range(n):
        scene, qa = draw_scene(rng, _short_answer(rng), seen)
        name = f"VizWiz_test_{k:08d}.jpg"
        save_image(root, f"vizwiz/test/{name}", scene, scenes)
        rows.append({"question_id": name, "image": name,
                     "text": f"{qa.question}\n{VIZWIZ_PROMPT}\n{SHORT_ANSWER_PROMPT}", "answer": qa.answer})
        answers[qa.answer] += 1
    write_jsonl(root / "vizwiz" / "llava_test.jsonl", rows)
    return Summary("VizWiz", ["vizwiz/llava_test.jsonl", "vizwiz/test/VizWiz_test_<n>.jpg"], n, answers,
                   ["scored by the EvalAI server: the script writes answers_upload/<name>.json"],
                   ["Question lines as LLaVA's llava_test.jsonl: {question_id (= image), image, text = question + "
                    "the 'Unanswerable' instruction + the short-answer prompt}; `answer` is ours (the real test set "
                    "has none)."], scenes=scenes)


def write_vqav2(root: Path, seed: int, n: int) -> Summary:
    """n test-dev questions (two per image) and n // 2 more test questions: the server wants an answer for
    every test2015 question, so the upload fills those with ""."""
    rng, seen, scenes, names = rng_for(seed, "vqav2"), set(), {}, set()
    rows, answers = [], Counter()
    for k in range(max(1, (n + n // 2) // 2)):
        scene, _ = draw_scene(rng, lambda s: True, seen)
        name = unique_name(rng, names, "COCO_test2015_{:012d}.jpg", 6)
        save_image(root, f"vqav2/test2015/{name}", scene, scenes)
        image_id = int(name[-16:-4])
        for j in range(2):
            qa = None
            while qa is None:
                qa = rng.choice(ASKS)(scene, rng)
            rows.append({"question_id": image_id * 1000 + j, "image": name,
                         "text": f"{qa.question}\n{SHORT_ANSWER_PROMPT}", "category": "default", "answer": qa.answer})
    dev = rows[:n]
    answers.update(r["answer"] for r in dev)
    write_jsonl(root / "vqav2" / "llava_vqav2_mscoco_test-dev2015.jsonl", dev)
    write_jsonl(root / "vqav2" / "llava_vqav2_mscoco_test2015.jsonl", rows)
    return Summary("VQAv2", ["vqav2/llava_vqav2_mscoco_test-dev2015.jsonl", "vqav2/llava_vqav2_mscoco_test2015.jsonl",
                             "vqav2/test2015/COCO_test2015_<id>.jpg"], len(dev), answers,
                   ["scored by the EvalAI server: the script writes answers_upload/<split>/<name>.json"],
                   [f"{len(dev)} test-dev questions of the {len(rows)} test2015 ones; question_id = "
                    "image id x 1000 + k, as VQA's ids embed the image id."], scenes=scenes)


def write_mmvet(root: Path, seed: int, n: int) -> Summary:
    """n open questions (a short answer, or a description) for MM-Vet's GPT-4 grader."""
    rng, seen, scenes, rows, reference, answers = rng_for(seed, "mmvet"), set(), {}, [], {}, Counter()
    for k in range(n):
        describe = k % 3 == 2
        scene, qa = draw_scene(rng, (lambda s: QA("caption", "Describe the image.", caption(s))) if describe
                               else _short_answer(rng), seen)
        name = f"v1_{k}.png"
        save_image(root, f"mm-vet/images/{name}", scene, scenes)
        rows.append({"question_id": k, "image": name, "text": qa.question})
        capability = "rec,gen" if describe else "rec"
        reference[f"v1_{k}"] = {"imagename": name, "capability": capability.split(","), "question": qa.question,
                                "answer": qa.answer}
        answers[capability] += 1
    write_jsonl(root / "mm-vet" / "llava-mm-vet.jsonl", rows)
    write_json(root / "mm-vet" / "mm-vet.json", reference, indent=1)
    return Summary("MM-Vet", ["mm-vet/llava-mm-vet.jsonl", "mm-vet/mm-vet.json", "mm-vet/images/v1_<k>.png"], n,
                   answers, ["graded by GPT-4 (MM-Vet's grader): the script writes results/<name>.json for it"],
                   ["Question lines {question_id, image, text}; mm-vet.json as the release's "
                    "{v1_<k>: {imagename, capability, question, answer}}; the answer distribution counts capabilities."],
                   scenes=scenes)


def write_llavabench(root: Path, seed: int, n: int) -> Summary:
    """n // 3 images with one conversation, one detail and one complex-reasoning question each, their
    captions (context.jsonl) and reference answers (answers_gpt4.jsonl), for the GPT-4 review."""
    rng, seen, scenes = rng_for(seed, "llavabench"), set(), {}
    questions, contexts, references, answers = [], [], [], Counter()
    for k in range(max(1, n // 3)):
        scene, qa = draw_scene(rng, _short_answer(rng), seen)
        name = f"{k + 1:03d}.jpg"
        save_image(root, f"llava-bench-in-the-wild/images/{name}", scene, scenes)
        text = caption(scene)
        contexts.append({"id": name[:-4], "image": name, "caption": text})
        kinds = [("conv", qa.question, qa.answer), ("detail", "Describe this image in detail.", text),
                 ("complex", "How many shapes would be left if one were removed?", str(len(scene.shapes) - 1))]
        for category, question, answer in kinds:
            question_id = len(questions)
            questions.append({"question_id": question_id, "image": name, "text": question, "category": category})
            references.append({"question_id": question_id, "text": answer, "model_id": "reference", "metadata": {}})
            answers[category] += 1
    folder = root / "llava-bench-in-the-wild"
    write_jsonl(folder / "questions.jsonl", questions)
    write_jsonl(folder / "context.jsonl", contexts)
    write_jsonl(folder / "answers_gpt4.jsonl", references)
    return Summary("LLaVA-Bench (in the wild)", ["llava-bench-in-the-wild/questions.jsonl", "context.jsonl",
                                                 "answers_gpt4.jsonl", "images/<k>.jpg"], len(questions), answers,
                   ["reviewed by GPT-4 against answers_gpt4.jsonl when OPENAI_API_KEY is set"],
                   ["Categories conv / detail / complex as the release's; the reference answers are the scenes' "
                    "ground truth, not GPT-4's."], scenes=scenes)
