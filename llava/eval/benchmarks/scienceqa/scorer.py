r"""ScienceQA accuracy (LLaVA's `eval_science_qa.py` parsing, ScienceQA's `tools/evaluate_acc.py` subsets).

    python -m llava.eval.benchmarks.scienceqa.scorer --base-dir playground/data/eval/scienceqa \
        --result-file answers/llava-v1.5-13b.jsonl --output-file answers/llava-v1.5-13b_output.jsonl \
        --output-result answers/llava-v1.5-13b_result.json [--split test] [--result-json PATH]

Uses `<base-dir>/problems.json` and `<base-dir>/pid_splits.json`. Every problem of the split counts; one
without an answer is FAILED (wrong), as in LLaVA. Writes LLaVA's two files (`--output-file`: the
correct / incorrect analyses as JSON, despite the .jsonl name LLaVA gives it; `--output-result`: acc, counts
and per-problem predicted indices, the input of ScienceQA's `evaluate_acc.py`) and the scores JSON.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from llava.eval.core.scoring_io import (ScoringInputError, add_result_json_arg, default_result_path, fail, finish,
                                   index_by_qid, qid, ratio, read_answers, read_json, write_json)

OPTIONS = ["A", "B", "C", "D", "E"]
# LLaVA's pattern, unescaped "." included: any one character after the letter ("The answer is B," works,
# "The answer is B" at the very end does not).
ANSWER_IS = re.compile(r"The answer is ([A-Z]).")

# ScienceQA's official subsets (tools/evaluate_acc.py): subject, context modality, grade band.
SUBSETS = {
    "NAT": lambda p: p.get("subject") == "natural science",
    "SOC": lambda p: p.get("subject") == "social science",
    "LAN": lambda p: p.get("subject") == "language science",
    "TXT": lambda p: bool(p.get("hint")),
    "IMG": lambda p: bool(p.get("image")),
    "NO": lambda p: not p.get("hint") and not p.get("image"),
    "G1-6": lambda p: p.get("grade") in {f"grade{i}" for i in range(1, 7)},
    "G7-12": lambda p: p.get("grade") in {f"grade{i}" for i in range(7, 13)},
}


def parse_option_letter(pred_text: str, options: list[str] = OPTIONS) -> str:
    """The option letter of an answer, or "FAILED" (LLaVA-1.5's rules, in order).

    1. the whole answer is a letter ("B"); 2. it starts with a letter, a period and a space ("B. a cat");
    3. "The answer is X" followed by any character occurs exactly once. No stripping, no lower case.
    """
    if pred_text in options:
        return pred_text
    if len(pred_text) >= 3 and pred_text[0] in options and pred_text[1:3] == ". ":
        return pred_text[0]
    found = ANSWER_IS.findall(pred_text)
    return found[0] if len(found) == 1 else "FAILED"


def pred_index(letter: str, num_choices: int, options: list[str] = OPTIONS) -> int:
    """Index of the letter among this problem's choices; -1 for FAILED or a letter past the last choice."""
    return options.index(letter) if letter in options[:num_choices] else -1


def score_science_qa(problems: dict[str, dict], split_ids: list[str], answers: list[dict]) -> dict:
    """Everything LLaVA and ScienceQA report; returns {"result", "analysis", "sqa_results"}."""
    predictions, duplicates = index_by_qid(answers)
    analysis = {"correct": [], "incorrect": []}
    sqa_results = {"acc": None, "correct": None, "count": None, "results": {}, "outputs": {}}
    hits: dict[str, bool] = {}
    missing = 0
    for prob_id in split_ids:
        if prob_id not in problems:
            raise ScoringInputError(f"pid_splits lists problem {prob_id!r}, which problems.json does not have")
        prob = problems[prob_id]
        pred = predictions.get(qid(prob_id))
        if pred is None:
            missing += 1
            pred = {"text": "FAILED", "prompt": "Unknown"}
        letter = parse_option_letter(pred["text"])
        index = pred_index(letter, len(prob["choices"]))
        hits[prob_id] = index == prob["answer"]
        analysis["correct" if hits[prob_id] else "incorrect"].append({
            "question_id": prob_id, "parsed_ans": letter, "ground_truth": OPTIONS[prob["answer"]],
            "question": pred.get("prompt", ""), "pred": pred["text"],
            "is_multimodal": "<image>" in pred.get("prompt", ""),
        })
        sqa_results["results"][prob_id] = index
        sqa_results["outputs"][prob_id] = pred["text"]

    total = len(hits)
    if not total:
        raise ScoringInputError("the split has no problems")
    correct = sum(hits.values())
    sqa_results.update(acc=100.0 * correct / total, correct=correct, count=total)
    subsets = {}
    for name, member in SUBSETS.items():
        ids = [p for p in hits if member(problems[p])]
        acc = ratio(sum(hits[p] for p in ids), len(ids))
        subsets[name] = {"accuracy": None if acc is None else 100.0 * acc, "questions": len(ids)}
    # LLaVA's "IMG-Accuracy" counts a problem as multimodal when its prompt had an <image> token.
    mm_correct = sum(a["is_multimodal"] for a in analysis["correct"])
    img_acc = ratio(mm_correct, mm_correct + sum(a["is_multimodal"] for a in analysis["incorrect"]))
    result = {"benchmark": "scienceqa", "accuracy": sqa_results["acc"], "correct": correct, "questions": total,
              "missing": missing, "duplicates": duplicates, "subsets": subsets,
              "llava_img_accuracy": None if img_acc is None else 100.0 * img_acc}
    return {"result": result, "analysis": analysis, "sqa_results": sqa_results}


def load_split(base_dir: str, split: str) -> tuple[dict, list[str]]:
    problems = read_json(os.path.join(base_dir, "problems.json"))
    splits = read_json(os.path.join(base_dir, "pid_splits.json"))
    if split not in splits:
        raise ScoringInputError(f"pid_splits.json has no split {split!r} (has: {', '.join(sorted(splits))})")
    return problems, [str(p) for p in splits[split]]


def summary_line(result: dict) -> str:
    subsets = " ".join(f"{k} {v['accuracy']:.2f}" for k, v in result["subsets"].items() if v["accuracy"] is not None)
    line = (f"ScienceQA: accuracy {result['accuracy']:.2f}% ({result['correct']}/{result['questions']}); "
            f"{subsets}")
    if result["missing"]:
        line += f"; {result['missing']} problems unanswered (counted wrong)"
    return line


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-dir", required=True, help="directory with problems.json and pid_splits.json")
    parser.add_argument("--result-file", required=True, help="answers JSONL")
    parser.add_argument("--output-file", default=None, help="correct / incorrect analyses (JSON)")
    parser.add_argument("--output-result", default=None, help="acc, counts, per-problem indices (JSON)")
    parser.add_argument("--split", default="test")
    add_result_json_arg(parser, "<result-file without .jsonl>.score.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        problems, split_ids = load_split(args.base_dir, args.split)
        scored = score_science_qa(problems, split_ids, read_answers(args.result_file))
        if args.output_file:
            write_json(args.output_file, scored["analysis"])
        if args.output_result:
            write_json(args.output_result, {**scored["sqa_results"], "subsets": scored["result"]["subsets"]})
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    result = scored["result"]
    result.update(base_dir=args.base_dir, split=args.split, result_file=args.result_file)
    return finish(summary_line(result), result, args.result_json or default_result_path(args.result_file))


if __name__ == "__main__":
    sys.exit(main())
