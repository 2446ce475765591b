r"""ChartQA score: relaxed accuracy on the human and the augmented test questions, and their mean.

    python -m llava.eval.benchmarks.chartqa.scorer \
        --annotations "playground/data/eval/chartqa/ChartQA Dataset/test" \
        --result-file playground/data/eval/chartqa/answers/MODEL.jsonl [--result-json PATH] [--allow-missing]

The rule is pix2struct's `relaxed_correctness` (google-research/pix2struct, pix2struct/metrics.py; the ChartQA
paper, section 5.1, after Methani et al. 2020), which lmms-eval's chartqa task (lmms_eval/tasks/chartqa/utils.py)
and Qwen-VL's evaluate_vqa.py repeat:

- an answer is a number when Python's float() reads it, after a trailing "%" is stripped and the number divided
  by 100 ("62%" is 0.62, so "62%" against a gold "62" is wrong; float() itself ignores outer whitespace and
  reads "60." as 60);
- a numeric prediction against a numeric gold is right within 5% relative error of the gold:
  |prediction - gold| / |gold| <= 0.05, both ends included;
- otherwise, and always when the gold is 0 (the rule tests the gold's truthiness, so "0" needs an exact "0" and
  "0.0" is wrong), the two strings must be equal ignoring case; nothing else is normalised: "Red." is not "red".

The prediction is stripped of outer whitespace first, as lmms-eval's model wrappers and Qwen-VL do with the
generated text; the gold label is used as released. (Qwen-VL passes the prediction where pix2struct expects the
gold, dividing by the prediction; lmms-eval and pix2struct divide by the gold, as here.)

The score of a set is the share of its questions answered right. lmms-eval reports relaxed_human_split,
relaxed_augmented_split and relaxed_overall (over all questions pooled); papers report "ChartQA" as the mean of
the two sets, which is the same number on the full test set (1,250 questions each). `overall` here is that mean
(or the one set's accuracy when only one file is scored), `pooled` lmms-eval's relaxed_overall. Answers pair
with questions by `question_id` "<set>/<position>" (`llava.eval.benchmarks.chartqa.worker`).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from llava.eval.benchmarks.chartqa.layout import LayoutError, parse_question_id, question_files, question_id
from llava.eval.core.scoring_io import (ScoringInputError, add_result_json_arg, 
                                        default_result_path, fail, finish, read_json, read_numbered_answers)

MAX_RELATIVE_CHANGE = 0.05


def _to_float(text: str) -> float | None:
    try:
        return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def relaxed_correctness(prediction: str, target: str, max_relative_change: float = MAX_RELATIVE_CHANGE) -> bool:
    """pix2struct's rule (see the module docstring); `prediction` is used as given (the scorer strips it)."""
    predicted, gold = _to_float(prediction), _to_float(target)
    if predicted is not None and gold:
        return abs(predicted - gold) / abs(gold) <= max_relative_change
    return prediction.lower() == target.lower()


def load_annotations(path: str) -> dict[str, list[dict]]:
    """{set: entries} of the split folder or question file at `path`; every entry needs a string `label`."""
    sets = {}
    for question_set, file in question_files(path):
        entries = read_json(file)
        if not isinstance(entries, list):
            raise ScoringInputError(f"{file}: expected ChartQA's JSON list of questions")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("label"), str):
                raise ScoringInputError(f"{file}[{i}]: expected an object with a string 'label'")
        sets[question_set] = entries
    return sets


def read_answer_lines(path: str) -> dict[str, tuple[int, dict]]:
    """{question_id: (line number, answer)} of an answers JSONL file; every error names the file and line."""
    found: dict[str, tuple[int, dict]] = {}
    for lineno, row in read_numbered_answers(path):
        key = str(row["question_id"])
        if key in found:
            raise ScoringInputError(f"{path}:{lineno}: question {key!r} was answered already on line {found[key][0]}")
        found[key] = (lineno, row)
    return found


def _accuracy(right: int, total: int) -> dict:
    return {"correct": right, "questions": total, "accuracy": 100.0 * right / total}


def score_chartqa(sets: dict[str, list[dict]], answers: dict[str, tuple[int, dict]], answers_path: str = "answers",
                  allow_missing: bool = False) -> dict:
    """The scores in %: per set, their mean (`overall`, the `score`) and the pooled accuracy."""
    ranges = ", ".join(f"{s}/0..{len(e) - 1}" for s, e in sets.items())
    for key, (lineno, row) in answers.items():
        parsed = parse_question_id(key)
        if parsed is None or parsed[0] not in sets or parsed[1] >= len(sets[parsed[0]]):
            raise ScoringInputError(f"{answers_path}:{lineno}: question_id {row['question_id']!r} is not a question "
                                    f"of the annotations ({ranges})")
        if "set" in row and row["set"] != parsed[0]:
            raise ScoringInputError(f"{answers_path}:{lineno}: question {key!r} is marked as set {row['set']!r}")
    missing = [question_id(s, k) for s, entries in sets.items() for k in range(len(entries))
               if question_id(s, k) not in answers]
    if missing and not allow_missing:
        raise ScoringInputError(f"{answers_path}: no answer for {len(missing)} of {sum(map(len, sets.values()))} "
                                f"questions (first: {', '.join(missing[:3])}); finish the run, or score with "
                                "--allow-missing to count them wrong")
    if not any(sets.values()):
        raise ScoringInputError("the annotations hold no questions")
    right = Counter()
    for question_set, entries in sets.items():
        for k, entry in enumerate(entries):
            answer = answers.get(question_id(question_set, k))
            if answer is not None and relaxed_correctness(answer[1]["text"].strip(), entry["label"]):
                right[question_set] += 1
    per_set = {s: _accuracy(right[s], len(e)) for s, e in sets.items() if e}
    total = sum(len(e) for e in sets.values())
    overall = sum(r["accuracy"] for r in per_set.values()) / len(per_set)
    return {"benchmark": "chartqa", "metric": "relaxed accuracy", "score": overall, "overall": overall,
            "pooled": 100.0 * sum(right.values()) / total, **per_set, "questions": total, "missing": len(missing)}


def summary_line(result: dict) -> str:
    parts = [f"{s} {result[s]['accuracy']:.2f} ({result[s]['correct']}/{result[s]['questions']})"
             for s in ("human", "augmented") if s in result]
    line = f"ChartQA: relaxed accuracy {result['overall']:.2f} (mean of the sets): {', '.join(parts)}"
    if result["missing"]:
        line += f"; {result['missing']} unanswered (counted wrong)"
    return line


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", required=True,
                        help="the split folder (ChartQA Dataset/test: test_human.json and test_augmented.json) or "
                             "one of its question files")
    parser.add_argument("--result-file", required=True, help="answers JSONL (llava.eval.benchmarks.chartqa.worker)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="score a partial run, counting unanswered questions wrong (default: an error)")
    add_result_json_arg(parser, "<result-file without .jsonl>.score.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = score_chartqa(load_annotations(args.annotations), read_answer_lines(args.result_file),
                               args.result_file, args.allow_missing)
    except (ScoringInputError, LayoutError, OSError) as e:
        return fail(str(e))
    result.update(annotations=args.annotations, result_file=args.result_file)
    return finish(summary_line(result), result, args.result_json or default_result_path(args.result_file))


if __name__ == "__main__":
    sys.exit(main())
