"""TextVQA: textvqa/llava_textvqa_val_v051_ocr.jsonl, TextVQA_0.5.1_val.json, train_images/<image_id>.jpg."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from llava.data.layouts.common import Summary, draw_scene, rng_for, save_image, write_json, write_jsonl
from llava.data.questions import QA, SHORT_ANSWER_PROMPT, WORD_QUESTION, ocr_tokens, question_block
from llava.data.scenes import WORDS


def write_textvqa(root: Path, seed: int, n: int) -> Summary:
    """One "What word is written in the image?" per image, with noisy OCR tokens (1-2 spurious words).

    As in LLaVA's llava_textvqa_val_v051_ocr.jsonl, a question line's "question_id" is the TextVQA image_id:
    eval_textvqa matches answers to annotations by (image_id, lower-cased question).
    """
    rng, seen, scenes = rng_for(seed, "textvqa"), set(), {}
    lines, data, ocr_sizes = [], [], []
    for k in range(n):
        scene, qa = draw_scene(
            rng, lambda s: QA("word", WORD_QUESTION, s.word.text.lower(),
                              ocr=ocr_tokens(s, rng, distractors=rng.choice((1, 2)))),
            seen, with_word=True,
        )
        image_id = f"{rng.getrandbits(64):016x}"
        save_image(root, f"textvqa/train_images/{image_id}.jpg", scene, scenes)
        text = question_block(qa) + "\n" + SHORT_ANSWER_PROMPT
        lines.append({"question_id": image_id, "image": f"{image_id}.jpg", "text": text})
        data.append({
            "question": qa.question,
            "image_id": image_id,
            "image_classes": sorted({s.kind for s in scene.shapes}),
            "flickr_original_url": "",
            "flickr_300k_url": "",
            "image_width": 336,
            "image_height": 336,
            "answers": [qa.answer] * 10,
            "question_tokens": qa.question.lower().rstrip("?").split(),
            "question_id": 90_000 + k,
            "set_name": "val",
        })
        ocr_sizes.append(len(qa.ocr))
    write_jsonl(root / "textvqa" / "llava_textvqa_val_v051_ocr.jsonl", lines)
    annotation = {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data}
    write_json(root / "textvqa" / "TextVQA_0.5.1_val.json", annotation)
    answers = Counter(d["answers"][0] for d in data)
    copy_ocr = sum(1 / k for k in ocr_sizes) / len(ocr_sizes)
    return Summary(
        "TextVQA", ["textvqa/llava_textvqa_val_v051_ocr.jsonl", "textvqa/TextVQA_0.5.1_val.json",
                    "textvqa/train_images/<image_id>.jpg"],
        n, answers,
        [f"uniform guess over the {len(WORDS)} words: {100 / len(WORDS):.1f}%",
         f"most frequent answer: {100 * answers.most_common(1)[0][1] / n:.1f}%",
         f"a random one of the Reference OCR tokens (text-only model): {100 * copy_ocr:.1f}%"],
        ["Question lines: {question_id (= the image_id, as LLaVA's file), image, text = question + "
         "'\\nReference OCR token: ...' + '\\nAnswer the question using a single word or phrase.'}. "
         "Annotation: {dataset_version: 0.5.1, data: [{question, image_id, answers (10), question_id, ...}]}.",
         "Every image carries one word; the OCR line lists it with 1-2 spurious words, shuffled."],
        scenes=scenes,
    )
