r"""DocVQA val score: ANLS, by the official rule (`llava.eval.core.anls`).

    python -m llava.eval.benchmarks.docvqa.scorer \
        --annotation-file playground/data/eval/docvqa/spdocvqa_qas/val_v1.0_withQT.json \
        --result-file playground/data/eval/docvqa/answers/MODEL.jsonl \
        [--output-file per_question.json] [--anls-threshold 0.5] [--allow-missing] [--result-json PATH]

Each question scores 1 - the smallest normalised Levenshtein distance between the answer and one of its gold
answers, 0 below the threshold; ANLS is the mean over all questions of the annotation file (0-1, as the RRC
reports it; the result JSON's `score` is the same in %). As the official script (which validates a
submission before scoring it), every question must be answered exactly once and every answer must be to a
question of the file; --allow-missing scores unanswered questions 0 instead of refusing. With the question
types of val_v1.0_withQT.json, the result also has the ANLS per type (a question counts in each of its types).
Answers pair with questions by `question_id` = `questionId` (`llava.eval.benchmarks.docvqa.worker`).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence

from llava.eval.core.anls import THRESHOLD, question_score
from llava.eval.core.scoring_io import (ScoringInputError, add_result_json_arg, 
                                        default_result_path, fail, finish, qid, read_json, read_numbered_answers,
                                        write_json)

DOCVQA_BREAKDOWN = {"question_types": "question_types"}  # result key -> the entry's list of types


def load_ground_truth(path: str) -> list[dict]:
    """The entries of an RRC annotation file, each with a `questionId` and a non-empty list of `answers`."""
    content = read_json(path)
    if not isinstance(content, dict) or not isinstance(content.get("data"), list):
        raise ScoringInputError(f"{path}: expected the RRC layout, an object whose 'data' is the list of questions")
    seen: dict[str, int] = {}
    for i, entry in enumerate(content["data"]):
        where = f"{path}: data[{i}]"
        if not isinstance(entry, dict) or "questionId" not in entry:
            raise ScoringInputError(f"{where}: expected an object with a 'questionId'")
        if "answers" not in entry:
            raise ScoringInputError(f"{where}: no 'answers' (a test split? its answers are not public: write the "
                                    "submission file with llava.eval.benchmarks.docvqa.convert)")
        answers = entry["answers"]
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
            raise ScoringInputError(f"{where}: 'answers' must be a non-empty list of strings")
        key = qid(entry["questionId"])
        if key in seen:
            raise ScoringInputError(f"{where}: questionId {entry['questionId']} again (first at data[{seen[key]}])")
        seen[key] = i
    return content["data"]


def pair_answers(entries: list[dict], lines: list[tuple[int, dict]], path: str, allow_missing: bool
                 ) -> dict[str, str]:
    """{qid: answer text}; an answer to an unknown or already answered question is an error, and so is an
    unanswered question unless `allow_missing`."""
    known = {qid(e["questionId"]) for e in entries}
    texts, first_line = {}, {}
    for lineno, row in lines:
        key = qid(row["question_id"])
        if key not in known:
            raise ScoringInputError(f"{path}:{lineno}: an answer to question {row['question_id']!r}, which the "
                                    "annotation file does not have")
        if key in texts:
            raise ScoringInputError(f"{path}:{lineno}: question {row['question_id']!r} is answered again (first on "
                                    f"line {first_line[key]})")
        texts[key], first_line[key] = row["text"], lineno
    missing = [e["questionId"] for e in entries if qid(e["questionId"]) not in texts]
    if missing and not allow_missing:
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise ScoringInputError(f"{path}: no answer to {len(missing)} of the {len(entries)} questions (questionId "
                                f"{shown}); the official script refuses such a file (--allow-missing scores them 0)")
    return texts


def score_anls(entries: list[dict], texts: Mapping[str, str], benchmark: str, threshold: float = THRESHOLD,
               breakdown: Mapping[str, str] = DOCVQA_BREAKDOWN) -> tuple[dict, dict]:
    """The scores and the official per-question results ({questionId: {score, question, gt, det}})."""
    if not entries:
        raise ScoringInputError("the annotation file has no questions")
    total = 0.0
    by_type: dict[str, dict[str, list[float]]] = {key: defaultdict(list) for key in breakdown}
    per_question = {}
    for entry in entries:
        key = qid(entry["questionId"])
        text = texts.get(key)
        score = 0.0 if text is None else question_score(text, entry["answers"], threshold)
        total += score
        for result_key, field in breakdown.items():
            names = entry.get(field) or ()
            for name in [names] if isinstance(names, str) else names:
                by_type[result_key][str(name)].append(score)
        per_question[key] = {"score": score, "question": entry.get("question"), "gt": entry["answers"], "det": text}
    anls = total / len(entries)
    result = {"benchmark": benchmark, "anls": anls, "score": 100.0 * anls, "questions": len(entries),
              "missing": len(entries) - sum(qid(e["questionId"]) in texts for e in entries), "threshold": threshold}
    for result_key, types in by_type.items():
        if types:
            result[result_key] = {name: {"anls": sum(s) / len(s), "questions": len(s)}
                                  for name, s in sorted(types.items())}
    return result, per_question


def summary_line(title: str, result: dict, breakdown: Sequence[str]) -> str:
    line = f"{title}: ANLS {result['anls']:.4f} ({result['score']:.2f}%) over {result['questions']} questions"
    if result["missing"]:
        line += f", {result['missing']} unanswered (scored 0)"
    for key in breakdown:
        if key in result:
            line += "; " + ", ".join(f"{name} {c['anls']:.3f} ({c['questions']})" for name, c in result[key].items())
    return line


def parse_args(description: str, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotation-file", required=True, help="the official question file with answers (val)")
    parser.add_argument("--result-file", required=True, help="answers JSONL (the benchmark's worker)")
    parser.add_argument("--output-file", default=None,
                        help="also write the per-question results ({questionId: {score, question, gt, det}}, "
                             "the official script's per_sample_result)")
    parser.add_argument("--anls-threshold", type=float, default=THRESHOLD,
                        help=f"question scores below it count 0 (default {THRESHOLD}, the official one)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="score unanswered questions 0 instead of refusing the answers file")
    add_result_json_arg(parser, "<result-file without .jsonl>.score.json")
    return parser.parse_args(argv)


def run(argv, benchmark: str, title: str, description: str, breakdown: Mapping[str, str]) -> int:
    """The scorer's command line, shared by DocVQA and InfographicVQA (they differ in the type breakdown)."""
    args = parse_args(description, argv)
    try:
        entries = load_ground_truth(args.annotation_file)
        texts = pair_answers(entries, read_numbered_answers(args.result_file), args.result_file, args.allow_missing)
        result, per_question = score_anls(entries, texts, benchmark, args.anls_threshold, breakdown)
        if args.output_file:
            write_json(args.output_file, per_question)
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    result.update(annotation_file=args.annotation_file, result_file=args.result_file, output_file=args.output_file)
    return finish(summary_line(title, result, list(breakdown)), result,
                  args.result_json or default_result_path(args.result_file))


def main(argv=None) -> int:
    return run(argv, "docvqa", "DocVQA", __doc__, DOCVQA_BREAKDOWN)


if __name__ == "__main__":
    sys.exit(main())
