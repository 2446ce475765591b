"""Accuracy of a tiny checkpoint per question type, on fresh held-out scenes (single-turn, greedy).

    python scripts/tiny/probe_question_types.py --model-path checkpoints/llava-v1.5-tiny [--per-type 40]

The benchmark sets mix question types; when a training run goes wrong this tells which skill is missing
(e.g. existence questions at chance while colour lookups work). Exact-match on the normalised answer.
"""

from __future__ import annotations

import argparse
import random
import time

from llava.data.questions import QUESTION_TYPES, prompt
from llava.data.scenes import sample_scene
from llava.data.shapes import render
from llava.eval.core.common import generate_answers, load_model
from llava.eval.core.pruning_args import add_pruning_args


def probe(args: argparse.Namespace) -> dict[str, float]:
    loaded = load_model(args, "cpu")
    rng = random.Random(args.seed)
    gen = {"do_sample": False, "num_beams": 1, "max_new_tokens": 6, "use_cache": True}
    scores = {}
    for kind in args.types or QUESTION_TYPES:
        correct = asked = 0
        while asked < args.per_type:
            scene = sample_scene(rng, split="eval")
            qa = QUESTION_TYPES[kind](scene, rng)
            if qa is None:
                continue
            image = render(scene)
            inputs = loaded.question_inputs(prompt(qa), [image], args.conv_mode)
            (answer,) = generate_answers(loaded, [inputs], gen)
            correct += answer.text.strip().rstrip(".").lower() == qa.answer.lower()
            asked += 1
        scores[kind] = correct / asked
    return scores


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--model-base", default=None)
    parser.add_argument("--conv-mode", default="vicuna_v1")
    parser.add_argument("--per-type", type=int, default=40)
    parser.add_argument("--types", nargs="*", default=None, choices=sorted(QUESTION_TYPES), help="default: all")
    parser.add_argument("--seed", type=int, default=0)
    add_pruning_args(parser)
    args = parser.parse_args(argv)
    start = time.time()
    scores = probe(args)
    print(" | ".join(f"{k} {v:.2f}" for k, v in scores.items()),
          f"| mean {sum(scores.values()) / len(scores):.2f} ({time.time() - start:.0f}s)")


if __name__ == "__main__":
    main()
