r"""TextVQA accuracy of an answers file (LLaVA's `eval_textvqa.py`, with MMF's m4c soft accuracy).

    python -m llava.eval.benchmarks.textvqa.scorer --annotation-file playground/data/eval/textvqa/TextVQA_0.5.1_val.json \
        --result-file playground/data/eval/textvqa/answers/llava-v1.5-13b.jsonl [--result-json PATH]
    python -m llava.eval.benchmarks.textvqa.scorer --annotation-file ... --result-dir DIR     # every *.jsonl in DIR

Pairing: LLaVA's question file uses the TextVQA *image* id as `question_id` and the question text (first line
of the prompt, lower-cased) to tell apart the questions of one image, so an answer is matched on
`(image_id, question)` as LLaVA does; failing that, on `question_id` == the annotation's own question_id.
Accuracy is over the answered questions; how many annotated questions have no answer is reported.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from llava.eval.core.m4c_evaluator import TextVQAAccuracyEvaluator
from llava.eval.core.scoring_io import (ScoringInputError, add_result_json_arg, default_result_path, fail, finish, qid,
                                   read_answers, read_json)


def prompt_processor(prompt: str) -> str | None:
    """The question inside a LLaVA TextVQA prompt, lower-cased (LLaVA's rules); None if no rule applies.

    `OCR tokens: ... Question: Q Short answer:` (the BLIP-style prompt), or `Q\\nReference OCR token: ...
    \\nAnswer ...` (three lines; the OCR line may also come first), or `Q\\nAnswer ...` (two lines).
    """
    lines = prompt.split("\n")
    if prompt.startswith("OCR tokens: "):
        match = re.search(r"Question: (.*?) Short answer:", prompt, re.DOTALL)
        if match is None:
            return None
        question = match.group(1)
    elif "Reference OCR token: " in prompt and len(lines) == 3:
        question = lines[1] if prompt.startswith("Reference OCR token:") else lines[0]
    elif len(lines) == 2:
        question = lines[0]
    else:
        return None  # LLaVA asserts here
    return question.lower()


def pair_answers(annotations: list[dict], answers: list[dict]) -> tuple[list[dict], dict]:
    """Match answers to annotations; returns (pred_list for the evaluator, counts).

    counts: `matched`, `unmatched` (answers that fit no annotation; LLaVA raises KeyError on these),
    `duplicates` (answers for an already answered question; the last one is kept) and `missing`
    (annotated questions with no answer).
    """
    by_image_question = {(qid(a["image_id"]), a["question"].lower()): i for i, a in enumerate(annotations)}
    by_question_id = {qid(a["question_id"]): i for i, a in enumerate(annotations) if "question_id" in a}
    chosen: dict[int, str] = {}
    unmatched = duplicates = 0
    for ans in answers:
        question = prompt_processor(ans.get("prompt", ""))
        i = by_image_question.get((qid(ans["question_id"]), question)) if question is not None else None
        if i is None:
            i = by_question_id.get(qid(ans["question_id"]))
        if i is None:
            unmatched += 1
            continue
        duplicates += i in chosen
        chosen[i] = ans["text"]
    pred_list = [{"pred_answer": chosen[i], "gt_answers": annotations[i]["answers"]} for i in sorted(chosen)]
    counts = {"matched": len(chosen), "unmatched": unmatched, "duplicates": duplicates,
              "missing": len(annotations) - len(chosen), "annotated": len(annotations)}
    return pred_list, counts


def score_textvqa(annotations: list[dict], answers: list[dict]) -> dict:
    pred_list, counts = pair_answers(annotations, answers)
    if not pred_list:
        raise ScoringInputError(
            f"none of the {len(answers)} answers matches an annotation (by image id + question, or question id)")
    accuracy = 100.0 * TextVQAAccuracyEvaluator().eval_pred_list(pred_list)
    return {"benchmark": "textvqa", "accuracy": accuracy, "samples": len(pred_list), **counts}


def load_annotations(path: str) -> list[dict]:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ScoringInputError(f"{path}: expected TextVQA's {{'data': [...]}} layout")
    return data["data"]


def summary_line(name: str, result: dict) -> str:
    line = f"TextVQA {name}: accuracy {result['accuracy']:.2f}% over {result['samples']} answered questions"
    extras = [f"{result[k]} {k}" for k in ("missing", "unmatched", "duplicates") if result[k]]
    return line + (f" ({', '.join(extras)})" if extras else "")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotation-file", required=True, help="TextVQA_0.5.1_val.json")
    parser.add_argument("--result-file", default=None, help="answers JSONL")
    parser.add_argument("--result-dir", default=None, help="score every *.jsonl in this directory")
    add_result_json_arg(parser, "<result-file without .jsonl>.score.json; one per file with --result-dir")
    args = parser.parse_args(argv)
    if args.result_file is None and args.result_dir is None:
        parser.error("give --result-file or --result-dir")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        annotations = load_annotations(args.annotation_file)
        files = [args.result_file] if args.result_file else []
        if args.result_dir:
            files += [os.path.join(args.result_dir, f) for f in sorted(os.listdir(args.result_dir))
                      if f.endswith(".jsonl")]
        for path in files:
            result = score_textvqa(annotations, read_answers(path))
            result.update(annotation_file=args.annotation_file, result_file=path)
            out = args.result_json if (args.result_json and len(files) == 1) else default_result_path(path)
            finish(summary_line(os.path.splitext(os.path.basename(path))[0], result), result, out)
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
