r"""MMBench submission file, plus the local circular accuracy when the TSV has answers (LLaVA's
`scripts/convert_mmbench_for_submission.py` and the exact-matching part of MMBench's evaluation).

    python -m llava.eval.benchmarks.mmbench.convert \
        --annotation-file playground/data/eval/mmbench/mmbench_dev_20230712.tsv \
        --result-dir playground/data/eval/mmbench/answers/mmbench_dev_20230712 \
        --upload-dir playground/data/eval/mmbench/answers_upload/mmbench_dev_20230712 \
        --experiment llava-v1.5-13b [--result-json PATH]

Reads `<result-dir>/<experiment>.jsonl` and writes `<upload-dir>/<experiment>.xlsx` (the TSV without the
image, hint, category, source, comment and l2-category columns, with a `prediction` column, as LLaVA).
Without openpyxl it writes `<experiment>.tsv` with the same columns instead and says so.

Circular accuracy (dev split): the TSV holds each question once per rotation of its options, at index
i, i + 1e6, i + 2e6, ...; a question (index i < 1e6) is correct only if the prediction of every rotation
names that row's answer. A prediction is matched to a letter with MMBench's exact-matching rules (a lone
letter, a letter with bracket / period / colon decoration, or else the one option whose text it contains);
MMBench then asks ChatGPT about the rest, here they count as wrong (reported as `unparsed`).
"""

from __future__ import annotations

import argparse
import csv
import os
import string
import sys
from collections import defaultdict

from llava.eval.core.scoring_io import ScoringInputError, add_result_json_arg, fail, finish, qid, ratio, read_answers

DROPPED_COLUMNS = ("hint", "category", "source", "image", "comment", "l2-category")
CIRCULAR_STRIDE = 1_000_000
# pandas' default NA strings: a cell that pandas.read_table turns into NaN is an absent option in MMBench.
NA_STRINGS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}


def is_na(value) -> bool:
    return value is None or value in NA_STRINGS


def read_tsv(path: str) -> tuple[list[str], list[dict]]:
    if not os.path.isfile(path):
        raise ScoringInputError(f"file not found: {path}")
    csv.field_size_limit(2**31 - 1)  # base64 images are far longer than csv's default 128 KiB
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    if "index" not in columns:
        raise ScoringInputError(f"{path}: no 'index' column (is this an MMBench TSV?)")
    for row in rows:
        row["index"] = int(row["index"])
    return columns, rows


# --- MMBench's exact-matching answer extraction -------------------------------------------------------

def infer_option_letter(answer: str, num_choice: int = 5):
    """A letter A-E named in the answer, or False (MMBench's `can_infer_option`).

    First a bare letter that is the only bare letter among the words (unless "A" is one of more than 3
    words: then it may be the article); then, for each decoration in order ("A.", "A,", "A:", "A)", "A).",
    "(A)", "(A).", ":A", ":A,", ":A.", ":A)", ":A)."), a letter that is the only one so decorated.
    """
    choices = string.ascii_uppercase[:num_choice]
    if "Failed to obtain answer via API" in answer:
        return False
    words = [w.strip() for w in answer.split()]

    def count(prefix="", suffix=""):
        return sum(prefix + c + suffix in words for c in choices)

    if count() == 1:
        for ch in choices:
            if "A" in words and len(words) > 3:
                break
            if ch in words:
                return ch
    for prefix, suffix in (("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."),
                           (":", ""), (":", ","), (":", "."), (":", ")"), (":", ").")):
        if count(prefix, suffix) == 1:
            for ch in choices:
                if prefix + ch + suffix in words:
                    return ch
    return False


def infer_option_text(answer: str, choices: dict[str, str]):
    """The one option whose text (lower-cased) occurs in the answer, or False (`can_infer_text`)."""
    answer = answer.lower()
    found = [k for k, text in choices.items() if str(text).lower() in answer]
    return found[0] if len(found) == 1 else False


def infer_answer(prediction: str, choices: dict[str, str]):
    return infer_option_letter(prediction) or infer_option_text(prediction, choices)


def row_choices(row: dict) -> dict[str, str]:
    return {ch: row[ch] for ch in "ABCD" if ch in row and not is_na(row[ch])}


