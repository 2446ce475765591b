r"""POPE accuracy / precision / recall / F1 / yes-ratio per category (LLaVA's `eval_pope.py`).

    python -m llava.eval.benchmarks.pope.scorer --annotation-dir playground/data/eval/pope/coco \
        --question-file playground/data/eval/pope/llava_pope_test.jsonl \
        --result-file playground/data/eval/pope/answers/llava-v1.5-13b.jsonl [--result-json PATH]

Every `coco_pope_<category>.json` in the annotation dir (JSON lines `{"question_id", "image", "text",
"label"}`) is one category; an answer belongs to the category its question carries in the question file.
LLaVA pairs the i-th answer of a category with the i-th label line, which is only right when the answers
are complete and in question order. Here an answer is paired with its label by question_id (checked
against the question text), or else by (image, question text), so the numbers are the same as LLaVA's in
that case and stay right when the answers are shuffled, merged from chunks or incomplete.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter

from llava.eval.core.scoring_io import (ScoringInputError, add_result_json_arg, default_result_path, fail, finish,
                                   index_by_qid, qid, read_answers, read_jsonl, ratio)

LABEL_FILE = re.compile(r"^coco_pope_(.+)\.json$")


def parse_yes_no(text: str) -> str:
    """LLaVA's rule: keep the first sentence, drop commas, split on spaces; "No", "not" or "no" -> "no".

    Everything else is "yes" (including "NO", "Not", or "No\\nbecause" where a newline joins the words).
    """
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_metrics(preds: list[str], labels: list[str]) -> dict:
    """Metrics of paired yes/no predictions and labels (any label other than "no" counts as yes, as in LLaVA).

    Precision / recall / F1 are 0.0 when undefined (no predicted / no actual positives), where LLaVA divides
    by zero.
    """
    tp = fp = tn = fn = 0
    for pred, label in zip(preds, labels, strict=True):
        pos_pred, pos_label = pred != "no", label != "no"
        tp += pos_pred and pos_label
        fp += pos_pred and not pos_label
        tn += not pos_pred and not pos_label
        fn += not pos_pred and pos_label
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = len(preds)
    return {"samples": n, "TP": tp, "FP": fp, "TN": tn, "FN": fn, "accuracy": ratio(tp + tn, n),
            "precision": precision, "recall": recall, "f1": f1, "yes_ratio": ratio(sum(p != "no" for p in preds), n)}


def _first_line(text) -> str | None:
    return None if text is None else str(text).split("\n")[0].strip()


def _image_name(image) -> str | None:
    return None if image is None else os.path.basename(str(image))


def _same_question(question: dict, label_row: dict) -> bool:
    """Whether a label row (found by question_id) is about the same question: text first, else image."""
    q_text, l_text = _first_line(question.get("text")), _first_line(label_row.get("text"))
    if q_text is not None and l_text is not None:
        return q_text == l_text
    q_img, l_img = _image_name(question.get("image")), _image_name(label_row.get("image"))
    return q_img is None or l_img is None or q_img == l_img


def pair_category(answers: list[dict], questions: dict[str, dict], label_rows: list[dict]) -> tuple[list, list, int]:
    """(preds, labels, unmatched) for one category's answers.

    question_id first (LLaVA's question ids may or may not equal the label files' ids: the check on the
    question text rejects a coincidental id), then (image file name, first line of the question text).
    """
    by_id = {qid(r["question_id"]): r for r in label_rows if "question_id" in r}
    content_keys = Counter((_image_name(r.get("image")), _first_line(r.get("text"))) for r in label_rows)
    by_content = {(_image_name(r.get("image")), _first_line(r.get("text"))): r for r in label_rows}
    preds, labels, unmatched = [], [], 0
    for ans in answers:
        question = questions[qid(ans["question_id"])]
        row = by_id.get(qid(ans["question_id"]))
        if row is None or not _same_question(question, row):
            key = (_image_name(question.get("image")), _first_line(question.get("text")))
            row = by_content[key] if content_keys.get(key) == 1 and None not in key else None
        if row is None:
            unmatched += 1
            continue
        preds.append(parse_yes_no(ans["text"]))
        labels.append(row["label"])
    return preds, labels, unmatched


def score_pope(label_files: dict[str, list[dict]], questions: list[dict], answers: list[dict]) -> dict:
    """Per-category metrics; `label_files` maps category -> its label rows."""
    q_index, _ = index_by_qid(questions)
    unknown = [a for a in answers if qid(a["question_id"]) not in q_index]
    if unknown:
        raise ScoringInputError(f"{len(unknown)} answers have a question_id that is not in the question file "
                                f"(first: {unknown[0]['question_id']!r})")
    answers_by_id, duplicates = index_by_qid(answers)
    result = {"benchmark": "pope", "categories": {}, "duplicates": duplicates}
    for category in sorted(label_files):
        cur = [a for a in answers_by_id.values() if q_index[qid(a["question_id"])].get("category") == category]
        preds, labels, unmatched = pair_category(cur, q_index, label_files[category])
        if not preds:
            result["categories"][category] = {"samples": 0, "unmatched": unmatched,
                                              "labels": len(label_files[category])}
            continue
        metrics = pope_metrics(preds, labels)
        metrics.update(unmatched=unmatched, labels=len(label_files[category]),
                       missing=len(label_files[category]) - len(preds))
        result["categories"][category] = metrics
    scored = [m for m in result["categories"].values() if m["samples"]]
    if not scored:
        raise ScoringInputError("no answer could be paired with a POPE label")
    # LLaVA-1.5 reports POPE as the mean over the three categories.
    result["mean_f1"] = sum(m["f1"] for m in scored) / len(scored)
    result["mean_accuracy"] = sum(m["accuracy"] for m in scored) / len(scored)
    return result


def load_label_files(annotation_dir: str) -> dict[str, list[dict]]:
    if not os.path.isdir(annotation_dir):
        raise ScoringInputError(f"annotation dir not found: {annotation_dir}")
    files = {m.group(1): os.path.join(annotation_dir, f) for f in sorted(os.listdir(annotation_dir))
             if (m := LABEL_FILE.match(f))}
    if not files:
        raise ScoringInputError(f"no coco_pope_<category>.json label files in {annotation_dir}")
    label_files = {}
    for category, path in files.items():
        rows = read_jsonl(path)
        bad = [i for i, r in enumerate(rows) if "label" not in r]
        if bad:
            raise ScoringInputError(f"{path}: line {bad[0] + 1} has no 'label' (is this a POPE label file?)")
        label_files[category] = rows
    return label_files


def summary_line(result: dict) -> str:
    parts = [f"{c} F1 {m['f1']:.3f} acc {m['accuracy']:.3f} yes {m['yes_ratio']:.3f} (n={m['samples']})"
             for c, m in result["categories"].items() if m["samples"]]
    return f"POPE: {' | '.join(parts)} | mean F1 {result['mean_f1']:.3f}"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotation-dir", required=True, help="directory with coco_pope_<category>.json")
    parser.add_argument("--question-file", required=True, help="llava_pope_test.jsonl (lines carry 'category')")
    parser.add_argument("--result-file", required=True, help="answers JSONL")
    add_result_json_arg(parser, "<result-file without .jsonl>.score.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = score_pope(load_label_files(args.annotation_dir), read_jsonl(args.question_file),
                            read_answers(args.result_file))
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    result.update(annotation_dir=args.annotation_dir, question_file=args.question_file, result_file=args.result_file)
    return finish(summary_line(result), result, args.result_json or default_result_path(args.result_file))


if __name__ == "__main__":
    sys.exit(main())
