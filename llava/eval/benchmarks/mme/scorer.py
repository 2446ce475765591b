"""MME scores from the per-category txt files (the rules of MME's official `eval_tool/calculation.py`).

    python -m llava.eval.benchmarks.mme.scorer --results_dir playground/data/eval/MME/eval_tool/answers/llava-v1.5-13b

Each `<subtask>.txt` line is `image \\t question \\t ground truth \\t prediction`; every image has two
questions. Per subtask: acc = correct answers / questions, acc+ = images with both answers correct /
images, score = (acc + acc+) * 100. Perception = sum of the 10 perception subtask scores (max 2000),
cognition = sum of the 4 cognition ones (max 800).

A prediction counts as "yes" / "no" if, lower-cased, it is exactly that word or its first 4 characters
contain "yes" (checked first) or "no"; anything else is "other" and wrong.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from llava.eval.core.scoring_io import ScoringInputError, add_result_json_arg, fail, finish

logger = logging.getLogger(__name__)

EVAL_TYPES = {
    "perception": ["existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork",
                   "OCR"],
    "cognition": ["commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning"],
}


def parse_pred_ans(pred_ans: str) -> str:
    """The official answer parsing ("yes" wins over "no" inside the 4-character prefix: "yes, no" -> yes)."""
    pred_ans = pred_ans.lower()
    if pred_ans in ("yes", "no"):
        return pred_ans
    prefix = pred_ans[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def subtask_metrics(lines: list[tuple[str, str, str, str]]) -> dict:
    """acc, acc+ and score of one subtask from its (image, question, ground truth, prediction) lines.

    The official tool takes the lines two by two as the two questions of one image. Here the questions are
    grouped by the image column, which is the same grouping for files in question order (as the converter
    writes them) and stays right for files that are not.
    """
    images: dict[str, list[bool]] = {}
    correct = other = 0
    for image, _question, gt_ans, pred_ans in lines:
        gt = gt_ans.lower()
        if gt not in ("yes", "no"):
            raise ScoringInputError(f"ground truth must be yes or no, got {gt_ans!r} for image {image}")
        pred = parse_pred_ans(pred_ans)
        other += pred == "other"
        correct += pred == gt
        images.setdefault(image, []).append(pred == gt)
    odd = [img for img, answers in images.items() if len(answers) != 2]
    if odd:
        raise ScoringInputError(f"MME has two questions per image; {len(odd)} images have another number "
                                f"(first: {odd[0]} with {len(images[odd[0]])})")
    acc = correct / len(lines)
    acc_plus = sum(all(v) for v in images.values()) / len(images)
    return {"acc": acc, "acc_plus": acc_plus, "score": (acc + acc_plus) * 100, "questions": len(lines),
            "images": len(images), "other": other}


def read_subtask_file(path: str) -> list[tuple[str, str, str, str]]:
    lines = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 4:
                raise ScoringInputError(f"{path}:{lineno}: expected 4 tab-separated fields, got {len(fields)}")
            lines.append(tuple(fields))
    if not lines:
        raise ScoringInputError(f"{path} is empty")
    return lines


def score_mme(subtasks: dict[str, list[tuple[str, str, str, str]]]) -> dict:
    """Scores of the given subtasks (name -> lines); totals over those present, absent ones listed."""
    result = {"benchmark": "mme"}
    for eval_type, names in EVAL_TYPES.items():
        present = {n: subtask_metrics(subtasks[n]) for n in names if n in subtasks}
        result[eval_type] = {"total": sum(m["score"] for m in present.values()), "subtasks": present,
                             "absent": [n for n in names if n not in subtasks]}
    unknown = sorted(set(subtasks) - {n for names in EVAL_TYPES.values() for n in names})
    if unknown:
        result["ignored"] = unknown
    return result


def load_results_dir(results_dir: str) -> dict[str, list]:
    if not os.path.isdir(results_dir):
        raise ScoringInputError(f"results dir not found: {results_dir}")
    subtasks = {}
    for name in sorted(os.listdir(results_dir)):
        if name.endswith(".txt"):
            subtasks[name[:-4]] = read_subtask_file(os.path.join(results_dir, name))
    known = [n for names in EVAL_TYPES.values() for n in names]
    if not any(n in subtasks for n in known):
        raise ScoringInputError(f"no MME subtask txt files (e.g. existence.txt) in {results_dir}")
    return subtasks


def summary_line(result: dict) -> str:
    """What the numbers are: each subtask scores acc + acc+ in percent (at most 200), a total is their sum over
    the subtasks present, and a partial set (as the sample data's) says so."""
    parts = []
    for eval_type, names in EVAL_TYPES.items():
        part = result[eval_type]
        present = [name for name in names if name in part["subtasks"]]
        if not present:
            parts.append(f"{eval_type}: no subtask (0 of {len(names)})")
            continue
        text = f"{eval_type} {part['total']:.2f} / {200 * len(present)}"
        if part["absent"]:
            text += f" ({len(present)} of {len(names)} subtasks: {', '.join(present)})"
        parts.append(text)
    return "MME (acc + acc+ per subtask, summed): " + ", ".join(parts)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results_dir", "--results-dir", dest="results_dir", required=True,
                        help="directory of <subtask>.txt files (eval_tool/answers/<experiment>)")
    add_result_json_arg(parser, "<results_dir>/mme_score.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = score_mme(load_results_dir(args.results_dir))
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    absent = [name for eval_type in EVAL_TYPES for name in result[eval_type]["absent"]]
    if absent:
        logger.warning("MME: no results for %d subtask(s) (%s); the totals cover the others", len(absent),
                       ", ".join(absent))
    result["results_dir"] = args.results_dir
    return finish(summary_line(result), result, args.result_json or os.path.join(args.results_dir, "mme_score.json"))


if __name__ == "__main__":
    sys.exit(main())