def circular_accuracy(rows: list[dict], predictions: dict[str, str]) -> dict:
    """Circular accuracy overall and per category / l2-category (percentages), and `row_accuracy`: every
    rotation counted as a question of its own (MMBench's non-circular "vanilla" score), which tells a model
    that is right most of the time from one that is never right, where both can score 0 circular."""
    by_index = {row["index"]: row for row in rows}
    groups = defaultdict(list)
    for row in rows:
        groups[row["index"] % CIRCULAR_STRIDE].append(row)
    hits, unparsed, unanswered, rows_right, rows_scored = {}, 0, 0, 0, 0
    for main_index in sorted(groups):
        if main_index not in by_index:
            continue  # a rotation without its main row: the official loop never looks at it
        hit = True
        for row in groups[main_index]:
            rows_scored += 1
            prediction = predictions.get(qid(row["index"]))
            if prediction is None:
                unanswered += 1
                hit = False
                continue
            letter = infer_answer(prediction, row_choices(row))
            unparsed += letter is False
            rows_right += letter == row["answer"]
            hit = hit and letter == row["answer"]
        hits[main_index] = hit
    if not hits:
        raise ScoringInputError("the TSV has no questions with index < 1e6")
    result = {"accuracy": 100.0 * sum(hits.values()) / len(hits), "questions": len(hits),
              "row_accuracy": 100.0 * rows_right / rows_scored,
              "rows": len(rows), "unanswered_rows": unanswered, "unparsed_rows": unparsed}
    for column in ("category", "l2-category"):
        if column in rows[0]:
            per = defaultdict(list)
            for main_index, hit in hits.items():
                per[by_index[main_index][column]].append(hit)
            result[f"per_{column.replace('-', '_')}"] = {
                c: {"accuracy": 100.0 * ratio(sum(v), len(v)), "questions": len(v)} for c, v in sorted(per.items())}
    return result


# --- the submission file --------------------------------------------------------------------------------

def submission_table(columns: list[str], rows: list[dict], predictions: dict[str, str]) -> tuple[list[str], list[list]]:
    """LLaVA's table: drop the listed columns, insert `prediction` as the 7th column (after A-D)."""
    kept = [c for c in columns if c not in DROPPED_COLUMNS]
    header = kept[:6] + ["prediction"] + kept[6:]
    table = []
    for row in rows:
        values = {c: (None if is_na(row[c]) else row[c]) for c in kept}
        values["index"] = row["index"]
        values["prediction"] = predictions.get(qid(row["index"]))
        table.append([values[c] for c in header])
    return header, table


def write_submission(upload_dir: str, experiment: str, header: list[str], table: list[list]) -> str:
    os.makedirs(upload_dir, exist_ok=True)
    try:
        import openpyxl
    except ImportError:
        path = os.path.join(upload_dir, f"{experiment}.tsv")
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t")
            writer.writerow(header)
            writer.writerows([["" if v is None else v for v in r] for r in table])
        return path
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def cell(value):
        # Excel cells cannot hold control characters, which a (badly trained) model may well produce.
        return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value

    path = os.path.join(upload_dir, f"{experiment}.xlsx")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(header)
    for r in table:
        sheet.append([cell(v) for v in r])
    workbook.save(path)
    return path


def predictions_from_answers(answers: list[dict]) -> dict[str, str]:
    """`{index: text}`; with LLaVA's `--all-rounds` answers, round 0 (the TSV's own option order) is used."""
    predictions = {}
    for ans in answers:
        if ans.get("round_id", 0) == 0:
            predictions[qid(ans["question_id"])] = ans["text"]
    return predictions


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotation-file", required=True, help="the MMBench TSV, e.g. mmbench_dev_20230712.tsv")
    parser.add_argument("--result-dir", required=True, help="directory of <experiment>.jsonl")
    parser.add_argument("--upload-dir", required=True, help="where the submission file goes")
    parser.add_argument("--experiment", required=True)
    add_result_json_arg(parser, "<result-dir>/<experiment>.score.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    answers_file = os.path.join(args.result_dir, f"{args.experiment}.jsonl")
    try:
        columns, rows = read_tsv(args.annotation_file)
        predictions = predictions_from_answers(read_answers(answers_file))
        header, table = submission_table(columns, rows, predictions)
        upload = write_submission(args.upload_dir, args.experiment, header, table)
        result = {"benchmark": "mmbench", "annotation_file": args.annotation_file, "result_file": answers_file,
                  "upload_file": upload, "answered_rows": sum(qid(r["index"]) in predictions for r in rows),
                  "rows": len(rows)}
        has_answers = "answer" in columns and any(not is_na(r["answer"]) for r in rows)
        if has_answers:
            result["circular"] = circular_accuracy(rows, predictions)
    except (ScoringInputError, OSError, ValueError) as e:
        return fail(str(e))
    note = "" if upload.endswith(".xlsx") else " (openpyxl not installed: wrote TSV; convert to .xlsx to upload)"
    summary = f"MMBench: submission {upload}{note}"
    if has_answers:
        c = result["circular"]
        summary += (f"; circular accuracy {c['accuracy']:.2f}% over {c['questions']} questions"
                    f" (per row: {c['row_accuracy']:.2f}%)")
    out = args.result_json or os.path.join(args.result_dir, f"{args.experiment}.score.json")
    return finish(summary, result, out)


if __name__ == "__main__":
    sys.exit(main())
