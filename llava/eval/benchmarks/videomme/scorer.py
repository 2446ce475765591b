r"""Video-MME score, by the official rule (Video-MME's evaluation/eval_your_results.py, the script its README
points to; lmms-eval's `videomme` task used the same extraction until April 2026).

    python -m llava.eval.benchmarks.videomme.scorer \
        --question-file playground/data/eval/videomme/videomme/test.json \
        --result-file playground/data/eval/videomme/answers/MODEL.jsonl \
        [--output-file playground/data/eval/videomme/results/MODEL.json] [--result-json PATH]

Extraction (`extract_characters_regex`): strip the response, delete the answer phrases "The best answer is",
"The correct answer is", "The answer is", "The answer", "The best option isThe correct option is" and
"Best answer:Best option:" (the official list misses two commas, so the last two entries are joined and never
match); a response of more than 10 words without any of A-D extracts nothing; otherwise the first A, B, C or D
anywhere in it is the answer: "The answer is (B)" gives B, "(c) red" nothing (case-sensitive), and a capital
letter inside a word counts ("Because ..." gives B).

Accuracy: the official script counts a question only when something was extracted ("answered"); `accuracy` and
the groups (by duration short / medium / long, by domain, sub-category and task type) are correct / answered.
lmms-eval's aggregation counts every question (nothing extracted is wrong): `accuracy_all_questions`.
Unanswered questions (no answer line) are left out of the first and counted wrong in the second. With
--output-file the answers are also written in the release's submission layout (output_test_template.json:
per video, its questions with `response`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import defaultdict

from llava.eval.core.scoring_io import (ScoringInputError, add_result_json_arg, default_result_path, fail, finish,
                                   index_by_qid, qid, read_answers, read_json, read_jsonl, write_json)

DURATIONS = ("short", "medium", "long")
# The official list, as written: "The best option is" "The correct option is" (and the two "Best ..." entries)
# are one string each in Python, for want of a comma.
ANSWER_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option is" "The correct option is",
    "Best answer:" "Best option:",
)
QUESTION_FIELDS = ("question_id", "videoID", "duration", "domain", "sub_category", "task_type", "answer")


def extract_characters_regex(response: str) -> str:
    """The answer letter in `response` by Video-MME's rule (module docstring); "" when there is none."""
    s = response.strip()
    for prefix in ANSWER_PREFIXES:
        s = s.replace(prefix, "")
    if len(s.split()) > 10 and not re.search("[ABCD]", s):
        return ""
    match = re.search(r"[ABCD]", s)
    return match[0] if match else ""


def read_parquet(path: str) -> list[dict]:
    """The rows of the release's test parquet (needs pyarrow)."""
    if not os.path.isfile(path):
        raise ScoringInputError(f"file not found: {path}")
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise ScoringInputError(f"{path}: reading parquet needs pyarrow (pip install pyarrow), or give the rows "
                                "as JSON") from None
    return pq.read_table(path).to_pylist()


def read_rows(path: str) -> list[dict]:
    """The question rows: the release's parquet, a JSON list of its rows, or JSONL."""
    if path.endswith(".parquet"):
        return read_parquet(path)
    rows = read_jsonl(path) if path.endswith(".jsonl") else read_json(path)
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ScoringInputError(f"{path}: expected a list of question rows")
    return rows


def load_questions(path: str) -> list[dict]:
    rows = read_rows(path)
    for i, row in enumerate(rows):
        lacking = [f for f in QUESTION_FIELDS if f not in row]
        if lacking:
            raise ScoringInputError(f"{path}[{i}]: lacks {', '.join(lacking)}")
    if not rows:
        raise ScoringInputError(f"{path}: no questions")
    return rows


def _accuracy(counts: dict) -> dict:
    answered = counts["answered"]
    return {**counts, "accuracy": 100.0 * counts["correct"] / answered if answered else 0.0}


def score_video_mme(questions: list[dict], answers: list[dict]) -> tuple[dict, list[dict]]:
    """The scores and each question with its `response` and `extracted` letter (where answered)."""
    index, duplicates = index_by_qid(answers)
    groups = {name: defaultdict(lambda: {"correct": 0, "answered": 0, "questions": 0})
              for name in ("duration", "domain", "sub_category", "task_type")}
    total = {"correct": 0, "answered": 0, "questions": 0}
    missing, unextracted, per_question = 0, 0, []
    for q in questions:
        row = index.get(qid(q["question_id"]))
        result = dict(q)
        counted = [total] + [groups[name][q[name]] for name in groups]
        for c in counted:
            c["questions"] += 1
        if row is None:
            missing += 1
        else:
            result["response"] = row["text"]
            result["extracted"] = extract_characters_regex(row["text"])
            if result["extracted"]:
                right = result["extracted"] == q["answer"]
                for c in counted:
                    c["answered"] += 1
                    c["correct"] += right
            else:
                unextracted += 1
        per_question.append(result)
    ordered = {"duration": [d for d in DURATIONS if d in groups["duration"]] +
               sorted(d for d in groups["duration"] if d not in DURATIONS)}
    summary = {
        "benchmark": "videomme",
        **_accuracy(total),
        "accuracy_all_questions": 100.0 * total["correct"] / total["questions"],
        "missing": missing, "unextracted": unextracted, "duplicates": duplicates,
        "unmatched": len(set(index) - {qid(q["question_id"]) for q in questions}),
        **{f"per_{name}": {key: _accuracy(groups[name][key]) for key in ordered.get(name, sorted(groups[name]))}
           for name in groups},
    }
    return summary, per_question


def submission(per_question: list[dict]) -> list[dict]:
    """The answers in the release's submission layout (evaluation/output_test_template.json)."""
    videos: dict[str, dict] = {}
    for q in per_question:
        video = videos.setdefault(q["videoID"], {
            "video_id": q.get("video_id", q["videoID"]), "duration_category": q["duration"],
            "video_category": q["domain"], "video_subcategory": q["sub_category"], "url": q.get("url", ""),
            "missing": False, "questions": []})
        video["questions"].append({"question_id": q["question_id"], "task_type": q["task_type"],
                                   "question": q.get("question", ""), "choices": q.get("options", []),
                                   "answer": q["answer"], "response": q.get("response", "")})
        video["missing"] |= "response" not in q
    return list(videos.values())


def summary_line(result: dict) -> str:
    parts = [f"{d} {c['accuracy']:.1f}%" for d, c in result["per_duration"].items()]
    line = (f"Video-MME: accuracy {result['accuracy']:.2f}% over {result['answered']} answered of "
            f"{result['questions']} questions ({', '.join(parts)}); {result['accuracy_all_questions']:.2f}% "
            "counting every question (lmms-eval)")
    if result["unextracted"]:
        line += f"; {result['unextracted']} answers without a letter"
    if result["missing"]:
        line += f"; {result['missing']} unanswered"
    return line


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--question-file", required=True, help="the release's test parquet, or its rows as JSON")
    parser.add_argument("--result-file", required=True, help="answers JSONL (llava.eval.benchmarks.videomme.worker)")
    parser.add_argument("--output-file", default=None,
                        help="also write the answers in the release's submission layout (per video, with response)")
    add_result_json_arg(parser, "<result-file without .jsonl>.score.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result, per_question = score_video_mme(load_questions(args.question_file), read_answers(args.result_file))
        if args.output_file:
            write_json(args.output_file, submission(per_question), indent=4)
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    result.update(question_file=args.question_file, result_file=args.result_file, output_file=args.output_file)
    return finish(summary_line(result), result, args.result_json or default_result_path(args.result_file))


if __name__ == "__main__":
    sys.exit(main())
