r"""MM-Vet results file for the official GPT-4 grader (LLaVA's `scripts/convert_mmvet_for_eval.py`).

    python -m llava.eval.benchmarks.mmvet.convert --src playground/data/eval/mm-vet/answers/llava-v1.5-13b.jsonl \
        --dst playground/data/eval/mm-vet/results/llava-v1.5-13b.json

Writes `{"v1_<question_id>": answer text}`: MM-Vet's grader names its samples `v1_0`, `v1_1`, ...
"""

from __future__ import annotations

import argparse
import sys

from llava.eval.core.scoring_io import ScoringInputError, fail, read_answers, write_json


def convert(answers: list[dict]) -> dict[str, str]:
    return {f"v1_{a['question_id']}": a["text"] for a in answers}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, help="answers JSONL")
    parser.add_argument("--dst", required=True, help="results JSON to write")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        results = convert(read_answers(args.src))
        write_json(args.dst, results)
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    print(f"MM-Vet: wrote {len(results)} answers to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
