"""Turn an MME answers file into the per-category txt files of MME's official `eval_tool`.

LLaVA ships this as `playground/data/eval/MME/convert_answer_to_mme.py` and runs it from that directory:

    cd playground/data/eval/MME && python -m llava.eval.benchmarks.mme.convert --experiment llava-v1.5-13b
    # or from anywhere:
    python -m llava.eval.benchmarks.mme.convert --data-dir playground/data/eval/MME --experiment llava-v1.5-13b

reads `<data-dir>/answers/<experiment>.jsonl` and the ground truth under
`<data-dir>/MME_Benchmark_release_version/<category>/` (`questions_answers_YN/*.txt` next to `images/`, or
the txt files beside the images), and writes `<data-dir>/eval_tool/answers/<experiment>/<category>.txt`,
one line `image.txt \\t question \\t ground truth \\t prediction` per answer (LLaVA's layout: the first column
is the image's question file name). Then `python -m llava.eval.benchmarks.mme.scorer --results_dir ...` scores it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

from llava.eval.core.scoring_io import ScoringInputError, fail, read_answers

SHORT_ANSWER_PROMPT = "Answer the question using a single word or phrase."
YES_NO_PROMPT = "Please answer yes or no."


def load_ground_truth(gt_dir: str) -> dict[tuple[str, str, str], str]:
    """`{(category, question file name, question): answer}` from MME_Benchmark_release_version."""
    if not os.path.isdir(gt_dir):
        raise ScoringInputError(f"MME ground-truth directory not found: {gt_dir}")
    gt = {}
    for category in sorted(os.listdir(gt_dir)):
        category_dir = os.path.join(gt_dir, category)
        if not os.path.isdir(category_dir):
            continue
        qa_dir = category_dir
        if os.path.exists(os.path.join(category_dir, "images")):
            qa_dir = os.path.join(category_dir, "questions_answers_YN")
        if not os.path.isdir(qa_dir):
            raise ScoringInputError(f"{category_dir} has images/ but no questions_answers_YN/")
        for name in sorted(os.listdir(qa_dir)):
            if not name.endswith(".txt"):
                continue
            path = os.path.join(qa_dir, name)
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    fields = line.strip().split("\t")
                    if len(fields) != 2:
                        raise ScoringInputError(f"{path}:{lineno}: expected 'question<TAB>answer'")
                    gt[(category, name, fields[0])] = fields[1]
    return gt


def mme_question(prompt: str, category: str, qfile: str, gt: dict) -> str:
    """LLaVA's mapping from the asked prompt back to MME's question text.

    Drop the short-answer instruction; put back " Please answer yes or no." when it is missing (a few MME
    questions have two spaces before it, so try that spelling when the one-space one is unknown).
    """
    if SHORT_ANSWER_PROMPT in prompt:
        prompt = prompt.replace(SHORT_ANSWER_PROMPT, "").strip()
    if YES_NO_PROMPT not in prompt:
        prompt = prompt + " " + YES_NO_PROMPT
        if (category, qfile, prompt) not in gt:
            prompt = prompt.replace(" " + YES_NO_PROMPT, "  " + YES_NO_PROMPT)
    return prompt


def _one_line(text: str) -> str:
    # A tab or newline inside a prediction would split the txt line and break the official tool; the
    # official parsing only looks at the first 4 characters, so a space is as good.
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def convert(answers: list[dict], gt: dict) -> dict[str, list[tuple[str, str, str, str]]]:
    """`{category: [(question file, question, ground truth, prediction), ...]}` in answer order.

    An answer's question_id is `<category>/<image file>`; the image `x.png` has the questions of `x.txt`.
    """
    rows: dict[str, list] = defaultdict(list)
    unknown = []
    for ans in answers:
        question_id = str(ans["question_id"])
        category = question_id.split("/")[0]
        qfile = question_id.split("/")[-1].split(".")[0] + ".txt"
        question = mme_question(ans.get("prompt", ""), category, qfile, gt)
        if (category, qfile, question) not in gt:
            unknown.append(f"{category}/{qfile}: {question!r}")
            continue
        rows[category].append((qfile, question, gt[(category, qfile, question)], _one_line(ans["text"])))
    if unknown:
        raise ScoringInputError(f"{len(unknown)} answers have no MME ground truth (first: {unknown[0]})")
    return dict(rows)


def write_category_files(rows: dict[str, list], out_dir: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for category, items in rows.items():
        path = os.path.join(out_dir, f"{category}.txt")
        with open(path, "w", encoding="utf-8") as f:
            for item in items:
                f.write("\t".join(item) + "\n")
        paths.append(path)
    return paths


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", required=True, help="answers file name without .jsonl")
    parser.add_argument("--data-dir", default=".", help="the MME directory (default: the current one, as LLaVA)")
    parser.add_argument("--answers-file", default=None, help="default: <data-dir>/answers/<experiment>.jsonl")
    parser.add_argument("--gt-dir", default=None, help="default: <data-dir>/MME_Benchmark_release_version")
    parser.add_argument("--output-dir", default=None, help="default: <data-dir>/eval_tool/answers/<experiment>")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    answers_file = args.answers_file or os.path.join(args.data_dir, "answers", f"{args.experiment}.jsonl")
    gt_dir = args.gt_dir or os.path.join(args.data_dir, "MME_Benchmark_release_version")
    out_dir = args.output_dir or os.path.join(args.data_dir, "eval_tool", "answers", args.experiment)
    try:
        rows = convert(read_answers(answers_file), load_ground_truth(gt_dir))
        write_category_files(rows, out_dir)
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    n = sum(len(v) for v in rows.values())
    print(f"MME: wrote {n} answers in {len(rows)} categories to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
