r"""OCRBench score, by the official rule (OCRBench's evaluation scripts; the DART release's OCRBench worker
applies the same one).

    python -m llava.eval.benchmarks.ocrbench.scorer \
        --annotation-file playground/data/eval/OCRBench/OCRBench/OCRBench.json \
        --result-file playground/data/eval/OCRBench/answers/MODEL.jsonl \
        [--output-file playground/data/eval/OCRBench/results/MODEL.json] [--result-json PATH]

An entry is right when one of its answers occurs in the prediction: both lower-cased, stripped and with
line breaks turned into spaces; for HME100k (handwritten formulas) case is kept and every space removed
instead. The OCRBench score is the number of right entries (out of 1,000 on the full set): text
recognition (six types, 300), scene-text-centric VQA (200), doc-oriented VQA (200), key information
extraction (200), handwritten mathematical expression recognition (100). Unanswered entries count as
wrong. Answers pair with entries by position (`question_id`, as `llava.eval.benchmarks.ocrbench.worker` writes).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from llava.eval.core.scoring_io import (ScoringInputError, add_result_json_arg, default_result_path, fail, finish,
                                   index_by_qid, qid, read_answers, read_json, write_json)

TEXT_RECOGNITION_TYPES = ("Regular Text Recognition", "Irregular Text Recognition", "Artistic Text Recognition",
                          "Handwriting Recognition", "Digit String Recognition", "Non-Semantic Text Recognition")
OTHER_TYPES = ("Scene Text-centric VQA", "Doc-oriented VQA", "Key Information Extraction",
               "Handwritten Mathematical Expression Recognition")
FORMULA_DATASET = "HME100k"


def normalize(text: str, dataset_name: str) -> str:
    if dataset_name == FORMULA_DATASET:
        return text.strip().replace("\n", " ").replace(" ", "")
    return text.lower().strip().replace("\n", " ")


def is_right(prediction: str, answers: str | list[str], dataset_name: str) -> bool:
    predicted = normalize(prediction, dataset_name)
    return any(normalize(a, dataset_name) in predicted for a in ([answers] if isinstance(answers, str) else answers))


def load_annotations(path: str) -> list[dict]:
    entries = read_json(path)
    if not isinstance(entries, list):
        raise ScoringInputError(f"{path}: expected OCRBench's JSON list of entries")
    for i, entry in enumerate(entries):
        lacking = [k for k in ("dataset_name", "answers", "type") if not isinstance(entry, dict) or k not in entry]
        if lacking:
            raise ScoringInputError(f"{path}: entry #{i} lacks {', '.join(lacking)}")
        answers = entry["answers"]
        if not (isinstance(answers, str) or isinstance(answers, list) and all(isinstance(a, str) for a in answers)):
            raise ScoringInputError(f"{path}: entry #{i}: 'answers' must be a string or a list of strings")
    return entries


def _count(right: Counter, total: Counter, key: str) -> dict:
    return {"correct": right[key], "questions": total[key]}


def score_ocrbench(entries: list[dict], answers: list[dict]) -> tuple[dict, list[dict]]:
    """The scores and the official per-entry results (each entry with `predict` and `result` 0/1 where
    answered, as OCRBench's scripts save them)."""
    index, duplicates = index_by_qid(answers)
    right_by_type, by_type, right_by_dataset, by_dataset = Counter(), Counter(), Counter(), Counter()
    results, missing = [], 0
    for position, entry in enumerate(entries):
        row = index.get(qid(position))
        result = dict(entry)
        by_type[entry["type"]] += 1
        by_dataset[entry["dataset_name"]] += 1
        if row is None:
            missing += 1
        else:
            result["predict"] = row["text"]
            result["result"] = int(is_right(row["text"], entry["answers"], entry["dataset_name"]))
            right_by_type[entry["type"]] += result["result"]
            right_by_dataset[entry["dataset_name"]] += result["result"]
        results.append(result)
    if not entries:
        raise ScoringInputError("the annotation file has no entries")
    score = sum(right_by_type.values())
    recognition = {"correct": sum(right_by_type[t] for t in TEXT_RECOGNITION_TYPES),
                   "questions": sum(by_type[t] for t in TEXT_RECOGNITION_TYPES)}
    known = TEXT_RECOGNITION_TYPES + OTHER_TYPES
    types = [t for t in known if by_type[t]] + sorted(t for t in by_type if t not in known)
    summary = {
        "benchmark": "ocrbench", "score": score, "questions": len(entries), "accuracy": 100.0 * score / len(entries),
        "missing": missing, "duplicates": duplicates,
        "unmatched": sum(1 for k in index if not (k.isdigit() and int(k) < len(entries))),
        "text_recognition": recognition,
        "per_type": {t: _count(right_by_type, by_type, t) for t in types},
        "per_dataset": {d: {**_count(right_by_dataset, by_dataset, d),
                            "accuracy": 100.0 * right_by_dataset[d] / by_dataset[d]} for d in sorted(by_dataset)},
    }
    return summary, results


def summary_line(result: dict) -> str:
    parts = [f"text recognition {result['text_recognition']['correct']}/{result['text_recognition']['questions']}"] \
        if result["text_recognition"]["questions"] else []
    parts += [f"{t} {c['correct']}/{c['questions']}" for t, c in result["per_type"].items()
              if t not in TEXT_RECOGNITION_TYPES]
    line = (f"OCRBench: score {result['score']} of {result['questions']} ({result['accuracy']:.2f}%; the full set "
            f"has 1000): {', '.join(parts)}")
    if result["missing"]:
        line += f"; {result['missing']} unanswered (counted wrong)"
    return line


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotation-file", required=True, help="OCRBench.json")
    parser.add_argument("--result-file", required=True, help="answers JSONL (llava.eval.benchmarks.ocrbench.worker)")
    parser.add_argument("--output-file", default=None,
                        help="also write the entries with their prediction and 0/1 result (OCRBench's results file)")
    add_result_json_arg(parser, "<result-file without .jsonl>.score.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result, per_entry = score_ocrbench(load_annotations(args.annotation_file), read_answers(args.result_file))
        if args.output_file:
            write_json(args.output_file, per_entry, indent=4)
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    result.update(annotation_file=args.annotation_file, result_file=args.result_file, output_file=args.output_file)
    return finish(summary_line(result), result, args.result_json or default_result_path(args.result_file))


if __name__ == "__main__":
    sys.exit(main())
