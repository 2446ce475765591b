r"""Q-Bench A1 (LLVisionQA) accuracy on the dev split, and the answers file Q-Bench's authors score the
test split from (its answers are not public).

    python -m llava.eval.benchmarks.qbench.scorer \
        --questions-file playground/data/eval/qbench/llvisionqa_dev.json \
        --result-file playground/data/eval/qbench/answers/MODEL.jsonl \
        --submission-file playground/data/eval/qbench/llvisionqa_dev_MODEL_answers.jsonl [--result-json PATH]

Q-Bench's metric is answer accuracy. Its authors judge the free-form answers with GPT; here a response
counts when it is exactly the correct candidate's text, or MMBench's exact-matching step (`infer_answer`:
a letter the response names, else the one candidate whose text it contains) picks the correct candidate, and a response it cannot match counts as
wrong (`unparsed`). Reported overall and per question type (yes-or-no, how, what: `type` 0, 1, 2) and
concern (distortion, others, in-context distortion, in-context others: `concern` 0-3), the columns of
Q-Bench's leaderboard. Unanswered questions count as wrong. The submission file is LLaVA's: each entry
of the questions file with its `response`, one per line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter

from llava.eval.benchmarks.mmbench.convert import infer_answer
from llava.eval.core.scoring_io import (ScoringInputError, add_result_json_arg, default_result_path, fail, finish,
                                   index_by_qid, qid, read_answers, read_json, write_jsonl)

logger = logging.getLogger(__name__)

LETTERS = "ABCD"
TYPE_NAMES = {0: "yes-or-no", 1: "how", 2: "what"}
CONCERN_NAMES = {0: "distortion", 1: "others", 2: "in-context distortion", 3: "in-context others"}
SUBMIT_TO = "haoning001@e.ntu.edu.sg"  # Q-Bench's README: "email ... to submit your result in json format"


def load_questions(path: str) -> list[dict]:
    entries = read_json(path)
    if not isinstance(entries, list):
        raise ScoringInputError(f"{path}: expected LLVisionQA's JSON list of questions")
    for i, entry in enumerate(entries):
        lacking = [k for k in ("question", "candidates", "type", "concern")
                   if not isinstance(entry, dict) or k not in entry]
        if lacking:
            raise ScoringInputError(f"{path}: entry #{i} lacks {', '.join(lacking)}")
        if "correct_ans" in entry and entry["correct_ans"] not in entry["candidates"]:
            raise ScoringInputError(f"{path}: entry #{i}: correct_ans {entry['correct_ans']!r} is not a candidate")
    return entries


def predicted_candidate(response: str, candidates: list[str]) -> int | None:
    """The index of the candidate the response names, or None. A response that is exactly one candidate's
    text picks it first: MMBench's substring step alone finds two candidates in "bottom left" when "left"
    is one too."""
    exact = [i for i, c in enumerate(candidates) if response.strip().rstrip(".").lower() == c.strip().lower()]
    if len(exact) == 1:
        return exact[0]
    letter = infer_answer(response, dict(zip(LETTERS, candidates)))
    return LETTERS.index(letter) if letter and LETTERS.index(letter) < len(candidates) else None


def _acc(right: int, total: int) -> dict:
    return {"accuracy": 100.0 * right / total if total else None, "correct": right, "questions": total}


def score_qbench(entries: list[dict], answers: list[dict]) -> dict:
    index, duplicates = index_by_qid(answers)
    right, total = Counter(), Counter()
    missing = unparsed = 0
    for position, entry in enumerate(entries):
        row = index.get(qid(position))
        groups = ("all", ("type", entry["type"]), ("concern", entry["concern"]))
        hit = False
        if row is None:
            missing += 1
        else:
            picked = predicted_candidate(row["text"], entry["candidates"])
            unparsed += picked is None
            hit = picked is not None and entry["candidates"][picked] == entry["correct_ans"]
        for group in groups:
            right[group] += hit
            total[group] += 1
    if not entries:
        raise ScoringInputError("the questions file has no entries")
    return {
        "benchmark": "qbench", **_acc(right["all"], total["all"]), "missing": missing, "unparsed": unparsed,
        "duplicates": duplicates,
        "per_type": {TYPE_NAMES.get(t, str(t)): _acc(right[("type", t)], total[("type", t)])
                     for t in sorted({e["type"] for e in entries}, key=str)},
        "per_concern": {CONCERN_NAMES.get(c, str(c)): _acc(right[("concern", c)], total[("concern", c)])
                        for c in sorted({e["concern"] for e in entries}, key=str)},
    }


def submission_lines(entries: list[dict], answers: list[dict]) -> list[dict]:
    index, _ = index_by_qid(answers)
    return [{**entry, "response": index[qid(i)]["text"]} for i, entry in enumerate(entries) if qid(i) in index]


def summary_line(result: dict, submission: str | None) -> str:
    groups = ", ".join(f"{name} {v['accuracy']:.2f}%" for part in ("per_type", "per_concern")
                       for name, v in result[part].items())
    line = f"Q-Bench: accuracy {result['accuracy']:.2f}% over {result['questions']} questions ({groups})"
    extras = [f"{result[k]} {k}" for k in ("missing", "unparsed") if result[k]]
    if extras:
        line += f"; {', '.join(extras)} (counted wrong)"
    return line + (f"; answers for Q-Bench: {submission}" if submission else "")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions-file", required=True, help="llvisionqa_dev.json or llvisionqa_test.json")
    parser.add_argument("--result-file", required=True, help="answers JSONL (llava.eval.benchmarks.qbench.worker)")
    parser.add_argument("--submission-file", default=None, help="write the entries with their responses here")
    add_result_json_arg(parser, "<result-file without .jsonl>.score.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        entries = load_questions(args.questions_file)
        answers = read_answers(args.result_file)
        submission = submission_lines(entries, answers)
        if args.submission_file:
            write_jsonl(args.submission_file, submission)
        if not all("correct_ans" in e for e in entries):  # the test split: only Q-Bench's authors can score it
            where = args.submission_file or "(no --submission-file given)"
            print(f"Q-Bench: {len(submission)} of {len(entries)} questions answered, written to {where}; "
                  f"the split has no public answers: email the file to {SUBMIT_TO} (Q-Bench's README)")
            return 0
        result = score_qbench(entries, answers)
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    if result["missing"]:
        logger.warning("%d Q-Bench questions have no answer; they are left out of the submission", result["missing"])
    result.update(questions_file=args.questions_file, result_file=args.result_file,
                  submission_file=args.submission_file)
    return finish(summary_line(result, args.submission_file), result,
                  args.result_json or default_result_path(args.result_file))


if __name__ == "__main__":
    sys.exit(main())
