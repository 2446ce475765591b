r"""AI2D test accuracy, by lmms-eval's rule for its `ai2d` task.

    python -m llava.eval.benchmarks.ai2d.scorer \
        --question-file playground/data/eval/ai2d/ai2d_test_ids.csv \
        --result-file playground/data/eval/ai2d/answers/MODEL.jsonl [--questions-folder DIR] [--result-json PATH]

The rule (lmms_eval/tasks/ai2d/ai2d.yaml and utils.py, unchanged from May 2024 to 2026): the "flexible-extract"
filter (`MultiChoiceRegexFilter.apply`) keeps only the letter when the response starts with a capital letter
and a full stop (`^\s*([A-Z])\.`: "A." or " B. cat"), else the whole response; then `exact_match` with
ignore_case and ignore_punctuation compares it, stripped, lower-cased and without ASCII punctuation, with the
correct option's letter. So "A", "a", "A.", "(B)", "B)", "**C**" count; "The answer is C", "C: cat", "A cat" and
the option's text do not. Accuracy is the mean over the test questions (3,088 on the full split); unanswered
questions count as wrong. Not circular: each question once, as lmms-eval asks it.

Reported also by `abcLabel` (questions about letters drawn over the diagram, and the rest).
"""

from __future__ import annotations

import argparse
import re
import string
import sys
from collections import Counter

from llava.eval.benchmarks.ai2d.release import Ai2dFileError, Question, read_split
from llava.eval.core.scoring_io import (ScoringInputError, add_result_json_arg, default_result_path, fail, finish,
                                        check_known, index_by_qid, qid, read_numbered_answers)

LEADING_LETTER = re.compile(r"^\s*([A-Z])\.")  # lmms-eval's MultiChoiceRegexFilter (case-sensitive)
NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """exact_match's ignore_case and ignore_punctuation, after lmms-eval's strip of the filtered response."""
    return text.strip().lower().translate(NO_PUNCTUATION)


def extract(response: str) -> str:
    """What lmms-eval compares: the leading "X." letter, else the whole response, normalized."""
    match = LEADING_LETTER.match(response)
    return normalize(match.group(1) if match else response)


def is_right(response: str, correct: int) -> bool:
    return extract(response) == normalize(string.ascii_uppercase[correct])


def _acc(right: int, total: int) -> dict:
    return {"accuracy": 100.0 * right / total if total else None, "correct": right, "questions": total}


def score_ai2d(questions: list[Question], answers: list[dict]) -> dict:
    index, duplicates = index_by_qid(answers)
    right, total = Counter(), Counter()
    missing = not_a_letter = 0
    for q in questions:
        row = index.get(qid(q.question_id))
        group = "abc_label" if q.abc_label else "plain"
        hit = False
        if row is None:
            missing += 1
        else:
            predicted = extract(row["text"])
            not_a_letter += not (len(predicted) == 1 and predicted.upper() in string.ascii_uppercase[:len(q.options)])
            hit = is_right(row["text"], q.correct)
        for key in ("all", group):
            right[key] += hit
            total[key] += 1
    if not questions:
        raise ScoringInputError("the split has no questions")
    return {"benchmark": "ai2d", **_acc(right["all"], total["all"]), "missing": missing,
            "not_a_letter": not_a_letter, "duplicates": duplicates,
            "per_abc_label": {k: _acc(right[k], total[k]) for k in ("plain", "abc_label") if total[k]}}


def summary_line(result: dict) -> str:
    groups = ", ".join(f"{k} {v['accuracy']:.2f}% of {v['questions']}" for k, v in result["per_abc_label"].items())
    line = (f"AI2D test: accuracy {result['accuracy']:.2f}% ({result['correct']} of {result['questions']}; "
            f"{groups})")
    extras = [f"{result[k]} {k.replace('_', ' ')}" for k in ("missing", "not_a_letter") if result[k]]
    return line + (f"; {', '.join(extras)} (counted wrong)" if extras else "")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--question-file", required=True, help="ai2d_test_ids.csv (the split)")
    parser.add_argument("--questions-folder", default=None, help="AI2D's questions/ (default: beside the csv)")
    parser.add_argument("--result-file", required=True, help="answers JSONL (llava.eval.benchmarks.ai2d.worker)")
    add_result_json_arg(parser, "<result-file without .jsonl>.score.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        questions = read_split(args.question_file, args.questions_folder)
        numbered = read_numbered_answers(args.result_file)
        answers = [row for _, row in numbered]
        check_known(args.result_file, numbered, {qid(q.question_id) for q in questions},
                    f"the split {args.question_file}")
        result = score_ai2d(questions, answers)
    except (ScoringInputError, Ai2dFileError, OSError) as e:
        return fail(str(e))
    result.update(question_file=args.question_file, result_file=args.result_file)
    return finish(summary_line(result), result, args.result_json or default_result_path(args.result_file))


if __name__ == "__main__":
    sys.exit(main())
