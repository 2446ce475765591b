r"""The RRC submission file of a DocVQA or InfographicVQA split, for the test splits (their answers are not public).

    python -m llava.eval.benchmarks.docvqa.convert \
        --question-file playground/data/eval/docvqa/spdocvqa_qas/test_v1.0.json \
        --result-file playground/data/eval/docvqa/answers_test/MODEL.jsonl \
        --output-file playground/data/eval/docvqa/answers_upload/MODEL.json

writes [{"questionId": int, "answer": str}, ...], one entry per question of the question file in its order:
the layout the RRC's evaluation validates (a JSON list; as many answers as questions; the same questionIds;
each answer a single string) and lmms-eval's docvqa_test / infovqa_test submission files. Upload it at
https://rrc.cvc.uab.es/?ch=17&com=mymethods (Task 1 for DocVQA, Task 3 for InfographicVQA). Answers are
written as generated; a question without an answer gets "" (counted and reported), an answer to a question the
file does not have is an error.
"""

from __future__ import annotations

import argparse
import sys

from llava.eval.benchmarks.docvqa.scorer import pair_answers
from llava.eval.core.scoring_io import ScoringInputError, fail, qid, read_json, read_numbered_answers, write_json

SUBMIT_URL = "https://rrc.cvc.uab.es/?ch=17&com=mymethods"


def load_questions(path: str) -> list[dict]:
    """The entries of an RRC question file (answers not needed), each with an integer `questionId`."""
    content = read_json(path)
    if not isinstance(content, dict) or not isinstance(content.get("data"), list):
        raise ScoringInputError(f"{path}: expected the RRC layout, an object whose 'data' is the list of questions")
    for i, entry in enumerate(content["data"]):
        try:
            int(entry["questionId"])
        except (TypeError, KeyError, ValueError):
            raise ScoringInputError(f"{path}: data[{i}]: expected an object with an integer 'questionId'") from None
    return content["data"]


def submission(questions: list[dict], texts: dict[str, str]) -> tuple[list[dict], int]:
    """(the submission entries in question order, how many questions had no answer)."""
    rows = [{"questionId": int(q["questionId"]), "answer": texts.get(qid(q["questionId"]), "")} for q in questions]
    return rows, sum(qid(q["questionId"]) not in texts for q in questions)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--question-file", required=True, help="the split's official question file")
    parser.add_argument("--result-file", required=True, help="answers JSONL (the benchmark's worker)")
    parser.add_argument("--output-file", required=True, help="the submission JSON to write")
    args = parser.parse_args(argv)
    try:
        questions = load_questions(args.question_file)
        texts = pair_answers(questions, read_numbered_answers(args.result_file), args.result_file, allow_missing=True)
        rows, missing = submission(questions, texts)
        write_json(args.output_file, rows, indent=None)
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    note = f" ({missing} without an answer, written as \"\")" if missing else ""
    print(f"RRC submission: {len(rows)} answers{note} -> {args.output_file}; upload it at {SUBMIT_URL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
